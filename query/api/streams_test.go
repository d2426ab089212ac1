package api

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/qoscope/qoscope/query"
)

func TestStreams(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, at.Add(2*time.Minute), func(c *Config) {
		c.Streams.PerStream = map[string]query.Thresholds{"s1": {MinFPS: 15, MinBitrateKbps: 2500}}
	})
	// s1: fps (24+26)/2 = 25, bitrate 4000/2 = 2000 kbit/s, below its own
	// 2500 → low_bitrate; RTT 80/2 = 40. s3: 30 fps, 300 kbit/s, below the
	// default 500 → low_bitrate. s5: 10 fps, 3000 kbit/s → low_fps. s4:
	// no_data. s6 at 11:59 is another minute.
	f.exec(t, `INSERT INTO origin_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum, no_data) VALUES
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s1','line','primary'), 'o', 0, 5, 1, 2, 50, 24, 4000, 1900, 80, 0),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s3','line','backup'), 'o', 0, 5, 1, 1, 30, 30, 300, 300, 10, 0),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s4','line','primary'), 'o', 0, 5, 1, 0, 0, inf, 0, inf, 0, 1),
		('2026-11-23 12:00:00', 'stream_id,line', map('stream_id','s5','line','primary'), 'o', 0, 5, 0, 1, 10, 10, 3000, 3000, 5, 0),
		('2026-11-23 11:59:00', 'stream_id,line', map('stream_id','s6','line','primary'), 'o', 0, 5, 1, 1, 30, 30, 3000, 3000, 5, 0)`)
	var s struct {
		At    time.Time
		Cards []struct {
			StreamID   string   `json:"stream_id"`
			Line       string   `json:"line"`
			FPS        *float64 `json:"fps_avg"`
			Bitrate    *float64 `json:"bitrate_kbps_avg"`
			RTT        *float64 `json:"rtt_ms_avg"`
			Status     string
			Final      bool
			Thresholds struct {
				MinBitrate float64 `json:"min_bitrate_kbps"`
			}
		}
	}
	f.getJSON(t, "/api/v1/streams", nil, &s)
	if !s.At.Equal(at) || len(s.Cards) != 4 {
		t.Fatalf("streams: %+v", s)
	}
	want := map[string]string{"s1": "low_bitrate", "s3": "low_bitrate", "s4": "no_data", "s5": "low_fps"}
	for _, c := range s.Cards {
		if c.Status != want[c.StreamID] {
			t.Errorf("%s: %s, want %s", c.StreamID, c.Status, want[c.StreamID])
		}
	}
	s1 := s.Cards[0]
	if s1.StreamID != "s1" || s1.Line != "primary" || !near(s1.FPS, 25) || !near(s1.Bitrate, 2000) || !near(s1.RTT, 40) || !s1.Final || s1.Thresholds.MinBitrate != 2500 {
		t.Errorf("s1: %+v", s1)
	}
	if c := s.Cards[2]; c.StreamID != "s4" || c.FPS != nil || c.Bitrate != nil {
		t.Errorf("s4: %+v", c)
	}
	// at names the minute: 11:59 has s6 only, 30 fps and 3000 kbit/s: ok.
	f.getJSON(t, "/api/v1/streams", url.Values{"at": {"2026-11-23T11:59:30Z"}}, &s)
	if len(s.Cards) != 1 || s.Cards[0].StreamID != "s6" || s.Cards[0].Status != "ok" {
		t.Errorf("at 11:59: %+v", s)
	}
	if code, _, param := f.errorOf(t, "/api/v1/streams", url.Values{"at": {"noon"}}); code != http.StatusBadRequest || param != "at" {
		t.Errorf("at=noon: %d %q", code, param)
	}
}
