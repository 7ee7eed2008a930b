package twin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
)

// benchUpdate is the first request of BenchmarkTwinUpdateBus.
const benchUpdate = `{"event_id":"b","twin":{"temp":{"actual":{"value":"2"}}}}`

// decodeCases are twin update requests the fast path must take (handled)
// or leave to encoding/json. They seed FuzzDecodeTwinUpdateFast.
var decodeCases = []struct {
	name    string
	in      string
	handled bool
}{
	{"bench request", benchUpdate, true},
	{"every field", `{"event_id":"ev-1","timestamp":1559123456000,"twin":{"temp":{"expected":{"value":"25","metadata":{"timestamp":1559123456000}},` +
		`"actual":{"value":"24.5","metadata":{"timestamp":-7}},"optional":false,"metadata":{"type":"float"},` +
		`"expected_version":{"cloud":3,"edge":-1},"actual_version":{"cloud":0,"edge":12}},"fan":{"optional":true}}}`, true},
	{"keys in any order", `{"twin":{"t":{"actual_version":{"edge":2,"cloud":1},"metadata":{"type":"int"},"actual":{"metadata":{"timestamp":5},"value":"1"}}},"timestamp":9,"event_id":"x"}`, true},
	{"whitespace", " \t\r\n{ \"event_id\" :\t\"x\" ,\n\"twin\"\r: { \"t\" : { \"actual\" : { \"value\" : \"1\" } , \"optional\" : true } } }\n ", true},
	{"empty twins", `{"twin":{"a":{},"b":{"expected":{}}}}`, true},
	{"v0.3 request", `{"event_id":"b","twin":{"k":{"expected":{"value":"on"}}}}`, true},
	{"v0.3 empty value", `{"event_id":"a","twin":{"k":{"actual":{"value":""}}}}`, true},
	{"v1.23 request", `{"event_id":"ev-1","timestamp":0,"twin":{"temperature":{"actual":{"value":"25.5"}},"fan":{"expected":{"value":"3"},"optional":true}}}`, true},
	{"versions", `{"event_id":"r1","twin":{"temp":{"expected":{"value":"6"},"expected_version":{"cloud":99,"edge":99}}}}`, true},
	{"delete", `{"event_id":"d","twin":{"nk":null}}`, true},
	{"empty twin", `{"event_id":"e7","twin":{}}`, true},
	{"no twin", `{"event_id":"e2"}`, true},
	{"empty object", `{}`, true},
	{"empty strings", `{"event_id":"","twin":{"":{"actual":{"value":""},"metadata":{"type":""}}}}`, true},
	{"bad key for the checks", `{"event_id":"b3","twin":{"a b":{}}}`, true},
	{"printable ASCII", `{"twin":{"!#$%&'()*+,-./:;<=>?@[]^_{|}~` + "\x7f" + `":{"actual":{"value":"<&>"}}}}`, true},
	{"null twin", `{"twin":null}`, true},
	{"null everywhere", `{"event_id":null,"timestamp":null,"twin":{"k":{"expected":null,"actual":null,"optional":null,"metadata":null,` +
		`"expected_version":null,"actual_version":null},"n":null}}`, true},
	{"null inside", `{"twin":{"k":{"expected":{"value":null,"metadata":null},"actual":{"metadata":{"timestamp":null}},` +
		`"metadata":{"type":null},"expected_version":{"cloud":null,"edge":null}}}}`, true},
	{"numbers", `{"timestamp":-0,"twin":{"k":{"expected_version":{"cloud":999999999999999999,"edge":-999999999999999999},"actual_version":{"cloud":0,"edge":-1}}}}`, true},
	{"long value", `{"event_id":"b5","twin":{"temperature":{"actual":{"value":"` + strings.Repeat("1", 2000) + `"}}}}`, true},

	{"unknown key", `{"event_id":"a","extra":1,"twin":{}}`, false},
	{"unknown nested key", `{"twin":{"k":{"actual":{"value":"1","extra":2}}}}`, false},
	{"unknown version key", `{"twin":{"k":{"actual_version":{"cloud":1,"edge":1,"x":0}}}}`, false},
	{"unknown metadata key", `{"twin":{"k":{"metadata":{"type":"int","x":null}}}}`, false},
	{"case of a key", `{"Event_ID":"x","twin":{}}`, false},
	{"case of twin", `{"TWIN":{"k":{}}}`, false},
	{"case of a nested key", `{"twin":{"k":{"Actual":{"value":"1"}}}}`, false},
	{"unicode fold", "{\"time\u017ftamp\":1,\"twin\":{}}", false},
	{"unicode fold nested", "{\"twin\":{\"k\":{\"actual_ver\u017fion\":{\"cloud\":1,\"edge\":1}}}}", false},
	{"escape in a value", `{"twin":{"k":{"actual":{"value":"a\"b"}}}}`, false},
	{"escape in a key", `{"twin":{"k\u0041":{}}}`, false},
	{"escape in a field name", `{"ev\u0065nt_id":"x","twin":{}}`, false},
	{"escaped newline", `{"event_id":"a\nb","twin":{}}`, false},
	{"non-ASCII", `{"event_id":"é","twin":{}}`, false},
	{"invalid UTF-8", "{\"twin\":{\"\xff\":{}}}", false},
	{"raw control byte", "{\"event_id\":\"a\tb\",\"twin\":{}}", false},
	{"repeated field", `{"event_id":"a","event_id":"b","twin":{}}`, false},
	{"repeated twin", `{"twin":{"a":{}},"twin":{"b":{}}}`, false},
	{"repeated map key", `{"twin":{"k":{"actual":{"value":"1"}},"k":{"expected":{"value":"2"}}}}`, false},
	{"repeated null map key", `{"twin":{"k":null,"k":null}}`, false},
	{"repeated side", `{"twin":{"k":{"actual":{"value":"1"},"actual":{"metadata":{}}}}}`, false},
	{"repeated value", `{"twin":{"k":{"actual":{"value":"1","value":"2"}}}}`, false},
	{"repeated version", `{"twin":{"k":{"expected_version":{"cloud":1,"cloud":2}}}}`, false},
	{"fraction", `{"timestamp":1.5,"twin":{}}`, false},
	{"zero fraction", `{"timestamp":1.0,"twin":{}}`, false},
	{"exponent", `{"timestamp":1e3,"twin":{}}`, false},
	{"upper exponent", `{"twin":{"k":{"actual_version":{"cloud":1E3,"edge":0}}}}`, false},
	{"leading zero", `{"timestamp":01,"twin":{}}`, false},
	{"negative leading zero", `{"timestamp":-01,"twin":{}}`, false},
	{"minus alone", `{"timestamp":-,"twin":{}}`, false},
	{"minus space", `{"timestamp":- 1,"twin":{}}`, false},
	{"plus", `{"timestamp":+1,"twin":{}}`, false},
	{"19 digits", `{"timestamp":1000000000000000000,"twin":{}}`, false},
	{"over int64", `{"timestamp":9223372036854775808,"twin":{}}`, false},
	{"number as string", `{"timestamp":"1","twin":{}}`, false},
	{"twin an array", `{"twin":[]}`, false},
	{"twin a string", `{"twin":"x"}`, false},
	{"twin a bool", `{"twin":true}`, false},
	{"twin a number", `{"twin":{"k":5}}`, false},
	{"side a string", `{"twin":{"k":{"actual":"1"}}}`, false},
	{"value a number", `{"event_id":"e4","twin":{"x":{"actual":{"value":5}}}}`, false},
	{"value an object", `{"twin":{"x":{"actual":{"value":{}}}}}`, false},
	{"optional a string", `{"twin":{"k":{"optional":"true"}}}`, false},
	{"optional a number", `{"twin":{"k":{"optional":1}}}`, false},
	{"event id a number", `{"event_id":5,"twin":{}}`, false},
	{"type a bool", `{"twin":{"k":{"metadata":{"type":true}}}}`, false},
	{"metadata an array", `{"twin":{"k":{"metadata":[]}}}`, false},
	{"version a number", `{"twin":{"k":{"expected_version":1}}}`, false},
	{"truncated", `{"event_id":`, false},
	{"truncated twin", `{"event_id":"b1","twin":`, false},
	{"truncated close", `{"twin":{"k":{"actual":{"value":"2"}}}`, false},
	{"truncated null", `{"twin":{"k":nul`, false},
	{"truncated string", `{"twin":{"k":{"actual":{"value":"2`, false},
	{"truncated number", `{"timestamp":12`, false},
	{"truncated bool", `{"twin":{"k":{"optional":tru}}}`, false},
	{"empty", ``, false},
	{"space only", " \n", false},
	{"open brace", `{`, false},
	{"trailing garbage", `{"twin":{}}x`, false},
	{"trailing object", `{"twin":{}}{}`, false},
	{"trailing comma after", `{"twin":{}},`, false},
	{"trailing comma", `{"twin":{},}`, false},
	{"leading comma", `{,"twin":{}}`, false},
	{"missing colon", `{"twin" {}}`, false},
	{"missing comma", `{"event_id":"a" "twin":{}}`, false},
	{"null with more", `{"twin":nullx}`, false},
	{"true with more", `{"twin":{"k":{"optional":truex}}}`, false},
	{"single quotes", `{'twin':{}}`, false},
	{"top-level null", `null`, false},
	{"top-level array", `[]`, false},
	{"top-level string", `"s"`, false},
	{"top-level number", `1`, false},
	{"byte order mark", "\ufeff{\"twin\":{}}", false},
	{"form feed", "{\f\"twin\":{}}", false},
	{"no-break space", "{\u00a0\"twin\":{}}", false},
}

// checkDecodeTwinUpdateFast checks the fast path on b against
// encoding/json, and returns whether the fast path took it.
func checkDecodeTwinUpdateFast(t *testing.T, b []byte) bool {
	t.Helper()
	got, ok := decodeTwinUpdateFast(b)
	opt := cmp.AllowUnexported(twinMessage{}, msgTwin{})
	if !ok {
		if diff := cmp.Diff(twinMessage{}, got, opt); diff != "" {
			t.Errorf("decodeTwinUpdateFast(%q) declined with a value (-zero +got):\n%s", b, diff)
		}
		return false
	}
	var want twinMessage
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("decodeTwinUpdateFast(%q) = %+v, true; json.Unmarshal refuses it: %v", b, got, err)
	}
	if diff := cmp.Diff(want, got, opt); diff != "" {
		t.Errorf("decodeTwinUpdateFast(%q) differs from json.Unmarshal (-json +fast):\n%s", b, diff)
	}
	return true
}

func TestDecodeTwinUpdateFast(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkDecodeTwinUpdateFast(t, []byte(tc.in)); got != tc.handled {
				t.Errorf("decodeTwinUpdateFast(%q) handled = %v, want %v", tc.in, got, tc.handled)
			}
		})
	}
}

// A twin update allocates what its result holds: the map and its table,
// the key, the twin, its actual side and the value's pointer ("b" and "2"
// are one byte, which Go does not allocate for). Through encoding/json it
// makes 17.
func TestDecodeTwinUpdateAllocs(t *testing.T) {
	b := []byte(benchUpdate)
	n := testing.AllocsPerRun(100, func() {
		if _, err := decodeTwinUpdate(b, bus.EraV123); err != nil {
			t.Fatal(err)
		}
	})
	if n > 6 {
		t.Errorf("decodeTwinUpdate(%s) allocations = %v, want at most 6", b, n)
	}
}

// FuzzDecodeTwinUpdateFast checks that what the fast path takes,
// encoding/json takes and decodes to the same value.
func FuzzDecodeTwinUpdateFast(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in))
	}
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeTwinUpdateFast(t, b)
	})
}

func BenchmarkDecodeTwinUpdate(b *testing.B) {
	p := []byte(benchUpdate)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeTwinUpdate(p, bus.EraV123); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m twinMessage
			if err := decode(p, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
