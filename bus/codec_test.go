package bus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cmpMsg compares messages by their visible fields (ID has unexported ones).
var cmpMsg = cmp.Options{
	cmp.Comparer(func(a, b ID) bool { return a == b }),
}

const testID = "0c4f9a2e-8b1d-4c3e-9f00-1a2b3c4d5e6f"

func TestEncode(t *testing.T) {
	full := Message{
		Header: Header{ID: MustID(testID), ParentID: MustID("p-1"), Timestamp: 1559123456789, Sync: true,
			ResourceVersion: "48213", Type: "channel"},
		Route: Route{Source: SourceEdgeController, Destination: "edged", Group: GroupResource,
			Operation: OpInsert, Resource: "default/pod/nginx"},
		Content: []byte(`{"metadata":{"name":"nginx"}}`),
	}
	bare := Message{Header: Header{ID: MustID(testID), Timestamp: 7}}
	tests := []struct {
		name string
		msg  Message
		era  Era
		want string
	}{
		{
			// docs/protocol.md 1.1: parent_msg_id, sync and group always
			// written in v0.3, even when empty; source, operation, resource
			// omitted.
			name: "v0.3 empty keys",
			msg:  bare,
			era:  EraV03,
			want: `{"header":{"msg_id":"` + testID + `","parent_msg_id":"","timestamp":7,"sync":false},"route":{"group":""},"content":null}`,
		},
		{
			// docs/protocol.md 1.2: everything but msg_id and timestamp is
			// omitempty.
			name: "v1.23 empty keys",
			msg:  bare,
			era:  EraV123,
			want: `{"header":{"msg_id":"` + testID + `","timestamp":7},"route":{},"content":null}`,
		},
		{
			// v0.3 has no resourceversion, type or destination.
			name: "v0.3 full",
			msg:  full,
			era:  EraV03,
			want: `{"header":{"msg_id":"` + testID + `","parent_msg_id":"p-1","timestamp":1559123456789,"sync":true},` +
				`"route":{"source":"edgecontroller","group":"resource","operation":"insert","resource":"default/pod/nginx"},` +
				`"content":{"metadata":{"name":"nginx"}}}`,
		},
		{
			name: "v1.23 full",
			msg:  full,
			era:  EraV123,
			want: `{"header":{"msg_id":"` + testID + `","parent_msg_id":"p-1","timestamp":1559123456789,"resourceversion":"48213","sync":true,"type":"channel"},` +
				`"route":{"source":"edgecontroller","destination":"edged","group":"resource","operation":"insert","resource":"default/pod/nginx"},` +
				`"content":{"metadata":{"name":"nginx"}}}`,
		},
		{
			// docs/protocol.md 8 item 6: MetaManager is "metaManager" on the
			// v0.3 wire.
			name: "v0.3 metaManager spelling",
			msg:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}, Route: Route{Source: ModuleMeta, Group: GroupResource, Operation: OpUpdate, Resource: "default/podstatus"}, Content: []byte(`[]`)},
			era:  EraV03,
			want: `{"header":{"msg_id":"a","parent_msg_id":"","timestamp":1,"sync":false},"route":{"source":"metaManager","group":"resource","operation":"update","resource":"default/podstatus"},"content":[]}`,
		},
		{
			name: "v1.23 metamanager spelling",
			msg:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}, Route: Route{Source: ModuleMeta}},
			era:  EraV123,
			want: `{"header":{"msg_id":"a","timestamp":1},"route":{"source":"metamanager"},"content":null}`,
		},
		{
			name: "v1.23 only group",
			msg:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}, Route: Route{Group: GroupHub, Operation: OpKeepalive}},
			era:  EraV123,
			want: `{"header":{"msg_id":"a","timestamp":1},"route":{"group":"hub","operation":"keepalive"},"content":null}`,
		},
		{
			name: "string content",
			msg:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}, Route: Route{Source: ModuleHub, Group: GroupResource, Operation: OpKeepalive, Resource: ResNode}, Content: JSONString("ping")},
			era:  EraV03,
			want: `{"header":{"msg_id":"a","parent_msg_id":"","timestamp":1,"sync":false},"route":{"source":"websocket","group":"resource","operation":"keepalive","resource":"node"},"content":"ping"}`,
		},
		{
			name: "array content",
			msg:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}, Content: []byte(`["{\"a\":1}","x"]`)},
			era:  EraV123,
			want: `{"header":{"msg_id":"a","timestamp":1},"route":{},"content":["{\"a\":1}","x"]}`,
		},
		{
			name: "negative timestamp",
			msg:  Message{Header: Header{ID: MustID("a"), Timestamp: -9223372036854775808}},
			era:  EraV123,
			want: `{"header":{"msg_id":"a","timestamp":-9223372036854775808},"route":{},"content":null}`,
		},
		{
			name: "escaped strings",
			msg:  Message{Header: Header{ID: MustID("a\"b\\c\n"), Timestamp: 0}, Route: Route{Resource: "t\x01/\t\r\xff"}},
			era:  EraV123,
			want: `{"header":{"msg_id":"a\"b\\c\n","timestamp":0},"route":{"resource":"t\u0001/\t\r\ufffd"},"content":null}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Encode(nil, tt.msg, tt.era)
			if err != nil {
				t.Fatalf("Encode() error = %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Encode() =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("Encode() = %s, not valid JSON", got)
			}
		})
	}
}

func TestEncodeBadContent(t *testing.T) {
	for _, c := range []string{`{`, `hello`, `"unterminated`, `{"a":1}x`} {
		msg := Message{Header: Header{ID: MustID("a")}, Content: []byte(c)}
		dst := []byte("prefix")
		got, err := Encode(dst, msg, EraV123)
		if !errors.Is(err, ErrBadContent) {
			t.Errorf("Encode(content %q) error = %v, want ErrBadContent", c, err)
		}
		if string(got) != "prefix" {
			t.Errorf("Encode(content %q) = %q, want dst unchanged", c, got)
		}
	}
}

func TestEncodeAppends(t *testing.T) {
	msg := Message{Header: Header{ID: MustID("a"), Timestamp: 1}}
	got, err := Encode([]byte("x"), msg, EraV123)
	if err != nil || string(got) != `x{"header":{"msg_id":"a","timestamp":1},"route":{},"content":null}` {
		t.Errorf("Encode(x, msg) = %q, %v", got, err)
	}
}

// decodeTests are frames from both eras and what they decode to. They also
// seed FuzzDecode.
var decodeTests = []struct {
	name  string
	frame string
	want  Message
}{
	{
		name:  "v0.3 keepalive",
		frame: `{"header":{"msg_id":"0c4f","parent_msg_id":"","timestamp":1559123456789,"sync":false},"route":{"source":"websocket","group":"resource","operation":"keepalive","resource":"node"},"content":"ping"}`,
		want: Message{Header: Header{ID: MustID("0c4f"), Timestamp: 1559123456789},
			Route:   Route{Source: ModuleHub, Group: GroupResource, Operation: OpKeepalive, Resource: ResNode},
			Content: []byte(`"ping"`)},
	},
	{
		name:  "v1.23 pod insert",
		frame: `{"header":{"msg_id":"9d1c","timestamp":1752550000000,"resourceversion":"48213"},"route":{"source":"edgecontroller","group":"resource","operation":"insert","resource":"default/pod/nginx"},"content":{"metadata":{"name":"nginx"}}}`,
		want: Message{Header: Header{ID: MustID("9d1c"), Timestamp: 1752550000000, ResourceVersion: "48213"},
			Route:   Route{Source: SourceEdgeController, Group: GroupResource, Operation: OpInsert, Resource: "default/pod/nginx"},
			Content: []byte(`{"metadata":{"name":"nginx"}}`)},
	},
	{
		name:  "v0.3 metaManager source maps to the module",
		frame: `{"header":{"msg_id":"m","parent_msg_id":"p","timestamp":1,"sync":true},"route":{"source":"metaManager","group":"resource","operation":"update","resource":"default/podstatus"},"content":[{"UID":"u"}]}`,
		want: Message{Header: Header{ID: MustID("m"), ParentID: MustID("p"), Timestamp: 1, Sync: true},
			Route:   Route{Source: ModuleMeta, Group: GroupResource, Operation: OpUpdate, Resource: "default/podstatus"},
			Content: []byte(`[{"UID":"u"}]`)},
	},
	{
		name:  "null content",
		frame: `{"header":{"msg_id":"a","timestamp":1},"route":{},"content":null}`,
		want:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}},
	},
	{
		name:  "missing content and route",
		frame: `{"header":{"msg_id":"a","timestamp":1}}`,
		want:  Message{Header: Header{ID: MustID("a"), Timestamp: 1}},
	},
	{
		name:  "empty object",
		frame: `{}`,
		want:  Message{},
	},
	{
		name:  "whitespace and unknown keys",
		frame: " \n\t{\"header\":{\"msg_id\":\"a\",\"extra\":[1,2]},\"route\":{\"destination\":\"edged\",\"type\":\"x\"},\"other\":{},\"content\":  \"x\" }",
		want: Message{Header: Header{ID: MustID("a")}, Route: Route{Destination: "edged"},
			Content: []byte(`"x"`)},
	},
	{
		name:  "type and parent",
		frame: `{"header":{"msg_id":"a","parent_msg_id":"b","timestamp":2,"type":"channel"},"route":{"source":"edged","group":"meta","operation":"query","resource":"default/configmap/c"}}`,
		want: Message{Header: Header{ID: MustID("a"), ParentID: MustID("b"), Timestamp: 2, Type: "channel"},
			Route: Route{Source: ModulePod, Group: GroupMeta, Operation: OpQuery, Resource: "default/configmap/c"}},
	},
	{
		name:  "36-byte id",
		frame: `{"header":{"msg_id":"` + testID + `"}}`,
		want:  Message{Header: Header{ID: MustID(testID)}},
	},
	{
		name:  "number content",
		frame: `{"content":12.5}`,
		want:  Message{Content: []byte(`12.5`)},
	},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.frame))
			if err != nil {
				t.Fatalf("Decode() error = %v", err)
			}
			want := tt.want
			want.SetResource(want.Route.Resource) // Decode splits it too
			if diff := cmp.Diff(want, got, cmpMsg); diff != "" {
				t.Errorf("Decode() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

var badFrames = []struct {
	name  string
	frame string
}{
	{"empty", ``},
	{"spaces", "   "},
	{"array", `[{"header":{}}]`},
	{"string", `"header"`},
	{"null", `null`},
	{"number", `12`},
	{"truncated", `{"header":{"msg_id":"a"`},
	{"trailing garbage", `{"header":{}} x`},
	{"header not object", `{"header":"x"}`},
	{"msg_id number", `{"header":{"msg_id":12}}`},
	{"timestamp string", `{"header":{"msg_id":"a","timestamp":"1"}}`},
	{"timestamp float", `{"header":{"timestamp":1.5}}`},
	{"sync string", `{"header":{"sync":"true"}}`},
	{"route array", `{"route":[]}`},
	{"group number", `{"route":{"group":1}}`},
	{"bad content", `{"content":{"a":}}`},
	{"msg_id too long", `{"header":{"msg_id":"` + testID + `x"}}`},
	{"parent id too long", `{"header":{"msg_id":"a","parent_msg_id":"` + strings.Repeat("z", 37) + `"}}`},
}

func TestDecodeBadFrames(t *testing.T) {
	for _, tt := range badFrames {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.frame))
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("Decode(%q) = %+v, %v, want ErrBadFrame", tt.frame, got, err)
			}
		})
	}
}

// TestRoundTrip encodes messages in both eras and decodes them back. v0.3
// has no resourceversion, type or destination, so those are lost there.
func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		NewMessage(ModulePod, GroupMeta, OpUpdate, "default/podstatus/a", []byte(`{"UID":"u","Status":{}}`)),
		NewMessage(ModuleMeta, GroupResource, OpUpdate, "default/podstatus", []byte(`[]`)),
		NewMessage(ModuleEdgeHub, GroupMeta, OpConnect, ResNodeConnection, JSONString(CloudConnected)),
		{Header: Header{ID: NewID(), ParentID: NewID(), Timestamp: 1, Sync: true, ResourceVersion: "9", Type: "t"},
			Route:   Route{Source: SourceController, Destination: "d", Group: GroupResource, Operation: OpResponse, Resource: "default/pod/x"},
			Content: JSONString("OK")},
		{Header: Header{ID: MustID("ünïcödé")}, Route: Route{Resource: "ns/pod/\"quoted\"\\\u2028"}},
	}
	for _, m := range msgs {
		for _, era := range []Era{EraV03, EraV123} {
			b, err := Encode(nil, m, era)
			if err != nil {
				t.Fatalf("Encode(%+v, %v) error = %v", m, era, err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s) error = %v", b, err)
			}
			want := m
			if era == EraV03 {
				want.Header.ResourceVersion, want.Header.Type, want.Route.Destination = "", "", ""
			}
			want.SetResource(want.Route.Resource)
			if diff := cmp.Diff(want, got, cmpMsg); diff != "" {
				t.Errorf("Decode(Encode(msg, %v)) mismatch (-want +got):\n%s", era, diff)
			}
		}
	}
}

func TestEra(t *testing.T) {
	tests := []struct {
		in      string
		want    Era
		wantErr bool
	}{
		{"", EraV123, false},
		{"v1.23", EraV123, false},
		{"current", EraV123, false},
		{"v0.3", EraV03, false},
		{"seed", EraV03, false},
		{"v0.4", 0, true},
		{"V0.3", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseEra(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseEra(%q) = %v, %v, want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && tt.in != "" && tt.in != "current" && tt.in != "seed" && got.String() != tt.in {
			t.Errorf("ParseEra(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestContentHelpers(t *testing.T) {
	tests := []struct {
		content   string
		str       string
		isString  bool
		bytes     string
		isOK      bool
		jsonInput string // for JSONString; empty to skip
	}{
		{content: `"OK"`, str: "OK", isString: true, bytes: "OK", isOK: true, jsonInput: "OK"},
		{content: `"a\"b\n"`, str: "a\"b\n", isString: true, bytes: "a\"b\n", jsonInput: "a\"b\n"},
		{content: `{"a":1}`, bytes: `{"a":1}`},
		{content: `"bad`, bytes: `"bad`},
		{content: ``, bytes: ``},
		{content: `null`, bytes: `null`},
		{content: ` "OK"`, bytes: ` "OK"`},
	}
	for _, tt := range tests {
		s, ok := ContentString([]byte(tt.content))
		if s != tt.str || ok != tt.isString {
			t.Errorf("ContentString(%q) = %q, %v, want %q, %v", tt.content, s, ok, tt.str, tt.isString)
		}
		if got := string(ContentBytes([]byte(tt.content))); got != tt.bytes {
			t.Errorf("ContentBytes(%q) = %q, want %q", tt.content, got, tt.bytes)
		}
		if got := IsOK([]byte(tt.content)); got != tt.isOK {
			t.Errorf("IsOK(%q) = %v, want %v", tt.content, got, tt.isOK)
		}
		if tt.jsonInput != "" {
			if got := string(JSONString(tt.jsonInput)); got != tt.content {
				t.Errorf("JSONString(%q) = %s, want %s", tt.jsonInput, got, tt.content)
			}
		}
	}
}

// FuzzDecode checks that Decode never panics and that what it accepts
// re-encodes, in both eras, to valid JSON that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add([]byte(tt.frame))
	}
	for _, tt := range badFrames {
		f.Add([]byte(tt.frame))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("Decode(%q) error = %v, want ErrBadFrame", data, err)
			}
			return
		}
		for _, era := range []Era{EraV123, EraV03} {
			b, err := Encode(nil, m, era)
			if err != nil {
				t.Fatalf("Encode(Decode(%q), %v) error = %v", data, era, err)
			}
			if !json.Valid(b) {
				t.Fatalf("Encode(Decode(%q), %v) = %s, not valid JSON", data, era, b)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s) error = %v", b, err)
			}
			want := m
			if era == EraV03 {
				want.Header.ResourceVersion, want.Header.Type, want.Route.Destination = "", "", ""
			}
			want.SetResource(want.Route.Resource)
			if diff := cmp.Diff(want, got, cmpMsg); diff != "" {
				t.Fatalf("round trip of %q in %v (-want +got):\n%s", data, era, diff)
			}
		}
	})
}
