package mqtt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mochi "github.com/mochi-mqtt/server/v2"

	"edgenode/bus"
)

func b64(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

type ingressCase struct {
	name    string
	topic   string
	payload string
	era     bus.Era
	dest    Dest
	op      bus.Op
	res     string
}

// ingressCases cover every subscribed topic in both eras (docs/protocol.md 4.2).
var ingressCases = []ingressCase{
	{"device state one-level", "$hw/events/device/dev1/state/update", `{"state":"online"}`, bus.EraV123, DestTwin, bus.OpResponse, "$hw/events/device/dev1/state/update"},
	{"device state ns/name", "$hw/events/device/default/dev1/state/update", `{"state":"online"}`, bus.EraV123, DestTwin, bus.OpResponse, "$hw/events/device/default/dev1/state/update"},
	{"twin update one-level", "$hw/events/device/dev1/twin/update", `{}`, bus.EraV123, DestTwin, bus.OpResponse, "$hw/events/device/dev1/twin/update"},
	{"twin get ns/name", "$hw/events/device/ns/d/twin/get", `{"event_id":"1"}`, bus.EraV123, DestTwin, bus.OpResponse, "$hw/events/device/ns/d/twin/get"},
	{"twin cloud_updated", "$hw/events/device/d/twin/cloud_updated", `{}`, bus.EraV123, DestTwin, bus.OpResponse, "$hw/events/device/d/twin/cloud_updated"},
	{"membership get", "$hw/events/node/node1/membership/get", `{"event_id":"e"}`, bus.EraV123, DestTwin, bus.OpResponse, "$hw/events/node/node1/membership/get"},
	{"upload v1.23", "$hw/events/upload/x/y", `"hello"`, bus.EraV123, DestHub, bus.OpUpload, "$hw/events/upload/x/y"},
	{"upload records v1.23", "SYS/dis/upload_records", `rec`, bus.EraV123, DestHub, bus.OpUpload, "SYS/dis/upload_records"},
	{"user v1.23", "default/user/temp", `{"t":1}`, bus.EraV123, DestHub, bus.OpUpload, "default/user/temp"},
	{"device state v0.3", "$hw/events/device/dev1/state/update", `{"state":"offline"}`, bus.EraV03, DestTwin, bus.OpResponse, "$hw/events/device/dev1/state/update"},
	{"membership get v0.3", "$hw/events/node/n/membership/get", `{}`, bus.EraV03, DestTwin, bus.OpResponse, "$hw/events/node/n/membership/get"},
	{"upload v0.3", "$hw/events/upload/a", `up`, bus.EraV03, DestHub, bus.OpResponse, b64("$hw/events/upload/a")},
	{"upload records v0.3 raw", "SYS/dis/upload_records", `rec`, bus.EraV03, DestHub, bus.OpResponse, "SYS/dis/upload_records"},
	{"v0.3 prefix without slash", "$hw/events/devicex", `p`, bus.EraV03, DestTwin, bus.OpResponse, "$hw/events/devicex"},
	{"v1.23 prefix needs slash", "$hw/events/devicex", `p`, bus.EraV123, DestHub, bus.OpUpload, "$hw/events/devicex"},
	{"binary payload", "$hw/events/upload/bin", "\x00\xff\"\\", bus.EraV123, DestHub, bus.OpUpload, "$hw/events/upload/bin"},
}

func TestIngress(t *testing.T) {
	for _, c := range ingressCases {
		t.Run(c.name, func(t *testing.T) {
			d, m := Ingress("app1", c.topic, []byte(c.payload), c.era)
			if d != c.dest {
				t.Errorf("Ingress(%q, %v) dest = %d, want %d", c.topic, c.era, d, c.dest)
			}
			want := bus.Route{Source: bus.ModuleBusSrc, Group: bus.GroupUser, Operation: c.op, Resource: c.res}
			if diff := cmp.Diff(want, m.Route); diff != "" {
				t.Errorf("Ingress(%q, %v) route -want +got:\n%s", c.topic, c.era, diff)
			}
			if d == DestTwin {
				// Twin gets the payload as it arrived, and the client.
				if string(m.Content) != c.payload || m.Header.Type != "app1" {
					t.Errorf("Ingress(%q) content, type = %q, %q; want %q, %q", c.topic, m.Content, m.Header.Type, c.payload, "app1")
				}
			} else if got, ok := bus.ContentString(m.Content); !ok || (got != c.payload && strings.ToValidUTF8(c.payload, "\uFFFD") != got) {
				t.Errorf("Ingress(%q) content = %s, want the payload %q as a JSON string", c.topic, m.Content, c.payload)
			}
			if m.Header.ID.IsZero() || m.Header.Timestamp == 0 {
				t.Errorf("Ingress(%q) header = %+v, want an id and a timestamp", c.topic, m.Header)
			}
		})
	}
}

func FuzzIngress(f *testing.F) {
	for _, c := range ingressCases {
		f.Add(c.topic, []byte(c.payload), c.era == bus.EraV03)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte, v03 bool) {
		e := bus.EraV123
		if v03 {
			e = bus.EraV03
		}
		d, m := Ingress("c", topic, payload, e)
		if d != DestTwin && d != DestHub {
			t.Fatalf("Ingress(%q) dest = %d", topic, d)
		}
		if d == DestTwin {
			if m.Route.Resource != topic || string(m.Content) != string(payload) {
				t.Fatalf("Ingress(%q) to twin = %q %q, want the topic and payload as they arrived", topic, m.Route.Resource, m.Content)
			}
			return
		}
		if _, ok := bus.ContentString(m.Content); !ok {
			t.Fatalf("Ingress(%q) content %q is not a JSON string", topic, m.Content)
		}
		// The resource always gives the topic back: base64 for twin and v0.3,
		// raw for v1.23 uploads.
		res := m.Route.Resource
		if m.Route.Operation == bus.OpResponse && !(e == bus.EraV03 && topic == TopicUploadRecords) {
			raw, err := base64.URLEncoding.DecodeString(res)
			if err != nil {
				t.Fatalf("Ingress(%q) resource %q: %v", topic, res, err)
			}
			res = string(raw)
		}
		if res != topic {
			t.Fatalf("Ingress(%q) resource gives %q back", topic, res)
		}
		wantOp := bus.OpResponse
		if d == DestHub && e == bus.EraV123 {
			wantOp = bus.OpUpload
		}
		if m.Route.Operation != wantOp || d != Classify(topic, e) {
			t.Fatalf("Ingress(%q, %v) = dest %d op %s, want dest %d op %s", topic, e, d, m.Route.Operation, Classify(topic, e), wantOp)
		}
	})
}

func TestValidFilter(t *testing.T) {
	cases := []struct {
		f            string
		filter, name bool
	}{
		{"a/b", true, true},
		{"+/user/#", true, false},
		{"#", true, false},
		{"$hw/events/device/+/+/twin/+", true, false},
		{"a/#/b", false, false},
		{"a/b#", false, false},
		{"a+/b", false, false},
		{"", false, false},
		{"a\x00b", false, false},
		{"\xff", false, false},
		{"/", true, true},
		{"$share/g/a", false, false},
		{"$SHARE", false, false},
		{"$shared/a", true, true},
	}
	for _, c := range cases {
		if got := ValidFilter(c.f); got != c.filter {
			t.Errorf("ValidFilter(%q) = %v, want %v", c.f, got, c.filter)
		}
		if got := ValidTopic(c.f); got != c.name {
			t.Errorf("ValidTopic(%q) = %v, want %v", c.f, got, c.name)
		}
	}
}

// ValidTopic checks every topic published, twin's results too, without
// allocating.
func TestValidTopicAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if !ValidTopic("$hw/events/device/default/s1/twin/update/result") {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

// FuzzValidFilter: every filter we accept, the embedded broker accepts too,
// and the topic names we accept are the filters without wildcards.
func FuzzValidFilter(f *testing.F) {
	for _, s := range []string{"a/b", "+/user/#", "#", "a/#/b", "a+", "$share/g/a", "", "/", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidFilter(s) && !mochi.IsValidFilter(s, false) {
			t.Fatalf("ValidFilter(%q) = true, mochi refuses it", s)
		}
		if got, want := ValidTopic(s), ValidFilter(s) && !strings.ContainsAny(s, "+#"); got != want {
			t.Fatalf("ValidTopic(%q) = %v, want %v: a filter without wildcards", s, got, want)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	cases := []struct {
		addr string
		want bool
		err  bool
	}{
		{"127.0.0.1:1883", true, false},
		{"127.0.0.2:1883", true, false},
		{"127.255.255.254:1", true, false},
		{"[::1]:1883", true, false},
		{"localhost:1883", true, false},
		{"LocalHost:0", true, false},
		{"0.0.0.0:1883", false, false},
		{":1883", false, false},
		{"[::]:1883", false, false},
		{"192.168.1.10:1883", false, false},
		{"[::ffff:127.0.0.1]:1883", true, false},
		{"128.0.0.1:1883", false, false},
		{"myhost:1883", false, false},
		{"127.0.0.1", false, true},
	}
	for _, c := range cases {
		got, err := IsLoopback(c.addr)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("IsLoopback(%q) = %v, %v; want %v, error %v", c.addr, got, err, c.want, c.err)
		}
	}
}

var credCases = []struct {
	name string
	in   string
	want Credentials
	err  bool
}{
	{"one", "dev:secret\n", Credentials{"dev": "secret"}, false},
	{"comments and colon in password", "# users\n\nalice:a:b\n  bob:pw  \n", Credentials{"alice": "a:b", "bob": "pw"}, false},
	{"empty", "", Credentials{}, false},
	{"no colon", "alice\n", nil, true},
	{"empty password", "alice:\n", nil, true},
	{"empty user", ":pw\n", nil, true},
}

func TestParseCredentials(t *testing.T) {
	for _, c := range credCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCredentials([]byte(c.in))
			if (err != nil) != c.err || (err != nil && !errors.Is(err, ErrBadCredentials)) {
				t.Fatalf("ParseCredentials(%q) error = %v, want error %v", c.in, err, c.err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ParseCredentials(%q) -want +got:\n%s", c.in, diff)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseCredentials error %q shows the file's content", err)
			}
		})
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, c := range credCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err != nil {
			return
		}
		for u, p := range c {
			if u == "" || p == "" || strings.ContainsAny(u, ":\n") {
				t.Fatalf("ParseCredentials(%q) gave user %q password %q", b, u, p)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"both", Config{Mode: ModeBoth}, true},
		{"bad mode", Config{Mode: "2"}, false},
		{"bad listen", Config{Internal: BrokerConfig{Listen: "1883"}}, false},
		{"cert without key", Config{Internal: BrokerConfig{CertFile: "c"}}, false},
		{"user without password", Config{Internal: BrokerConfig{Username: "u"}}, false},
		{"bad server scheme", Config{Mode: ModeExternal, External: ClientConfig{Server: "http://x:1"}}, false},
		{"bad qos", Config{QoS: 3}, false},
		{"negative queue", Config{QueueLen: -1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := c.cfg.Defaults().Validate()
			if (len(errs) == 0) != c.ok {
				t.Errorf("Validate() = %v, want ok %v", errs, c.ok)
			}
			for _, err := range errs {
				if !strings.HasPrefix(err.Error(), "mqtt.") {
					t.Errorf("Validate() error %q does not name its key under mqtt.", err)
				}
			}
		})
	}
	both := Config{Mode: ModeBoth}.Defaults()
	if both.Internal.Listen != DefaultListenBoth {
		t.Errorf("both mode listen = %q, want %q", both.Internal.Listen, DefaultListenBoth)
	}
}

func TestBackoff(t *testing.T) {
	const base, max = 5 * time.Second, 30 * time.Second
	cases := []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{0, 0, 5 * time.Second},
		{0, 0.999999, 2500*time.Millisecond + 5*time.Microsecond},
		{1, 0, 10 * time.Second},
		{2, 0, 20 * time.Second},
		{3, 0, 30 * time.Second},
		{100, 0.5, 22500 * time.Millisecond},
	}
	for _, c := range cases {
		got := Backoff(c.n, base, max, func() float64 { return c.rnd })
		if got.Round(time.Millisecond) != c.want.Round(time.Millisecond) {
			t.Errorf("Backoff(%d, rnd %v) = %v, want %v", c.n, c.rnd, got, c.want)
		}
	}
}

var messageCases = []struct {
	name, content, topic, payload string
	err                           bool
}{
	{"object", `{"message":{"topic":"a/b","z":1,"a":"x"}}`, "a/b", `{"a":"x","topic":"a/b","z":1}`, false},
	{"as JSON string", `"{\"message\":{\"topic\":\"t\"}}"`, "t", `{"topic":"t"}`, false},
	{"nested", `{"message":{"topic":"t","data":{"b":[1,2],"a":null}}}`, "t", `{"data":{"a":null,"b":[1,2]},"topic":"t"}`, false},
	{"no topic", `{"message":{"a":1}}`, "", "", true},
	{"topic not a string", `{"message":{"topic":5}}`, "", "", true},
	{"no message", `{"other":{}}`, "", "", true},
	{"message null", `{"message":null}`, "", "", true},
	{"truncated", `{"message":`, "", "", true},
	{"not an object", `[1]`, "", "", true},
}

func TestMessagePayload(t *testing.T) {
	for _, c := range messageCases {
		t.Run(c.name, func(t *testing.T) {
			topic, payload, err := MessagePayload([]byte(c.content))
			if (err != nil) != c.err || (err != nil && !errors.Is(err, ErrBadContent)) {
				t.Fatalf("MessagePayload(%s) error = %v, want error %v", c.content, err, c.err)
			}
			if topic != c.topic || string(payload) != c.payload {
				t.Errorf("MessagePayload(%s) = %q, %s; want %q, %s", c.content, topic, payload, c.topic, c.payload)
			}
		})
	}
}

func FuzzMessagePayload(f *testing.F) {
	for _, c := range messageCases {
		f.Add([]byte(c.content))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		topic, payload, err := MessagePayload(content)
		if err != nil {
			return
		}
		// The payload decodes back to an object carrying the same topic.
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil || m["topic"] != topic {
			t.Fatalf("MessagePayload(%q) payload %s does not carry topic %q (%v)", content, payload, topic, err)
		}
	})
}
