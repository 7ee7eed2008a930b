package twin

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"edgenode/bus"
	"edgenode/db"
)

var topicCases = []struct {
	name  string
	topic string
	act   action
	id    string
	err   error
}{
	{"v0.3 twin update", "$hw/events/device/s1/twin/update", actTwinUpdate, "s1", nil},
	{"v1.23 twin update", "$hw/events/device/default/s1/twin/update", actTwinUpdate, "default/s1", nil},
	{"cloud updated", "$hw/events/device/ns/s1/twin/cloud_updated", actTwinCloudSync, "ns/s1", nil},
	{"twin get", "$hw/events/device/s1/twin/get", actTwinGet, "s1", nil},
	{"state update two levels", "$hw/events/device/ns/s1/state/update", actStateUpdate, "ns/s1", nil},
	{"state get", "$hw/events/device/s1/state/get", actStateGet, "s1", nil},
	{"attribute updated", "$hw/events/device/ns/s1/updated", actDeviceUpdated, "ns/s1", nil},
	{"device named twin", "$hw/events/device/twin/twin/update", actTwinUpdate, "twin", nil},
	{"membership get", "$hw/events/node/edge-node/membership/get", actMemGet, "edge-node", nil},
	{"membership updated", "$hw/events/node/n/membership/updated", actMemUpdated, "n", nil},
	{"membership detail result", "$hw/events/node/n/membership/detail/result", actMemDetail, "n", nil},
	{"three levels", "$hw/events/device/a/b/c/twin/update", actTwinUpdate, "a/b/c", ErrBadTopic},
	{"empty id", "$hw/events/device//twin/update", actTwinUpdate, "", ErrBadTopic},
	{"empty level", "$hw/events/device/a//twin/get", actTwinGet, "a/", ErrBadTopic},
	{"wildcard id", "$hw/events/device/+/twin/get", actTwinGet, "+", ErrBadTopic},
	{"node two levels", "$hw/events/node/a/b/membership/get", actMemGet, "a/b", ErrBadTopic},
	{"result topic", "$hw/events/device/s1/twin/update/result", actNone, "", ErrUnknownTopic},
	{"upload", "$hw/events/upload/x", actNone, "", ErrUnknownTopic},
	{"short", "$hw/events/device/", actNone, "", ErrUnknownTopic},
	{"empty", "", actNone, "", ErrUnknownTopic},
	{"user topic", "a/user/b", actNone, "", ErrUnknownTopic},
}

func TestClassifyTopic(t *testing.T) {
	for _, tc := range topicCases {
		t.Run(tc.name, func(t *testing.T) {
			act, id, err := classifyTopic(tc.topic)
			if act != tc.act || (err == nil && id != tc.id) || !errors.Is(err, tc.err) {
				t.Errorf("classifyTopic(%q) = %v, %q, %v, want %v, %q, %v", tc.topic, act, id, err, tc.act, tc.id, tc.err)
			}
		})
	}
}

func FuzzClassifyTopic(f *testing.F) {
	for _, tc := range topicCases {
		f.Add(tc.topic)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		act, id, err := classifyTopic(topic)
		if err != nil {
			return
		}
		if act == actNone || id == "" || strings.Count(id, "/") > 1 || strings.ContainsAny(id, "+#") {
			t.Fatalf("classifyTopic(%q) = %v, %q, nil: bad id accepted", topic, act, id)
		}
		// The id and action rebuild the topic.
		suf := map[action]string{actTwinUpdate: sufTwinUpdate, actTwinCloudSync: sufTwinCloudUpdated, actTwinGet: sufTwinGet,
			actStateUpdate: sufStateUpdate, actStateGet: sufStateGet, actDeviceUpdated: sufUpdated,
			actMemGet: sufMemGet, actMemUpdated: sufMemUpdated, actMemDetail: sufMemDetailResult}[act]
		re := deviceTopic(id, suf)
		if act == actMemGet || act == actMemUpdated || act == actMemDetail {
			re = nodeTopic(id, suf)
		}
		if re != topic {
			t.Fatalf("classifyTopic(%q) = %v, %q: rebuilds %q", topic, act, id, re)
		}
	})
}

var payloadSeeds = []string{
	`{"event_id":"ev-1","timestamp":1559123456000,"twin":{"temperature":{"actual":{"value":"25.5"},"metadata":{"type":"float"}},"fanspeed":{"expected":{"value":"3"},"optional":true},"oldkey":null}}`,
	`{"twin":{"t":{"expected":{"value":"1"},"expected_version":{"cloud":2,"edge":1},"metadata":{"type":"int"}}}}`,
	`{"twin":{"t":{"metadata":{"type":"deleted"},"actual_version":{"cloud":9,"edge":0}}}}`,
	`{"twin":{"b":{"actual":{"value":"maybe"},"metadata":{"type":"boolean"}}}}`,
	addSensor, addS1, `{"state":"online"}`, `{"attributes":{"a":{"value":"1"},"b":null}}`,
	`{"event_id":`, `[]`, `null`, `{"twin":null}`, `{"twin":{"x y":{}}}`,
}

// FuzzTwinUpdate runs the update decoder and the twin rules of both
// eras and both deal types on a device, checking that what is stored
// round-trips through its rows.
func FuzzTwinUpdate(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s), false, uint8(0))
	}
	// "o" is dealt with before "t" fails its type check.
	f.Add([]byte(`{"twin":{"o":{"actual":{"value":"y"}},"t":{"actual":{"value":"bad"}}}}`), false, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, v03 bool, dt uint8) {
		era := bus.EraV123
		if v03 {
			era = bus.EraV03
		}
		req, err := decodeTwinUpdate(b, era)
		if err != nil {
			return
		}
		dev := &deviceState{ID: "d", Attrs: map[string]*attrState{}, Twins: map[string]*twinState{
			"t": {Expected: &value{V: "1", TS: 1}, ExpVer: &twinVersion{Cloud: 1, Edge: 1}, Type: "int"},
			"o": {Actual: &value{V: "x", TS: 1}, Optional: true, Type: "string"},
		}}
		before := string(mustJSON(t, dev.Twins))
		tx := &tx{}
		if _, err := dealTwins(tx, era, dev, req.Twin, dealType(dt%3), withAll, 5); err != nil {
			// A failing request changes nothing (docs/protocol.md 5.4).
			if after := string(mustJSON(t, dev.Twins)); after != before || len(tx.staged().PutTwins) != 0 {
				t.Fatalf("dealTwins failed (%v) but changed the device: %s -> %s, %d rows staged", err, before, after, len(tx.staged().PutTwins))
			}
			return
		}
		for _, r := range tx.staged().PutTwins {
			got := fromRows([]db.Device{{ID: "d"}}, nil, []db.DeviceTwin{r})["d"].Twins[r.Name]
			if want := dev.Twins[r.Name]; string(mustJSON(t, got.msg(era, true))) != string(mustJSON(t, want.msg(era, true))) {
				t.Fatalf("twin %q does not round-trip through its row: %+v vs %+v", r.Name, got, want)
			}
		}
	})
}

// FuzzDecoders feeds every payload decoder of outside bytes.
func FuzzDecoders(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var mu membershipUpdate
		if decode(b, &mu) == nil {
			for _, d := range mu.Added {
				mustJSON(t, announce(bus.EraV03, d))
				dev := &deviceState{ID: "d", Attrs: map[string]*attrState{}, Twins: map[string]*twinState{}}
				dealAttrs(&tx{}, dev, d.Attributes, dealSync)
				dealTwins(&tx{}, bus.EraV123, dev, d.Twin, dealSync, withAll, 1)
			}
		}
		var ml membershipList
		_ = decode(b, &ml)
		var du deviceUpdate
		if decode(b, &du) == nil {
			dev := &deviceState{ID: "d", Attrs: map[string]*attrState{"a": {Value: "1"}}, Twins: map[string]*twinState{}}
			mustJSON(t, attrUpdated{Attributes: dealAttrs(&tx{}, dev, du.Attributes, dealREST)})
		}
		var base baseMessage
		_ = decode(b, &base)
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%+v): %v", v, err)
	}
	return b
}

// FuzzTwinText checks the key and value check against the regexps KubeEdge
// uses for them (docs/protocol.md 5.2).
func FuzzTwinText(f *testing.F) {
	keyRE := regexp.MustCompile(`^[a-zA-Z0-9-_.,:/@#]{1,128}$`)
	valueRE := regexp.MustCompile(`^[a-zA-Z0-9-_.,:/@#]{1,512}$`)
	for _, s := range []string{"", "a", "temp", "x y", "a\n", "é", "-_.,:/@#", "a+b", "[", "\\", strings.Repeat("a", 128),
		strings.Repeat("a", 129), strings.Repeat("Z", 512), strings.Repeat("9", 513)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validTwinText(s, maxKeyLen), keyRE.MatchString(s); got != want {
			t.Fatalf("validTwinText(%q, key) = %v, the regexp says %v", s, got, want)
		}
		if got, want := validTwinText(s, maxValueLen), valueRE.MatchString(s); got != want {
			t.Fatalf("validTwinText(%q, value) = %v, the regexp says %v", s, got, want)
		}
	})
}

// TestDealBuildsWhatIsWanted: a change builds its document and delta only
// when asked to (a client subscribes to them); the result, the cloud's
// share and the stored rows do not depend on it.
func TestDealBuildsWhatIsWanted(t *testing.T) {
	req, err := decodeTwinUpdate([]byte(`{"twin":{"t":{"actual":{"value":"2"}}}}`), bus.EraV123)
	if err != nil {
		t.Fatal(err)
	}
	deal := func(want outputs) (twinOutcome, *tx) {
		dev := &deviceState{ID: "d", Attrs: map[string]*attrState{}, Twins: map[string]*twinState{
			"t": {Expected: &value{V: "1", TS: 1}, Actual: &value{V: "1", TS: 1}, ExpVer: &twinVersion{Cloud: 1, Edge: 1}, Type: "int"},
		}}
		tx := &tx{}
		out, err := dealTwins(tx, bus.EraV123, dev, req.Twin, dealREST, want, 5)
		if err != nil {
			t.Fatal(err)
		}
		return out, tx
	}
	all, txAll := deal(withAll)
	if len(all.document) != 1 || all.delta == nil {
		t.Fatalf("withAll: document %v, delta %v; want both", all.document, all.delta)
	}
	none, txNone := deal(0)
	if none.document != nil || none.delta != nil {
		t.Errorf("nothing wanted: document %v, delta %v; want neither", none.document, none.delta)
	}
	if d, _ := deal(withDelta); d.document != nil || d.delta == nil {
		t.Errorf("withDelta: document %v, delta %v; want the delta only", d.document, d.delta)
	}
	if a, b := string(mustJSON(t, all.result)), string(mustJSON(t, none.result)); a != b {
		t.Errorf("result differs: %s vs %s", a, b)
	}
	if a, b := string(mustJSON(t, all.toCloud)), string(mustJSON(t, none.toCloud)); a != b {
		t.Errorf("cloud share differs: %s vs %s", a, b)
	}
	if a, b := string(mustJSON(t, txAll.staged().PutTwins)), string(mustJSON(t, txNone.staged().PutTwins)); a != b {
		t.Errorf("stored rows differ: %s vs %s", a, b)
	}
}

// checkIDBySplit is checkID's rule written the plain way: at most max
// levels, none empty, no wildcard or NUL.
func checkIDBySplit(id string, max int) bool {
	if id == "" || strings.ContainsAny(id, "+#\x00") {
		return false
	}
	levels := strings.Split(id, "/")
	return len(levels) <= max && !slices.Contains(levels, "")
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"", "a", "a/b", "a/b/c", "/a", "a/", "/", "//", "a//b", "a+b", "#", "a/#", "a\x00b", "ns/name", "é/ü"} {
		for _, max := range []int{1, 2} {
			if got, want := checkID(id, max) == nil, checkIDBySplit(id, max); got != want {
				t.Errorf("checkID(%q, %d) ok = %v, want %v", id, max, got, want)
			}
		}
	}
}

func FuzzCheckID(f *testing.F) {
	for _, id := range []string{"a", "a/b", "a//b", "/a", "a/b/c"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		for _, max := range []int{1, 2, 3} {
			if got, want := checkID(id, max) == nil, checkIDBySplit(id, max); got != want {
				t.Fatalf("checkID(%q, %d) ok = %v, want %v", id, max, got, want)
			}
		}
	})
}
