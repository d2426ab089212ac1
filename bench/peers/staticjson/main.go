// Command staticjson is the steering step's peer (bench/README.md,
// "Steering"): Go net/http answering every GET with one fixed JSON body and
// the same headers as qoscope steer, so that the step can say what share
// of a request's cost is the steering itself and what is HTTP.
//
//	staticjson -listen 127.0.0.1:8096 -body manifest.json
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8096", "listen address")
	bodyFile := flag.String("body", "", "file holding the JSON body to serve")
	flag.Parse()
	if err := run(*listen, *bodyFile); err != nil {
		fmt.Fprintln(os.Stderr, "staticjson:", err)
		os.Exit(1)
	}
}

func run(listen, bodyFile string) error {
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		return fmt.Errorf("cannot read the body: %w", err)
	}
	// Shared header values, as qoscope steer sets them (no allocation).
	ct, cc, lvl := []string{"application/json"}, []string{"private, max-age=300"}, []string{"region"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"], hd["Cache-Control"], hd["X-Qoscope-Steer-Level"] = ct, cc, lvl
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
