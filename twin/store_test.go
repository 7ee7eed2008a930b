package twin

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/db"
)

// A twin staged again in the same change replaces its row where it
// stands, so a group commit of many updates to one twin holds one row;
// the order of the first puts stays.
func TestPutTwinReplaces(t *testing.T) {
	state := func(actual string) *twinState {
		return &twinState{Actual: &value{V: actual, TS: 1}, ActVer: &twinVersion{Edge: 1}, Type: "string"}
	}
	type put struct{ dev, name, actual string }
	var x tx
	for _, p := range []put{{"d1", "a", "1"}, {"d1", "b", "1"}, {"d2", "a", "1"}, {"d1", "a", "2"}, {"d2", "a", "3"}} {
		x.putTwin(p.dev, p.name, state(p.actual))
	}
	var want []db.DeviceTwin
	for _, p := range []put{{"d1", "a", "2"}, {"d1", "b", "1"}, {"d2", "a", "3"}} {
		want = append(want, twinRow(p.dev, p.name, state(p.actual)))
	}
	if diff := cmp.Diff(want, x.staged().PutTwins); diff != "" {
		t.Errorf("PutTwins (-want +got):\n%s", diff)
	}
}

// A failed commit publishes a 500 and leaves both the tables and the
// in-memory view as they were: the view is never ahead of SQLite.
func TestFailedWriteKeepsView(t *testing.T) {
	e := setupS1(t, Config{WriteRetries: 3, RetryDelay: time.Millisecond})
	const dev = "$hw/events/device/default/s1"
	e.mqtt(dev+"/twin/get", `{"event_id":"g"}`)
	before := e.pub()
	rows := e.rows()
	if _, err := e.d.SQL().Exec(`CREATE TRIGGER fail BEFORE UPDATE ON device_twin BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`); err != nil {
		t.Fatal(err)
	}
	e.mqtt(dev+"/twin/update", `{"event_id":"w","twin":{"temp":{"actual":{"value":"9"}}}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"w","timestamp":` + T + `,"code":500,"reason":"twin: could not store the update"}`})
	e.mqtt(dev+"/twin/get", `{"event_id":"g"}`)
	if after := e.pub(); after != before {
		t.Errorf("twin get after a failed write = %s, want %s", after.Payload, before.Payload)
	}
	if diff := cmp.Diff(rows, e.rows()); diff != "" {
		t.Errorf("failed write changed the tables:\n%s", diff)
	}
	// Once the disk recovers the same update goes through.
	if _, err := e.d.SQL().Exec(`DROP TRIGGER fail`); err != nil {
		t.Fatal(err)
	}
	e.mqtt(dev+"/twin/update", `{"event_id":"w2","twin":{"temp":{"actual":{"value":"9"}}}}`)
	if p := e.pub(); p.Payload != `{"event_id":"w2","timestamp":`+T+`,"twin":{"temp":{"actual":{"value":"9","metadata":{"timestamp":`+T+`}},"optional":false,"metadata":{"type":"int"}}}}` {
		t.Errorf("update after recovery = %s", p.Payload)
	}
}
