package chconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestUnreachable(t *testing.T) {
	// A real refused dial: a port just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, dialErr := net.Dial("tcp", addr)
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{dialErr, true},
		{fmt.Errorf("handshake: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{errors.New("code: 60, message: Unknown table"), false},
		{context.Canceled, false},
	} {
		if got := Unreachable(c.err); got != c.want {
			t.Errorf("Unreachable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Retry tries again only while the server is unreachable, and gives up
// with the last error when its context ends.
func TestRetry(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return syscall.ECONNREFUSED
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("refused twice, then up: err %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	answer := errors.New("code: 81, message: Database x does not exist")
	if err := Retry(context.Background(), func() error { calls++; return answer }); err != answer || calls != 1 {
		t.Errorf("an answer from the server: err %v after %d calls, want it after 1", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := Retry(ctx, func() error { return syscall.ECONNREFUSED }); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("never up: %v, want the last refusal", err)
	}
}
