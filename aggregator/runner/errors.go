package runner

import (
	"context"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/qoscope/qoscope/internal/chconn"
	"github.com/qoscope/qoscope/internal/retry"
	"github.com/segmentio/kafka-go"
)

// Class says what to do about a failed write (retry.Class). Every write
// of the runner (ClickHouse rows, rollups, checkpoints, dead letters) is
// classified here and nowhere else: Retry is transient (network, timeouts,
// too many parts, read-only replica, overload; the flush retries with
// backoff and nothing is committed meanwhile), Permanent cannot be helped
// by retrying (schema mismatch, unknown table, authentication, a bug; the
// runner stops and nothing after the failed step is committed, so a fixed
// restart replays), Canceled means the runner is stopping.
type Class = retry.Class

const (
	Retry     = retry.Retry
	Permanent = retry.Permanent
	Canceled  = retry.Canceled
)

// permanentError marks errors of the runner's own making (encoding, bad
// configuration) that no retry fixes.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// retryableCodes are the ClickHouse error codes worth retrying.
var retryableCodes = map[int32]bool{
	3:    true, // UNEXPECTED_END_OF_FILE
	32:   true, // ATTEMPT_TO_READ_AFTER_EOF
	159:  true, // TIMEOUT_EXCEEDED
	160:  true, // TOO_SLOW
	202:  true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203:  true, // NO_FREE_CONNECTION
	209:  true, // SOCKET_TIMEOUT
	210:  true, // NETWORK_ERROR
	225:  true, // NO_ZOOKEEPER
	236:  true, // ABORTED
	241:  true, // MEMORY_LIMIT_EXCEEDED
	242:  true, // TABLE_IS_READ_ONLY (replica lost its Keeper session)
	244:  true, // UNEXPECTED_ZOOKEEPER_ERROR
	252:  true, // TOO_MANY_PARTS
	279:  true, // ALL_CONNECTION_TRIES_FAILED
	285:  true, // TOO_FEW_LIVE_REPLICAS
	319:  true, // UNKNOWN_STATUS_OF_INSERT
	373:  true, // SESSION_IS_LOCKED
	394:  true, // QUERY_WAS_CANCELLED
	425:  true, // SYSTEM_ERROR
	439:  true, // CANNOT_SCHEDULE_TASK
	999:  true, // KEEPER_EXCEPTION
	1000: true, // POCO_EXCEPTION (network)
}

// Classify decides whether a failed write is retried.
func Classify(err error) Class {
	if err == nil {
		return Retry
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	// An insert that outlived insert.timeout: the server may be overloaded.
	if errors.Is(err, context.DeadlineExceeded) {
		return Retry
	}
	var exc *clickhouse.Exception
	if errors.As(err, &exc) {
		if retryableCodes[exc.Code] {
			return Retry
		}
		return Permanent
	}
	var he *HTTPError
	if errors.As(err, &he) {
		switch {
		case he.Code != 0:
			if retryableCodes[he.Code] {
				return Retry
			}
			return Permanent
		case he.Status == 502 || he.Status == 503 || he.Status == 504 || he.Status == 429:
			return Retry
		}
		return Permanent
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		if ke.Temporary() {
			return Retry
		}
		return Permanent
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && Classify(e) == Permanent {
				return Permanent
			}
		}
		return Retry
	}
	if chconn.Unreachable(err) || errors.Is(err, clickhouse.ErrAcquireConnTimeout) {
		return Retry
	}
	// Unknown errors come from the transport layers (wrapped network
	// failures); errors of our own making are marked permanent above.
	return Retry
}
