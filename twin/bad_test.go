package twin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
)

const addS1 = `{"event_id":"u","added_devices":[{"id":"default/s1","name":"s1","state":"unknown",` +
	`"attributes":{"model":{"value":"m1"}},` +
	`"twin":{"temp":{"expected":{"value":"1"},"actual":{"value":"1"},"optional":false,"metadata":{"type":"int"},` +
	`"expected_version":{"cloud":1,"edge":1},"actual_version":{"cloud":1,"edge":1}}}}]}`

// setupS1 adds default/s1 from the cloud and drains the publishes.
func setupS1(t testing.TB, cfg Config) *env {
	e := newEnv(t, cfg)
	e.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	if p := e.pub(); !strings.HasSuffix(p.Topic, "/membership/updated") {
		t.Fatalf("first publish on %s, want membership/updated", p.Topic)
	}
	return e
}

func TestBadInput(t *testing.T) {
	e := setupS1(t, Config{MaxPayload: 1024})
	before := e.rows()
	big := `{"event_id":"big","twin":{"temp":{"actual":{"value":"` + strings.Repeat("1", 2000) + `"}}}}`
	for _, tc := range []struct {
		name, topic, payload string
		// want: the result topic, code and a part of the reason; "" topic
		// means a counted drop with nothing published.
		resTopic string
		code     int
		eventID  string
		reason   string
	}{
		{"malformed JSON", "$hw/events/device/default/s1/twin/update", `{"event_id":`, "$hw/events/device/default/s1/twin/update/result", 400, "", "not a valid JSON"},
		{"twin not an object", "$hw/events/device/default/s1/twin/update", `{"event_id":"e","twin":[1]}`, "$hw/events/device/default/s1/twin/update/result", 400, "e", "not a valid JSON"},
		{"no twin key", "$hw/events/device/default/s1/twin/update", `{"event_id":"e2"}`, "$hw/events/device/default/s1/twin/update/result", 400, "e2", "no twin key"},
		{"bad key", "$hw/events/device/default/s1/twin/update", `{"event_id":"e3","twin":{"bad key!":{"actual":{"value":"1"}}}}`, "$hw/events/device/default/s1/twin/update/result", 400, "e3", "twin key"},
		{"long key", "$hw/events/device/default/s1/twin/update", `{"event_id":"e3","twin":{"` + strings.Repeat("k", 129) + `":{"actual":{"value":"1"}}}}`, "$hw/events/device/default/s1/twin/update/result", 400, "e3", "twin key"},
		{"bad value", "$hw/events/device/default/s1/twin/update", `{"event_id":"e4","twin":{"x":{"actual":{"value":"a b"}}}}`, "$hw/events/device/default/s1/twin/update/result", 400, "e4", "twin value"},
		{"value not a string", "$hw/events/device/default/s1/twin/update", `{"event_id":"e4","twin":{"x":{"actual":{"value":5}}}}`, "$hw/events/device/default/s1/twin/update/result", 400, "e4", "not a valid JSON"},
		{"wrong type", "$hw/events/device/default/s1/twin/update", `{"event_id":"e5","twin":{"temp":{"actual":{"value":"abc"}}}}`, "$hw/events/device/default/s1/twin/update/result", 400, "e5", "does not match its type"},
		{"wrong type with a good key", "$hw/events/device/default/s1/twin/update", `{"event_id":"e6","twin":{"a":{"actual":{"value":"ok"}},"temp":{"actual":{"value":"1.5"}}}}`, "$hw/events/device/default/s1/twin/update/result", 400, "e6", "does not match its type"},
		{"unknown device", "$hw/events/device/default/zz/twin/update", `{"event_id":"e7","twin":{}}`, "$hw/events/device/default/zz/twin/update/result", 404, "e7", "update rejected due to the device is not existed"},
		{"oversize", "$hw/events/device/default/s1/twin/update", big, "$hw/events/device/default/s1/twin/update/result", 400, "", "too large"},
		{"too many levels", "$hw/events/device/a/b/c/twin/update", `{"event_id":"e8","twin":{}}`, "$hw/events/device/a/b/c/twin/update/result", 400, "", "one or two"},
		{"empty level", "$hw/events/device/a//twin/get", `{"event_id":"e9"}`, "$hw/events/device/a//twin/get/result", 400, "", "one or two"},
		{"no id", "$hw/events/device//twin/get", `{"event_id":"e9"}`, "$hw/events/device//twin/get/result", 400, "", "one or two"},
		{"get malformed", "$hw/events/device/default/s1/twin/get", `[`, "$hw/events/device/default/s1/twin/get/result", 400, "", "not a valid JSON"},
		{"get unknown", "$hw/events/device/default/zz/twin/get", `{"event_id":"g"}`, "$hw/events/device/default/zz/twin/get/result", 404, "g", "Device default/zz not found while getting twin"},
		{"membership get malformed", "$hw/events/node/edge-node/membership/get", `nope`, "$hw/events/node/edge-node/membership/get/result", 400, "", "not a valid JSON"},
		{"membership get two levels", "$hw/events/node/a/b/membership/get", `{}`, "$hw/events/node/edge-node/membership/get/result", 400, "", "one or two"},
		{"state malformed", "$hw/events/device/default/s1/state/update", `{"state":`, "", 0, "", ""},
		{"state not allowed", "$hw/events/device/default/s1/state/update", `{"state":"exploded"}`, "", 0, "", ""},
		{"state unknown device", "$hw/events/device/default/zz/state/update", `{"state":"online"}`, "", 0, "", ""},
		{"state too many levels", "$hw/events/device/a/b/c/state/update", `{"state":"online"}`, "", 0, "", ""},
		{"state get has no handler", "$hw/events/device/default/s1/state/get", `{}`, "", 0, "", ""},
		{"unknown suffix", "$hw/events/device/default/s1/foo", `{}`, "", 0, "", ""},
		{"not a device topic", "$hw/events/upload/x", `{}`, "", 0, "", ""},
		{"delete a non-optional twin", "$hw/events/device/default/s1/twin/update", `{"event_id":"n","twin":{"temp":null}}`, "$hw/events/device/default/s1/twin/update/result", 0, "n", ""},
		{"cloud sync with wrong type", "$hw/events/device/default/s1/twin/cloud_updated", `{"twin":{"temp":{"actual":{"value":"x"},"actual_version":{"cloud":5,"edge":5}}}}`, "", 0, "", ""},
		{"cloud sync without version", "$hw/events/device/default/s1/twin/cloud_updated", `{"twin":{"temp":{"actual":{"value":"7"}},"new":{"actual":{"value":"7"}}}}`, "", 0, "", ""},
		{"attribute update malformed", "$hw/events/device/default/s1/updated", `{"attributes":3}`, "", 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropped := e.tw.Stats().Dropped
			e.mqtt(tc.topic, tc.payload)
			if tc.resTopic == "" {
				e.settle()
				e.quiet()
				// A sync that breaks the rules is ignored key by key, not dropped.
				if d := e.tw.Stats().Dropped; d == dropped && !strings.Contains(tc.topic, "cloud_updated") {
					t.Errorf("Stats().Dropped = %d, want more than %d", d, dropped)
				}
				return
			}
			p := e.pub()
			var r struct {
				EventID string          `json:"event_id"`
				Code    int             `json:"code"`
				Reason  string          `json:"reason"`
				Twin    json.RawMessage `json:"twin"`
			}
			if err := json.Unmarshal([]byte(p.Payload), &r); err != nil {
				t.Fatalf("result %s: %v", p.Payload, err)
			}
			if p.Topic != tc.resTopic || r.Code != tc.code || r.EventID != tc.eventID || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("publish = %s %s, want %s code %d event %q reason containing %q", p.Topic, p.Payload, tc.resTopic, tc.code, tc.eventID, tc.reason)
			}
			if tc.code == 0 && string(r.Twin) != "{}" {
				t.Errorf("result twin = %s, want {}", r.Twin)
			}
		})
	}
	e.settle()
	e.quiet()
	if diff := cmp.Diff(before, e.rows()); diff != "" {
		t.Errorf("bad input changed the tables (-before +after):\n%s", diff)
	}
}

func TestBadCloudInput(t *testing.T) {
	e := setupS1(t, Config{})
	before := e.rows()
	for _, c := range []struct {
		op           bus.Op
		res, content string
	}{
		{bus.OpUpdate, bus.ResMembership, `{"added_devices":{}}`},
		{bus.OpUpdate, bus.ResMembershipDetail, `[]`},
		{bus.OpUpdate, "device/default/s1/twin/cloud_updated", `{"twin":"x"}`},
		{bus.OpUpdate, "device/default/zz/twin/cloud_updated", `{"twin":{"a":{"actual":{"value":"1"},"actual_version":{"cloud":1,"edge":1}}}}`},
		{bus.OpUpdated, "device/default/s1", `{"attributes":[]}`},
		{bus.OpUpdate, "rubbish", `{}`},
		{bus.OpUpdate, bus.ResMembership, `{"added_devices":[{"id":"a/b/c","name":"x"},{"id":"","name":"y"}]}`},
	} {
		e.cloud(c.op, c.res, c.content)
	}
	e.settle()
	e.quiet()
	if diff := cmp.Diff(before, e.rows()); diff != "" {
		t.Errorf("bad cloud input changed the tables (-before +after):\n%s", diff)
	}
}
