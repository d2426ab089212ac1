package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Thresholds decide an upstream card's status.
type Thresholds struct {
	MinFPS         float64 `json:"min_fps" yaml:"min_fps"`
	MinBitrateKbps float64 `json:"min_bitrate_kbps" yaml:"min_bitrate_kbps"`
}

// StreamOptions configure the upstream cards: thresholds per stream, else
// per quality tier, else Default.
type StreamOptions struct {
	Default    Thresholds            `yaml:"default"`
	PerQuality map[string]Thresholds `yaml:"per_quality"`
	PerStream  map[string]Thresholds `yaml:"per_stream"`
	// StreamQuality gives a stream's quality tier when the origin grouping
	// set has no quality dimension.
	StreamQuality map[string]string `yaml:"stream_quality"`
}

// DefaultStreamOptions: 15 fps and 500 kbit/s, below which a live picture
// visibly degrades; set per tier (e.g. 1080p: 2500 kbit/s) in production.
func DefaultStreamOptions() StreamOptions {
	return StreamOptions{Default: Thresholds{MinFPS: 15, MinBitrateKbps: 500}}
}

func (o *StreamOptions) fill() {
	if o.Default == (Thresholds{}) {
		o.Default = DefaultStreamOptions().Default
	}
}

// thresholds for one stream.
func (o *StreamOptions) thresholds(stream, quality string) Thresholds {
	if t, ok := o.PerStream[stream]; ok {
		return t
	}
	if t, ok := o.PerQuality[quality]; ok {
		return t
	}
	return o.Default
}

// Card statuses (001 §6.2: blue = frame rate, green = normal bitrate,
// red = bitrate too low, N/A = no upstream data).
const (
	StatusOK         = "ok"
	StatusLowBitrate = "low_bitrate"
	StatusLowFPS     = "low_fps"
	StatusNoData     = "no_data"
)

// StreamCard is one stream × line in one minute.
type StreamCard struct {
	StreamID       string            `json:"stream_id"`
	Line           string            `json:"line"`
	Quality        string            `json:"quality,omitempty"`
	Dims           map[string]string `json:"dims"`
	Samples        uint64            `json:"samples"`
	FPS            *float64          `json:"fps_avg"`
	FPSMin         *float64          `json:"fps_min"`
	BitrateKbps    *float64          `json:"bitrate_kbps_avg"`
	BitrateKbpsMin *float64          `json:"bitrate_kbps_min"`
	RTTMS          *float64          `json:"rtt_ms_avg"`
	Status         string            `json:"status"`
	Thresholds     Thresholds        `json:"thresholds"`
	Final          bool              `json:"final"`
}

// Streams is the answer of Streams.
type Streams struct {
	At    time.Time    `json:"at"` // zero when no minute was found
	Cards []StreamCard `json:"cards"`
}

// streamSet is the origin grouping set the cards read: the first that has
// both stream_id and line.
func (q *Querier) streamSet() (GroupingSet, error) {
	si, err := q.cat.Source("origin")
	if err != nil {
		return GroupingSet{}, err
	}
	for _, gs := range si.GroupingSets {
		if slices.Contains(gs.Dims, "stream_id") && slices.Contains(gs.Dims, "line") {
			return gs, nil
		}
	}
	return GroupingSet{}, errors.New("no origin grouping set has both stream_id and line (aggregator grouping_sets.origin)")
}

func (q *Querier) streamsStmt(view string, set GroupingSet, at time.Time) *stmt {
	s := newStmt()
	s.w("SELECT dims, no_data, samples, fps_avg, fps_min, bitrate_kbps_avg, bitrate_kbps_min, rtt_ms_avg, final\nFROM ", view, "\nWHERE grouping = ",
		s.str(set.Name), " AND window_start = ", s.time(at), "\nORDER BY dims_key\nLIMIT ", s.u64(uint64(q.opts.MaxRows)))
	return s
}

// Streams returns the upstream cards of minute at (zero: the newest origin
// minute within Options.Lookback).
func (q *Querier) Streams(ctx context.Context, at time.Time) (*Streams, error) {
	set, err := q.streamSet()
	if err != nil {
		return nil, err
	}
	si, _ := q.cat.Source("origin")
	view := si.Views[PeriodMinute]
	out := &Streams{Cards: []StreamCard{}}
	if at.IsZero() {
		if at, err = q.newestMinute(ctx, si.Tables[PeriodMinute], set.Name); err != nil || at.IsZero() {
			return out, err
		}
	}
	out.At = floorTime(at, time.Minute)
	s := q.streamsStmt(view, set, out.At)
	rows, err := q.conn.Query(withParams(ctx, s), s.String())
	if err != nil {
		return nil, errQuery(view, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c StreamCard
		var noData, final uint8
		if err := rows.Scan(&c.Dims, &noData, &c.Samples, &c.FPS, &c.FPSMin, &c.BitrateKbps, &c.BitrateKbpsMin, &c.RTTMS, &final); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", view, err)
		}
		c.StreamID, c.Line, c.Final = c.Dims["stream_id"], c.Dims["line"], final == 1
		c.Quality = c.Dims["quality"]
		if c.Quality == "" {
			c.Quality = q.opts.Streams.StreamQuality[c.StreamID]
		}
		c.Thresholds = q.opts.Streams.thresholds(c.StreamID, c.Quality)
		c.Status = status(c, noData == 1)
		out.Cards = append(out.Cards, c)
	}
	return out, rows.Err()
}

// status: no data first; a low bitrate (red on the wall) before a low frame rate.
func status(c StreamCard, noData bool) string {
	switch {
	case noData || c.Samples == 0 || c.FPS == nil || c.BitrateKbps == nil:
		return StatusNoData
	case *c.BitrateKbps < c.Thresholds.MinBitrateKbps:
		return StatusLowBitrate
	case *c.FPS < c.Thresholds.MinFPS:
		return StatusLowFPS
	}
	return StatusOK
}
