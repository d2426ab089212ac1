package live

import (
	"context"
	"io"
	"reflect"
	"testing"

	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/notify"
)

// A saved state comes back as it was, whatever its strings hold: a
// diagnosis of several causes is several lines, and annotations are free
// text. (ClickHouse reads a bound query parameter in its escaped format,
// so a JSON document bound as {state:String} lost its backslashes: "\n"
// came back as a newline and the state as invalid JSON, and a restarted
// evaluator could not start.)
func TestStateRoundTripsEveryCharacter(t *testing.T) {
	ch := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: ch.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	text := "cdn-b × guangdong × telecom: 75 % vs 3.0 % baseline, 100 % of the excess\nisp=telecom: …\t\"quoted\" back\\slash \\n literal, a NUL \x00 and \u2028"
	st := &State{Version: StateVersion, Seq: 7,
		Info:     map[string]Info{"fp": {Severity: "warning", Annotations: map[string]string{"summary": text, "diagnosis": text}, DiagnosisText: text}},
		Notified: map[string]notify.Alert{"fp": {Fingerprint: "fp", Annotations: map[string]string{"diagnosis": text}}},
	}
	s := NewCHStore(ch.Conn, "escapes")
	if err := s.SaveState(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", got, st)
	}
}
