// Package measure holds what the benchmark peers measure: wall time, the
// CPU of the measuring process (getrusage), of another local process
// (/proc/<pid>/stat), and of ClickHouse queries (their ProfileEvents over
// the native protocol, or system.query_log when the server keeps one).
package measure

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Unknown marks a CPU time that could not be measured.
const Unknown time.Duration = -1

// Step is what one step of a peer (a load, a query) measured.
type Step struct {
	Name   string `json:"name"`
	Events int64  `json:"events,omitempty"` // events processed by the step
	Rows   int64  `json:"rows,omitempty"`   // result rows (queries)
	// Wall is the elapsed time of the step.
	Wall time.Duration `json:"wall_ns"`
	// ClientCPU is user+system CPU of the measuring process (RUSAGE_SELF
	// delta: every goroutine of the process, so run peers one at a time),
	// or of the peer's own process for an external job.
	ClientCPU time.Duration `json:"client_cpu_ns"`
	// ServerCPU is the CPU ClickHouse attributes to the step's queries
	// (user+system of all their threads), Unknown if not available;
	// ServerCPUFrom says where it came from.
	ServerCPU     time.Duration `json:"server_cpu_ns"`
	ServerCPUFrom string        `json:"server_cpu_from,omitempty"`
	// ServerProcCPU is the CPU of the whole server process over the step
	// (background merges and Kafka consumers included; other users of a
	// shared server too), Unknown without a server PID.
	ServerProcCPU time.Duration `json:"server_proc_cpu_ns"`
	// BrokerProcCPU is the CPU of the whole Kafka broker process over the
	// step (the repartition and changelog traffic of Kafka Streams, the
	// fetches of a consumer), Unknown without a broker PID.
	BrokerProcCPU time.Duration `json:"broker_proc_cpu_ns"`
	// Note explains an Unknown or anything unusual.
	Note string `json:"note,omitempty"`
}

// TotalCPU is client + server (+ broker, when measured) CPU, preferring
// the whole server process when known (it includes merges the queries do
// not account for).
func (s Step) TotalCPU() time.Duration {
	srv := s.ServerProcCPU
	if srv == Unknown {
		srv = s.ServerCPU
	}
	if srv == Unknown {
		srv = 0
	}
	t := s.ClientCPU + srv
	if s.BrokerProcCPU != Unknown {
		t += s.BrokerProcCPU
	}
	return t
}

// CPUSecondsPerMillion is TotalCPU per million events, 0 without events.
func (s Step) CPUSecondsPerMillion() float64 {
	if s.Events == 0 {
		return 0
	}
	return s.TotalCPU().Seconds() * 1e6 / float64(s.Events)
}

// EventsPerSecond is Events over Wall.
func (s Step) EventsPerSecond() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Events) / s.Wall.Seconds()
}

func (s Step) String() string {
	b := fmt.Sprintf("%s: wall %s", s.Name, s.Wall.Round(time.Millisecond))
	if s.Events > 0 {
		b += fmt.Sprintf(", %d events (%.0f/s)", s.Events, s.EventsPerSecond())
	}
	if s.Rows > 0 {
		b += fmt.Sprintf(", %d rows", s.Rows)
	}
	b += ", client cpu " + cpu(s.ClientCPU) + ", server cpu " + cpu(s.ServerCPU)
	if s.ServerCPUFrom != "" {
		b += " (" + s.ServerCPUFrom + ")"
	}
	b += ", server process cpu " + cpu(s.ServerProcCPU)
	if s.BrokerProcCPU != Unknown {
		b += ", broker process cpu " + cpu(s.BrokerProcCPU)
	}
	if s.Events > 0 {
		b += fmt.Sprintf(", %.2f cpu-s per million events", s.CPUSecondsPerMillion())
	}
	if s.Note != "" {
		b += "; " + s.Note
	}
	return b
}

func cpu(d time.Duration) string {
	if d == Unknown {
		return "n/a"
	}
	return d.Round(time.Millisecond).String()
}

// SelfCPU is the user+system CPU time used by this process so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports (the kernel fixes it for the ABI).
const clockTicks = 100

// ProcCPU is the user+system CPU time of process pid, of its reaped
// children (cutime+cstime) and, recursively, of its live children, from
// /proc/<pid>/stat. The live children matter: the local ClickHouse host
// (internal/devinfra/chhost) runs the server in a child process it restarts
// if it crashes, so the recorded PID itself does almost nothing.
func ProcCPU(pid int) (time.Duration, error) {
	total, err := procStatCPU(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range childPIDs(pid) {
		// A child that ended meanwhile is counted in cutime from now on.
		if v, err := ProcCPU(c); err == nil {
			total += v
		}
	}
	return total, nil
}

// childPIDs lists pid's live children (/proc/<pid>/task/*/children; empty
// when the kernel does not provide it).
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func procStatCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cannot read cpu of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: fields count after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// After ')': state(3) ... utime(14) stime(15) cutime(16) cstime(17).
	if len(f) < 15 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	var ticks int64
	for _, idx := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[idx], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: /proc stat field %d: %w", pid, idx+3, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// Meter measures one step: create it right before, call Done right after.
type Meter struct {
	name                 string
	serverPID, brokerPID int
	start                time.Time
	self                 time.Duration
	proc, broker         time.Duration
	procErr, brokerErr   error
}

// Start starts measuring a step; serverPID > 0 also measures that process.
func Start(name string, serverPID int) *Meter { return StartWithBroker(name, serverPID, 0) }

// StartWithBroker is Start that also measures the Kafka broker process
// brokerPID (> 0).
func StartWithBroker(name string, serverPID, brokerPID int) *Meter {
	m := &Meter{name: name, serverPID: serverPID, brokerPID: brokerPID}
	if serverPID > 0 {
		m.proc, m.procErr = ProcCPU(serverPID)
	}
	if brokerPID > 0 {
		m.broker, m.brokerErr = ProcCPU(brokerPID)
	}
	m.self = SelfCPU()
	m.start = time.Now()
	return m
}

// Done returns the step with wall, client CPU and server process CPU
// filled in; ServerCPU is Unknown until the caller sets it.
func (m *Meter) Done() Step {
	s := Step{Name: m.name, Wall: time.Since(m.start), ClientCPU: SelfCPU() - m.self,
		ServerCPU: Unknown, ServerProcCPU: Unknown, BrokerProcCPU: Unknown}
	if m.brokerPID > 0 {
		if m.brokerErr != nil {
			s.Note = m.brokerErr.Error()
		} else if end, err := ProcCPU(m.brokerPID); err != nil {
			s.Note = err.Error()
		} else {
			s.BrokerProcCPU = end - m.broker
		}
	}
	if m.serverPID > 0 {
		if m.procErr != nil {
			s.Note = m.procErr.Error()
		} else if end, err := ProcCPU(m.serverPID); err != nil {
			s.Note = err.Error()
		} else {
			s.ServerProcCPU = end - m.proc
		}
	}
	return s
}

// ProfileCPU sums the CPU ClickHouse reports in the ProfileEvents packets
// of native-protocol queries run with its Context.
type ProfileCPU struct {
	mu      sync.Mutex
	user    int64 // UserTimeMicroseconds
	sys     int64 // SystemTimeMicroseconds
	packets int
}

// Context returns ctx with a ProfileEvents callback that adds to p.
func (p *ProfileCPU) Context(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithProfileEvents(p.add))
}

func (p *ProfileCPU) add(evs []clickhouse.ProfileEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.packets++
	for _, e := range evs {
		// "increment" rows are per-thread deltas since the previous
		// packet; "gauge" rows (memory) are not additive.
		if e.Type != "increment" {
			continue
		}
		switch e.Name {
		case "UserTimeMicroseconds":
			p.user += e.Value
		case "SystemTimeMicroseconds":
			p.sys += e.Value
		}
	}
}

// CPU is the sum so far, and whether any ProfileEvents packet arrived.
func (p *ProfileCPU) CPU() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.user+p.sys) * time.Microsecond, p.packets > 0
}

// QueryLogCPU sums UserTimeMicroseconds+SystemTimeMicroseconds of the
// finished queries with the given ids from system.query_log. ok is false
// when the server keeps no query log (clickhouse-local without a config,
// e.g. this machine's dev server).
func QueryLogCPU(ctx context.Context, conn driver.Conn, queryIDs []string) (cpu time.Duration, ok bool, err error) {
	if len(queryIDs) == 0 {
		return 0, true, nil
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'").Scan(&n); err != nil {
		return 0, false, fmt.Errorf("cannot look for system.query_log: %w", err)
	}
	if n == 0 {
		// FLUSH LOGS creates the table when query logging is configured.
		if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			return 0, false, nil
		}
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'").Scan(&n); err != nil || n == 0 {
			return 0, false, nil
		}
	}
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return 0, false, fmt.Errorf("cannot flush logs: %w", err)
	}
	var us, found uint64
	err = conn.QueryRow(ctx, `SELECT toUInt64(sum(ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds'])), count()
		FROM system.query_log WHERE type = 'QueryFinish' AND query_id IN {ids:Array(String)}`,
		clickhouse.Named("ids", queryIDs)).Scan(&us, &found)
	if err != nil {
		return 0, false, fmt.Errorf("cannot read system.query_log: %w", err)
	}
	if int(found) != len(queryIDs) {
		return time.Duration(us) * time.Microsecond, false, fmt.Errorf("system.query_log has %d of %d queries", found, len(queryIDs))
	}
	return time.Duration(us) * time.Microsecond, true, nil
}
