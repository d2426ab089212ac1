package schemas

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestTableMatchesStruct checks the field table against Event: every
// json-tagged field is a Prop of the same name, and each Prop's accessor
// reaches that very field.
func TestTableMatchesStruct(t *testing.T) {
	rt := reflect.TypeFor[Event]()
	var fromStruct []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag := f.Tag.Get("json")
		if tag == "" || tag == "-" {
			continue
		}
		fromStruct = append(fromStruct, tag)
		p, ok := ParseProp(tag)
		if !ok {
			t.Errorf("Event.%s (json %q) has no Prop", f.Name, tag)
			continue
		}
		if p == PropType {
			if f.Type != reflect.TypeFor[Type]() {
				t.Errorf("Event.%s has type %s", f.Name, f.Type)
			}
			continue
		}
		// Write through reflection, read through the table.
		var e Event
		fv := reflect.ValueOf(&e).Elem().Field(i)
		s := &propSpecs[p]
		var got, want any
		switch fv.Kind() {
		case reflect.String:
			fv.SetString("probe")
			got, want = *s.str(&e), "probe"
		case reflect.Int64:
			fv.SetInt(42)
			got, want = *s.i64(&e), int64(42)
		case reflect.Int:
			fv.SetInt(42)
			got, want = *s.intp(&e), 42
		case reflect.Float64:
			fv.SetFloat(4.5)
			got, want = *s.f64(&e), 4.5
		case reflect.Bool:
			fv.SetBool(true)
			got, want = *s.bl(&e), true
		case reflect.Uint64:
			fv.SetUint(1 << 63)
			got, want = *s.u64(&e), uint64(1<<63)
		default:
			t.Errorf("Event.%s: unexpected kind %s", f.Name, fv.Kind())
			continue
		}
		if got != want {
			t.Errorf("Prop %s reads %v, not Event.%s", p, got, f.Name)
		}
	}
	var fromTable []string
	for p := Prop(0); p < numProps; p++ {
		fromTable = append(fromTable, p.String())
	}
	if !slices.Equal(fromStruct, fromTable) {
		t.Errorf("wire order differs:\nstruct %v\ntable  %v", fromStruct, fromTable)
	}
}

// arrowTypeOfGo is the Arrow column type a Go field maps to; it is written
// from the struct's documented units, independently of arrowType.
func arrowTypeOfGo(f reflect.StructField) arrow.DataType {
	switch {
	case f.Type == reflect.TypeFor[Type]():
		return arrow.BinaryTypes.String
	case f.Name == "TS" || f.Name == "RecvTS" || f.Name == "ClientTS": // documented as Unix ms UTC
		return &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	}
	switch f.Type.Kind() {
	case reflect.String:
		return arrow.BinaryTypes.String
	case reflect.Int64:
		return arrow.PrimitiveTypes.Int64
	case reflect.Int:
		return arrow.PrimitiveTypes.Int32
	case reflect.Float64:
		return arrow.PrimitiveTypes.Float64
	case reflect.Bool:
		return arrow.FixedWidthTypes.Boolean
	case reflect.Uint64:
		return arrow.PrimitiveTypes.Uint64
	}
	return nil
}

func TestArrowSchemaMatchesStruct(t *testing.T) {
	byTag := map[string]reflect.StructField{}
	rt := reflect.TypeFor[Event]()
	for i := range rt.NumField() {
		byTag[rt.Field(i).Tag.Get("json")] = rt.Field(i)
	}
	for src := SourceClient; src <= SourceOrigin; src++ {
		sc := ArrowSchema(src)
		for _, f := range sc.Fields() {
			sf, ok := byTag[f.Name]
			if !ok {
				t.Errorf("%s: column %s is not an Event field", src, f.Name)
				continue
			}
			if want := arrowTypeOfGo(sf); !arrow.TypeEqual(f.Type, want) {
				t.Errorf("%s: column %s is %s, Event.%s wants %s", src, f.Name, f.Type, sf.Name, want)
			}
			if d, _ := f.Metadata.GetValue("description"); d == "" {
				t.Errorf("%s: column %s has no description", src, f.Name)
			}
		}
	}
	if ArrowSchema(SourceUnknown) != nil {
		t.Error("schema for unknown source")
	}
}

func columns(sc *arrow.Schema) string {
	var b strings.Builder
	for i, f := range sc.Fields() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Name)
		if f.Nullable {
			b.WriteByte('?')
		}
	}
	return b.String()
}

func TestArrowColumns(t *testing.T) {
	// Written by hand from the README tables: '?' marks nullable columns.
	want := map[Source]string{
		SourceCDN:    "v type ts recv_ts? stream_id? vendor node ip? country? province? city? isp? duration_ms? status bytes ttfb_ms eid? client_ts? clock_skew_ms?",
		SourceOrigin: "v type ts recv_ts? stream_id node bitrate_kbps fps line egress_isp? rtt_ms eid? client_ts? clock_skew_ms?",
		SourceClient: "v type ts recv_ts? user_id session_id? stream_id? vendor? node? ip? country? province? city? isp? " +
			"platform? client_version? quality? role? ok? connect_ms? error? first_frame_ms? duration_ms? media? " +
			"video_buffer_ms? audio_buffer_ms? bitrate_kbps? fps? stalled? reason? watch_ms? dropped? cache_hit? eid? client_ts? clock_skew_ms?",
	}
	for src, w := range want {
		if got := columns(ArrowSchema(src)); got != w {
			t.Errorf("%s:\n got %s\nwant %s", src, got, w)
		}
	}
}

func TestArrowBuilder(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	ab, err := NewArrowBuilder(mem, SourceClient)
	if err != nil {
		t.Fatal(err)
	}
	defer ab.Release()
	lines := []string{
		`{"v":1,"type":"heartbeat","ts":1795435200000,"user_id":"u1","stream_id":"s","stalled":true,"video_buffer_ms":0}`,
		`{"v":1,"type":"dns","ts":1795435201000,"user_id":"u2","cache_hit":false,"x":1}`,
	}
	for _, l := range lines {
		var e Event
		if err := ParseLine([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if err := ab.Append(&e); err != nil {
			t.Fatal(err)
		}
	}
	var cdn Event
	cdn.Type = TypeCDNRequest
	if err := ab.Append(&cdn); err == nil {
		t.Error("appended a CDN event to a client record")
	}
	rec := ab.NewRecordBatch()
	defer rec.Release()
	if rec.NumRows() != 2 {
		t.Fatalf("%d rows", rec.NumRows())
	}
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("no column %s", name)
		}
		return rec.Column(idx[0])
	}
	if got := col("type").(*array.String).Value(1); got != "dns" {
		t.Errorf("type[1] = %s", got)
	}
	if got := col("ts").(*array.Timestamp).Value(1); got != arrow.Timestamp(noon+1000) {
		t.Errorf("ts[1] = %d", got)
	}
	// A present zero is a value, an absent member is null.
	vb := col("video_buffer_ms").(*array.Int64)
	if vb.IsNull(0) || vb.Value(0) != 0 || !vb.IsNull(1) {
		t.Errorf("video_buffer_ms = %v", vb)
	}
	st := col("stream_id").(*array.String)
	if st.Value(0) != "s" || !st.IsNull(1) {
		t.Errorf("stream_id = %v", st)
	}
	ch := col("cache_hit").(*array.Boolean)
	if !ch.IsNull(0) || ch.IsNull(1) || ch.Value(1) {
		t.Errorf("cache_hit = %v", ch)
	}
}
