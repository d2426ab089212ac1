package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/qoscope/qoscope/internal/retry"
)

// Class says what to do about a failed send (retry.Class). Every
// receiver's failures are classified here and nowhere else: Retry is
// transient (network, timeout, 5xx, 429, a robot's rate limit; tried again
// after a backoff), Permanent cannot be helped by retrying (any other 4xx,
// a robot's error code, a payload that cannot be encoded; marked failed),
// Canceled means the dispatcher is stopping (the notification stays
// enqueued and the next Run sends it).
type Class = retry.Class

const (
	Retry     = retry.Retry
	Permanent = retry.Permanent
	Canceled  = retry.Canceled
)

// HTTPError is a receiver's answer outside 2xx.
type HTTPError struct {
	Status int
	// Body is the start of the answer, which is where receivers explain.
	Body string
	// RetryAfter is the answer's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("http status %d: %s", e.Status, e.Body)
}

// APIError is an error a robot reports in a 200 answer's body (DingTalk
// and WeCom's errcode, Feishu's code).
type APIError struct {
	Code int
	Msg  string
	// RateLimited: the code says "too many requests", worth retrying.
	RateLimited bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("receiver error code %d: %s", e.Code, e.Msg)
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// permanent marks an error of our own making (encoding, configuration)
// that no retry fixes.
func permanent(err error) error { return permanentError{err} }

// Classify decides whether a failed send is retried.
func Classify(err error) Class {
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	var he *HTTPError
	if errors.As(err, &he) {
		if he.Status >= 500 || he.Status == http.StatusTooManyRequests || he.Status == http.StatusRequestTimeout {
			return Retry
		}
		return Permanent
	}
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.RateLimited {
			return Retry
		}
		return Permanent
	}
	// The request's own timeout, a refused or reset connection, DNS: the
	// network, worth retrying.
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) {
		return Retry
	}
	// Anything else comes from the transport (a truncated answer, a proxy
	// hanging up); errors of our own making are marked permanent above.
	return Retry
}

// retrier is the one backoff of delivery: exponential from min to max,
// with jitter, until giveUp after a notification's creation.
type retrier struct {
	min, max, giveUp time.Duration
}

// next says, after attempt (1-based) failed with err, whether to try
// again and after how long. created is the notification's creation.
func (r retrier) next(attempt int, err error, created, now time.Time) (time.Duration, bool) {
	if Classify(err) != Retry {
		return 0, false
	}
	wait := retry.Backoff{Min: r.min, Max: r.max}.Wait(attempt)
	var he *HTTPError
	if errors.As(err, &he) && he.RetryAfter > wait {
		wait = min(he.RetryAfter, r.max)
	}
	if now.Add(wait).Sub(created) > r.giveUp {
		return 0, false
	}
	return wait, true
}
