// Package query will serve the read side of qoscope: war-room wall data,
// alert evaluation and GSLB scheduler scores, all read from ClickHouse with
// SQL built from whitelisted names and bound parameters. It is filled in by
// the query, alerting and scheduler issues; until then the SQL views created
// by migrations/ are the read API.
package query
