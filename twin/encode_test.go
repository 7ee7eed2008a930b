package twin

import (
	"encoding/json"
	"math"
	"testing"

	"edgenode/bus"
)

// The reference encoding of payloads: encoding/json on KubeEdge's shapes.
// v0.3.0's tags have a space before omitempty, so value and timestamp are
// always written (docs/protocol.md 5.2, 8 item 10).
type twinValueV03 struct {
	Value    *string          `json:"value"`
	Metadata *valueMetadataV3 `json:"metadata,omitempty"`
}

type valueMetadataV3 struct {
	Timestamp int64 `json:"timestamp"`
}

type msgTwinV03 struct {
	Expected        *twinValueV03 `json:"expected,omitempty"`
	Actual          *twinValueV03 `json:"actual,omitempty"`
	Optional        *bool         `json:"optional,omitempty"`
	Metadata        *typeMetadata `json:"metadata,omitempty"`
	ExpectedVersion *twinVersion  `json:"expected_version,omitempty"`
	ActualVersion   *twinVersion  `json:"actual_version,omitempty"`
}

// refTwin is a msgTwin that encoding/json encodes by reflection alone.
type refTwin msgTwin

func (t refTwin) MarshalJSON() ([]byte, error) {
	if t.era != bus.EraV03 {
		type plain msgTwin // no methods
		return json.Marshal(plain(t))
	}
	conv := func(v *twinValue) *twinValueV03 {
		if v == nil {
			return nil
		}
		o := &twinValueV03{Value: v.Value}
		if v.Metadata != nil {
			o.Metadata = &valueMetadataV3{Timestamp: v.Metadata.Timestamp}
		}
		return o
	}
	return json.Marshal(msgTwinV03{Expected: conv(t.Expected), Actual: conv(t.Actual), Optional: t.Optional,
		Metadata: t.Metadata, ExpectedVersion: t.ExpectedVersion, ActualVersion: t.ActualVersion})
}

func refTwins(m map[string]*msgTwin) map[string]*refTwin {
	if m == nil {
		return nil
	}
	out := map[string]*refTwin{}
	for k, t := range m {
		out[k] = (*refTwin)(t)
	}
	return out
}

// reference encodes v as encoding/json does with the shapes of
// payload.go.
func reference(t testing.TB, v jsonAppender) string {
	t.Helper()
	var r any
	switch m := v.(type) {
	case twinMessage:
		r = struct {
			baseMessage
			Twin map[string]*refTwin `json:"twin"`
		}{m.baseMessage, refTwins(m.Twin)}
	case *twinDelta:
		r = struct {
			baseMessage
			Twin  map[string]*refTwin `json:"twin"`
			Delta map[string]string   `json:"delta"`
		}{m.baseMessage, refTwins(m.Twin), m.Delta}
	case twinDocument:
		type doc struct {
			Last    *refTwin `json:"last"`
			Current *refTwin `json:"current"`
		}
		var docs map[string]*doc
		if m.Twin != nil {
			docs = map[string]*doc{}
			for k, d := range m.Twin {
				if d == nil {
					docs[k] = nil
					continue
				}
				docs[k] = &doc{(*refTwin)(d.Last), (*refTwin)(d.Current)}
			}
		}
		r = struct {
			baseMessage
			Twin map[string]*doc `json:"twin"`
		}{m.baseMessage, docs}
	default:
		t.Fatalf("reference(%T): no reference shape", v)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// payloadCases are payloads with every optional part present and absent,
// and strings that need escaping.
func payloadCases() []struct {
	name string
	v    jsonAppender
} {
	full := func(era bus.Era) *msgTwin {
		return &msgTwin{Expected: &twinValue{Value: ptr("25"), Metadata: &valueMetadata{Timestamp: 1559123456000}},
			Actual:   &twinValue{Value: ptr(`a"b\c<d>&e` + "\n\t\x01\u2028é\xff"), Metadata: &valueMetadata{}},
			Optional: ptr(false), Metadata: &typeMetadata{Type: "float"},
			ExpectedVersion: &twinVersion{Cloud: 3, Edge: -1}, ActualVersion: &twinVersion{}, era: era}
	}
	sparse := func(era bus.Era) *msgTwin {
		return &msgTwin{Expected: &twinValue{}, Actual: &twinValue{Metadata: &valueMetadata{Timestamp: 7}},
			Metadata: &typeMetadata{}, era: era}
	}
	var out []struct {
		name string
		v    jsonAppender
	}
	add := func(name string, v jsonAppender) {
		out = append(out, struct {
			name string
			v    jsonAppender
		}{name, v})
	}
	for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
		e := era.String()
		add(e+" result", twinMessage{baseMessage: baseMessage{EventID: "ev-1", Timestamp: 5},
			Twin: map[string]*msgTwin{"temp": full(era), "b": sparse(era), "a": {era: era}, "deleted": nil, "<&>": sparse(era)}})
		add(e+" nil twin", twinMessage{})
		add(e+" empty twin", twinMessage{Twin: map[string]*msgTwin{}})
		add(e+" delta", &twinDelta{baseMessage: baseMessage{EventID: "x"}, Twin: map[string]*msgTwin{"t": full(era)},
			Delta: map[string]string{"t": "25", "u": "<x>"}})
		add(e+" nil delta", &twinDelta{})
		add(e+" document", twinDocument{baseMessage: baseMessage{Timestamp: -3},
			Twin: map[string]*twinDoc{"t": {Last: sparse(era), Current: full(era)}, "new": {Current: full(era)}, "gone": {Last: full(era)}, "nil": nil}})
		add(e+" nil document", twinDocument{})
	}
	return out
}

func TestAppendJSON(t *testing.T) {
	for _, tc := range payloadCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, want := string(tc.v.appendJSON(nil)), reference(t, tc.v)
			if got != want {
				t.Errorf("appendJSON() =\n%s\nwant (encoding/json)\n%s", got, want)
			}
		})
	}
}

// The payload encoders allocate only the buffer they grow.
func TestAppendJSONAllocs(t *testing.T) {
	m := payloadCases()[0].v
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { m.appendJSON(buf[:0]) }); n != 0 {
		t.Errorf("appendJSON allocations = %v, want 0", n)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `a"b\c`, "<&>", "\x00\x1f\b\f\n\r\t", "é\u2028\u2029", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// FuzzAppendJSON builds payloads from fuzzed strings and numbers and
// compares them with encoding/json.
func FuzzAppendJSON(f *testing.F) {
	f.Add("temp", "25", "float", int64(1559123456000), int64(1), false)
	f.Add("<k>", "\xff\u2028", "", int64(0), int64(-5), true)
	f.Fuzz(func(t *testing.T, key, val, typ string, ts, ver int64, v03 bool) {
		era := bus.EraV123
		if v03 {
			era = bus.EraV03
		}
		tw := &msgTwin{Expected: &twinValue{Value: &val, Metadata: &valueMetadata{Timestamp: ts}},
			Actual: &twinValue{Metadata: &valueMetadata{Timestamp: ver}}, Optional: &v03, Metadata: &typeMetadata{Type: typ},
			ExpectedVersion: &twinVersion{Cloud: ver, Edge: ts}, era: era}
		for _, v := range []jsonAppender{
			twinMessage{baseMessage: baseMessage{EventID: val, Timestamp: ts}, Twin: map[string]*msgTwin{key: tw, key + "x": nil}},
			&twinDelta{baseMessage: baseMessage{EventID: key}, Twin: map[string]*msgTwin{key: tw}, Delta: map[string]string{key: val, typ: key}},
			twinDocument{Twin: map[string]*twinDoc{key: {Last: tw}, val: {Current: tw, Last: tw}}},
		} {
			if got, want := string(v.appendJSON(nil)), reference(t, v); got != want {
				t.Errorf("appendJSON(%T) =\n%s\nwant (encoding/json)\n%s", v, got, want)
			}
		}
	})
}

func BenchmarkPayloadEncode(b *testing.B) {
	m := payloadCases()[0].v
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf = m.appendJSON(buf[:0])
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// versionJSON writes a version column as json.Marshal does.
func FuzzVersionJSON(f *testing.F) {
	for _, v := range [][2]int64{{0, 0}, {1, 0}, {0, 3}, {-1, 9}, {math.MaxInt64, math.MinInt64}} {
		f.Add(v[0], v[1])
	}
	f.Fuzz(func(t *testing.T, cloud, edge int64) {
		v := &twinVersion{Cloud: cloud, Edge: edge}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := versionJSON(v); got != string(want) {
			t.Errorf("versionJSON(%+v) = %s, want %s", *v, got, want)
		}
	})
}
