package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Class
	}{
		{&clickhouse.Exception{Code: 252, Message: "Too many parts"}, Retry},
		{&clickhouse.Exception{Code: 242, Message: "Table is in readonly mode"}, Retry},
		{&clickhouse.Exception{Code: 60, Message: "Unknown table"}, Permanent},
		{&clickhouse.Exception{Code: 16, Message: "No such column"}, Permanent},
		{&clickhouse.Exception{Code: 516, Message: "Authentication failed"}, Permanent},
		{fmt.Errorf("cannot insert into x: %w", &clickhouse.Exception{Code: 159}), Retry},
		{&HTTPError{Status: 500, Code: 241}, Retry},
		{&HTTPError{Status: 404, Code: 60}, Permanent},
		{&HTTPError{Status: 503}, Retry},
		{&HTTPError{Status: 400}, Permanent},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Retry},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), Retry},
		{io.ErrUnexpectedEOF, Retry},
		{context.DeadlineExceeded, Retry},
		{fmt.Errorf("x: %w", context.Canceled), Canceled},
		{kafka.LeaderNotAvailable, Retry},
		{kafka.TopicAuthorizationFailed, Permanent},
		{kafka.WriteErrors{nil, kafka.NotEnoughReplicas}, Retry},
		{kafka.WriteErrors{kafka.MessageSizeTooLarge, nil}, Permanent},
		{permanent(errors.New("cannot encode")), Permanent},
		{errors.New("something from a transport"), Retry},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
