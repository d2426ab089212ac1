package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qoscope/qoscope/internal/chconn"
)

// Environment is what the numbers were measured on.
type Environment struct {
	Host       string  `json:"host"`
	CPUModel   string  `json:"cpu_model"`
	Cores      int     `json:"cores"` // logical CPUs the harness may use
	MemoryGiB  float64 `json:"memory_gib"`
	OS         string  `json:"os"`
	Kernel     string  `json:"kernel"`
	Arch       string  `json:"arch"`
	Go         string  `json:"go"`
	Java       string  `json:"java"`
	Maven      string  `json:"maven"`
	ClickHouse string  `json:"clickhouse"`
	Kafka      string  `json:"kafka"`
	GitCommit  string  `json:"git_commit"`
	// GitDirty counts files that differ from the commit (git status
	// --porcelain): the numbers are for the commit plus these changes.
	GitDirty int `json:"git_dirty_files"`
	// LoadAvg is /proc/loadavg's 1-minute load at the start and the end of
	// the run: other work on a shared machine slows everything down.
	LoadAvgStart float64 `json:"loadavg_1m_start"`
	LoadAvgEnd   float64 `json:"loadavg_1m_end"`
	// Errors lists what could not be found out, and why.
	Errors []string `json:"errors,omitempty"`
}

// collectEnvironment finds out everything but LoadAvgEnd. A missing piece
// is recorded in Errors: it never stops the run.
func collectEnvironment(ctx context.Context, o *Options) Environment {
	var e Environment
	fail := func(what string, err error) { e.Errors = append(e.Errors, fmt.Sprintf("%s: %v", what, err)) }
	e.Host, _ = os.Hostname()
	e.Cores = runtime.NumCPU()
	e.Arch = runtime.GOARCH
	if m, err := cpuModel(); err != nil {
		fail("cpu model", err)
	} else {
		e.CPUModel = m
	}
	if g, err := memTotalGiB(); err != nil {
		fail("memory", err)
	} else {
		e.MemoryGiB = g
	}
	e.OS = osRelease()
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		fail("kernel", err)
	} else {
		e.Kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	if v, err := output(ctx, o.RepoDir, "go", "env", "GOVERSION"); err != nil {
		fail("go version", err)
	} else {
		e.Go = v
	}
	if v, err := output(ctx, "", "java", "-version"); err != nil {
		fail("java version", err)
	} else {
		e.Java = firstLine(v)
	}
	if v, err := output(ctx, "", "mvn", "-B", "-v"); err != nil {
		fail("maven version", err)
	} else {
		e.Maven = firstLine(stripANSI(v))
	}
	if o.ClickHouseDSN != "" {
		if v, err := clickHouseVersion(ctx, o.ClickHouseDSN); err != nil {
			fail("clickhouse version", err)
		} else {
			e.ClickHouse = v
		}
	}
	if len(o.KafkaBrokers) > 0 {
		if v, err := kafkaVersion(o.KafkaLog, o.KafkaPID); err != nil {
			fail("kafka version", err)
		} else {
			e.Kafka = v
		}
	}
	if v, err := output(ctx, o.RepoDir, "git", "rev-parse", "HEAD"); err != nil {
		fail("git commit", err)
	} else {
		e.GitCommit = v
	}
	if v, err := output(ctx, o.RepoDir, "git", "status", "--porcelain"); err == nil && v != "" {
		e.GitDirty = len(strings.Split(v, "\n"))
	}
	e.LoadAvgStart = loadAvg()
	return e
}

// output runs a command and returns its trimmed stdout+stderr (java
// -version writes to stderr).
func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(strings.TrimSpace(string(b)), 300))
	}
	return strings.TrimSpace(string(b)), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func cpuModel() (string, error) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no model name in /proc/cpuinfo")
}

func memTotalGiB() (float64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("MemTotal %q: %w", f[1], err)
			}
			return kb / (1 << 20), nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func clickHouseVersion(ctx context.Context, dsn string) (string, error) {
	conn, err := chconn.Open(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("SELECT version(): %w", err)
	}
	return v, nil
}

// kafkaVersionRE matches the broker's startup line
// "INFO Kafka version: 4.1.1 (org.apache.kafka.common.utils.AppInfoParser)".
var kafkaVersionRE = regexp.MustCompile(`Kafka version: ([0-9][0-9A-Za-z.\-]*)`)

// kafkaJarRE matches the broker jar in its class path directory.
var kafkaJarRE = regexp.MustCompile(`^kafka_[0-9.]+-([0-9][0-9A-Za-z.\-]*)\.jar$`)

// kafkaVersion reads the release from the broker's log, or from the jar
// names in the class path of its process. The protocol has no version
// string (ApiVersions lists API ranges only), so an external broker
// without either stays unknown.
func kafkaVersion(logPath string, pid int) (string, error) {
	if logPath != "" {
		if b, err := os.ReadFile(logPath); err == nil {
			if m := kafkaVersionRE.FindSubmatch(b); m != nil {
				return string(m[1]), nil
			}
		}
	}
	if pid > 0 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err == nil {
			args := strings.Split(string(b), "\x00")
			for i, a := range args {
				if (a == "-cp" || a == "-classpath") && i+1 < len(args) {
					for _, dir := range strings.Split(args[i+1], ":") {
						ents, _ := os.ReadDir(filepath.Dir(dir))
						for _, ent := range ents {
							if m := kafkaJarRE.FindStringSubmatch(ent.Name()); m != nil {
								return m[1], nil
							}
						}
					}
				}
			}
		}
	}
	return "", fmt.Errorf("neither the broker log (QOSCOPE_INFRA_KAFKA_LOG) nor its process (QOSCOPE_INFRA_KAFKA_PID) tells the version")
}
