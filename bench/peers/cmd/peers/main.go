// Command peers runs one benchmark peer on an event file and prints what it
// measured; with -rows it also writes the peer's metrics in qoscope's
// offline row format, and `peers compare` checks two such files.
//
//	peers chraw    -input events.ndjson -dsn clickhouse://127.0.0.1:9000/peers [-http http://127.0.0.1:8123 -loader http] [-rows out.ndjson]
//	peers chkafka  -input events.ndjson -dsn ... -brokers 127.0.0.1:9092 [-rows out.ndjson]
//	peers kstreams -input events.ndjson -brokers 127.0.0.1:9092 [-rows out.ndjson]
//	peers compare  -want qoscope.ndjson -got peer.ndjson
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		stop()
		os.Exit(1)
	}
}
