package leader

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/internal/testenv"
)

// event is one term boundary of one member.
type event struct {
	member string
	leads  bool
}

// Two members on the real broker: exactly one leads; when it stops (leaves
// the group), the other takes over, and the first's term ended before.
func TestTwoMembersOneLeaderThenTakeover(t *testing.T) {
	k := testenv.Kafka(t, testenv.WithTopics())
	cfg := Config{Brokers: k.Brokers, Topic: k.ReserveTopic("alert-leader"), GroupID: k.GroupID("alert-leader"),
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond}
	events := make(chan event, 16)
	start := func(name string) (*Elector, context.CancelFunc, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		e := New(cfg, zerolog.New(zerolog.NewTestWriter(t)).With().Str("member", name).Logger())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := e.Run(ctx, func(ctx context.Context) {
				events <- event{name, true}
				<-ctx.Done()
				events <- event{name, false}
			}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
		return e, cancel, done
	}
	type member struct {
		e    *Elector
		stop context.CancelFunc
		done chan struct{}
	}
	members := map[string]*member{}
	for _, name := range []string{"a", "b"} {
		e, stop, done := start(name)
		members[name] = &member{e, stop, done}
	}
	defer func() {
		for _, m := range members {
			m.stop()
			<-m.done
		}
	}()
	a, b := members["a"].e, members["b"].e

	// Terms may move while the second member joins (the coordinator
	// rebalances); wait until one member leads and the other does not.
	leader := ""
	deadline := time.After(90 * time.Second)
	for leader == "" || a.IsLeader() == b.IsLeader() {
		select {
		case ev := <-events:
			if ev.leads {
				if leader != "" && leader != ev.member {
					t.Fatalf("%s started a term while %s's was running", ev.member, leader)
				}
				leader = ev.member
			} else if ev.member == leader {
				leader = ""
			}
		case <-deadline:
			t.Fatalf("no single leader: a %v, b %v", a.IsLeader(), b.IsLeader())
		case <-time.After(200 * time.Millisecond):
		}
	}
	other := map[string]string{"a": "b", "b": "a"}[leader]
	members[leader].stop()
	<-members[leader].done
	ended := false
	for {
		select {
		case ev := <-events:
			switch {
			case ev.member == leader && !ev.leads:
				ended = true
			case ev.member == other && ev.leads:
				if !ended {
					t.Fatalf("%s took over before %s's term ended", other, leader)
				}
				return
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not take over after %s stopped", other, leader)
		}
	}
}

// Without brokers the instance leads at once and until stopped.
func TestSingleInstanceAlwaysLeads(t *testing.T) {
	e := New(Config{}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	led := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx, func(ctx context.Context) { led <- e.IsLeader(); <-ctx.Done() })
	}()
	if !<-led {
		t.Fatal("single instance: IsLeader false inside its term")
	}
	cancel()
	<-done
	if e.IsLeader() {
		t.Fatal("still leader after Run returned")
	}
}
