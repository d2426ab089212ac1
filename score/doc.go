// Package score computes the scheduler's table: per vendor × province × ISP
// a quality score with its fallback level, a capacity-aware vendor score and
// the traffic ratio, from the aggregator's minute rows and a contracts file.
//
// The package is pure: rows, contracts, a blacklist and the minute in, a
// Table out (Build). Reading files is offline.go's job only. The formulas
// are written out in docs/SCORES.md; each concern has its own file:
// contracts.go (the YAML file), hierarchy.go (province → big region →
// country), quality.go (decay, formula, fallback), trend.go (predicted
// bandwidth), capacity.go (the three rules), ratio.go (split and caps),
// blacklist.go, table.go (assembly and the JSON document).
package score
