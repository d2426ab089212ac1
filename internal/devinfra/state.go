package devinfra

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Names of the variables in the state file. The first three are what tests,
// the demo and users read (they are also the config's env overrides); the
// QOSCOPE_INFRA_* ones let `infra down` find what to stop, and are kept out of
// the config's QOSCOPE_<SECTION>_<KEY> namespace.
const (
	EnvKafkaBrokers   = "QOSCOPE_KAFKA_BROKERS"
	EnvClickHouseDSN  = "QOSCOPE_CLICKHOUSE_DSN"
	EnvClickHouseHTTP = "QOSCOPE_CLICKHOUSE_HTTP"

	envKafkaPID       = "QOSCOPE_INFRA_KAFKA_PID"
	envKafkaConfig    = "QOSCOPE_INFRA_KAFKA_CONFIG"
	envKafkaDataDir   = "QOSCOPE_INFRA_KAFKA_DATA_DIR"
	envKafkaLog       = "QOSCOPE_INFRA_KAFKA_LOG"
	envCHPID          = "QOSCOPE_INFRA_CLICKHOUSE_PID"
	envCHConfig       = "QOSCOPE_INFRA_CLICKHOUSE_CONFIG"
	envCHDataDir      = "QOSCOPE_INFRA_CLICKHOUSE_DATA_DIR"
	envCHLog          = "QOSCOPE_INFRA_CLICKHOUSE_LOG"
	stateFileName     = "env"
	stateFileHeader   = "# written by `qoscope infra up`; read by `qoscope infra down|status|env` and the Taskfile.\n"
	externalPIDString = "external"
)

// State records the servers that Up started or adopted, as stored in the
// state file <StateDir>/env.
type State struct {
	Kafka      Server
	ClickHouse Server
}

// Server is one server in the state file. PID 0 means external: Up did not
// start it and Down leaves it alone.
type Server struct {
	// Addr is what clients use: the broker list for Kafka, the native DSN
	// for ClickHouse.
	Addr string
	// HTTP is ClickHouse's HTTP endpoint; empty for Kafka and possibly for
	// an external ClickHouse.
	HTTP string
	// PID leads the server's process group; 0 if external.
	PID int
	// Config is the server's config file. It appears in the process's
	// command line, which is how a recorded PID is told apart from a reused
	// one before it is signalled.
	Config string
	// DataDir and Log are removed or kept by Down; informational.
	DataDir string
	Log     string
}

// External reports whether the server was given, not started.
func (s Server) External() bool { return s.PID == 0 }

// StatePath returns the path of the state file in stateDir.
func StatePath(stateDir string) string { return filepath.Join(stateDir, stateFileName) }

// ErrNoState is returned by ReadState when no servers are recorded.
var ErrNoState = errors.New("no servers recorded (run `qoscope infra up`)")

// ReadState reads the state file in stateDir; ErrNoState if there is none.
func ReadState(stateDir string) (*State, error) {
	b, err := os.ReadFile(StatePath(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read state: %w", err)
	}
	vars, err := parseEnvFile(b)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", StatePath(stateDir), err)
	}
	var st State
	var errs []error
	pid := func(key string) int {
		v := vars[key]
		if v == "" || v == externalPIDString {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a PID", key, v))
			return 0
		}
		return n
	}
	st.Kafka = Server{
		Addr: vars[EnvKafkaBrokers], PID: pid(envKafkaPID), Config: vars[envKafkaConfig],
		DataDir: vars[envKafkaDataDir], Log: vars[envKafkaLog],
	}
	st.ClickHouse = Server{
		Addr: vars[EnvClickHouseDSN], HTTP: vars[EnvClickHouseHTTP], PID: pid(envCHPID),
		Config: vars[envCHConfig], DataDir: vars[envCHDataDir], Log: vars[envCHLog],
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot parse %s: %w", StatePath(stateDir), err)
	}
	return &st, nil
}

// Vars returns the state as variables. Empty values are left out so that a
// half-written state (Up interrupted between the servers) stays readable.
func (s *State) Vars() map[string]string {
	m := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	pidString := func(srv Server) string {
		if srv.Addr == "" {
			return ""
		}
		if srv.External() {
			return externalPIDString
		}
		return strconv.Itoa(srv.PID)
	}
	put(EnvKafkaBrokers, s.Kafka.Addr)
	put(envKafkaPID, pidString(s.Kafka))
	put(envKafkaConfig, s.Kafka.Config)
	put(envKafkaDataDir, s.Kafka.DataDir)
	put(envKafkaLog, s.Kafka.Log)
	put(EnvClickHouseDSN, s.ClickHouse.Addr)
	put(EnvClickHouseHTTP, s.ClickHouse.HTTP)
	put(envCHPID, pidString(s.ClickHouse))
	put(envCHConfig, s.ClickHouse.Config)
	put(envCHDataDir, s.ClickHouse.DataDir)
	put(envCHLog, s.ClickHouse.Log)
	return m
}

// WriteEnv writes the state as KEY=value lines that both a POSIX shell
// (`set -a; . file`) and dotenv readers (go-task's `dotenv:`) accept. With
// export set, every line starts with "export ", for `eval "$(qoscope infra env)"`.
func (s *State) WriteEnv(w io.Writer, export bool) error {
	vars := s.Vars()
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	prefix := ""
	if export {
		prefix = "export "
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s%s=%s\n", prefix, k, shellQuote(vars[k]))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeState replaces the state file atomically. It is private (0600): an
// external DSN may carry a password.
func writeState(stateDir string, st *State) error {
	var b bytes.Buffer
	b.WriteString(stateFileHeader)
	if err := st.WriteEnv(&b, false); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(stateDir, ".env-*")
	if err != nil {
		return fmt.Errorf("cannot write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write state: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), StatePath(stateDir)); err != nil {
		return fmt.Errorf("cannot write state: %w", err)
	}
	return nil
}

// shellQuote leaves plain values bare (dotenv readers then see exactly the
// value) and single-quotes anything else.
func shellQuote(v string) string {
	plain := v != ""
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:@,+=%", r)) {
			plain = false
			break
		}
	}
	if plain {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// parseEnvFile reads what WriteEnv writes: comments, blank lines, optional
// "export ", bare or single-quoted values (with the '\” idiom).
func parseEnvFile(b []byte) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, raw, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: want KEY=value", n)
		}
		v, err := shellUnquote(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, k, err)
		}
		vars[k] = v
	}
	return vars, sc.Err()
}

func shellUnquote(s string) (string, error) {
	var out strings.Builder
	for len(s) > 0 {
		switch {
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated single quote")
			}
			out.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case s[0] == '\\':
			if len(s) == 1 {
				return "", errors.New("trailing backslash")
			}
			out.WriteByte(s[1])
			s = s[2:]
		default:
			i := strings.IndexAny(s, `'\`)
			if i < 0 {
				i = len(s)
			}
			out.WriteString(s[:i])
			s = s[i:]
		}
	}
	return out.String(), nil
}
