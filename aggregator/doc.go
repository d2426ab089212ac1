// Package aggregator computes qoscope's one-minute QoS windows: the core
// shared by the Kafka → ClickHouse runner (package runner) and the offline mode
// (`qoscope aggregate`, RunOffline). See README.md in this directory for the
// semantics, the raw-column → metric formulas the SQL views reproduce, and
// the checkpoint protocol.
//
// One Partition aggregates one input partition (a Kafka topic partition):
//
//	plan, _ := aggregator.NewPlan(cfg)               // once, shared
//	p := aggregator.NewPartition(plan, id)           // per assigned partition
//	p.Restore(cp)                                    // optional, before the first Add
//	p.Add(offset, &event)                            // per message, in offset order,
//	p.AddBatch(offsets, events, results)             //   or the same for many at once (faster)
//	b := p.Drain()                                   // on each flush tick: final rows,
//	rows := p.Snapshot()                             //   changed late counters, checkpoint;
//	                                                 //   provisional rows of open windows
//	p.Advance(now)                                   // idle partition: move event time
//	p.CloseAll()                                     // end of input (offline)
//
// Rows carry raw sums, counts, minimums and histograms (the minute tables'
// columns); Row.Metrics derives the public metrics from them.
package aggregator
