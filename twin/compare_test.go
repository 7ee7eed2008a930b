package twin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The three tests below follow KubeEdge's dealTwinCompare and
// dealTwinDelete (edge/pkg/devicetwin/dtmanager/twin.go, v0.3.0 and
// v1.23.1; docs/protocol.md 5.4).

// TestUpdateSameValue: a side present in an update counts as a change even
// when it carries the value the twin already has.
func TestUpdateSameValue(t *testing.T) {
	e := setupS1(t, Config{})
	e.connect()
	e.report() // detail request
	const dev = "$hw/events/device/default/s1"
	e.mqtt(dev+"/twin/update", `{"event_id":"u1","twin":{"temp":{"actual":{"value":"1"}}}}`)
	e.expect(
		pub{dev + "/twin/update/result", `{"event_id":"u1","timestamp":` + T + `,"twin":{"temp":{"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}}}}`},
		pub{dev + "/twin/update/document", `{"event_id":"u1","timestamp":` + T + `,"twin":{"temp":{` +
			`"last":{"expected":{"value":"1","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}},` +
			`"current":{"expected":{"value":"1","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}}}}}`},
	)
	m := e.report()
	want := `{"event_id":"id-3","timestamp":` + T + `,"twin":{"temp":{"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":1,"edge":2}}}}`
	if m.Route.Resource != "device/default/s1/twin/edge_updated" || string(m.Content) != want {
		t.Errorf("to cloud: %s %s\nwant edge_updated %s", m.Route.Resource, m.Content, want)
	}
	if _, act, ev, av, _ := e.twinRow("temp"); act.String != "1" || av != `{"cloud":1,"edge":2}` || ev != `{"cloud":1,"edge":1}` {
		t.Errorf("row: actual %q versions %s %s, want 1, expected {cloud:1,edge:1}, actual {cloud:1,edge:2}", act.String, ev, av)
	}
	e.repeat(m)
	e.settle()
	e.quiet()
}

// TestEdgeUpdatedSides: edge_updated of an app update carries the sides in
// the request with their versions, optional and metadata; not the
// untouched side.
func TestEdgeUpdatedSides(t *testing.T) {
	for _, tc := range []struct {
		name, twin, want string
	}{
		{"actual only", `{"actual":{"value":"7"}}`,
			`{"actual":{"value":"7","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":1,"edge":2}}`},
		{"expected only", `{"expected":{"value":"8"}}`,
			`{"expected":{"value":"8","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"},"expected_version":{"cloud":1,"edge":2}}`},
		{"both", `{"expected":{"value":"8"},"actual":{"value":"7"}}`,
			`{"expected":{"value":"8","metadata":{"timestamp":` + T + `}},"actual":{"value":"7","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"},` +
				`"expected_version":{"cloud":1,"edge":2},"actual_version":{"cloud":1,"edge":2}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setupS1(t, Config{})
			e.connect()
			e.report() // detail request
			e.mqtt("$hw/events/device/default/s1/twin/update", `{"event_id":"u","twin":{"temp":`+tc.twin+`}}`)
			topics(e, 3) // result, document, delta
			m := e.report()
			want := `{"event_id":"id-4","timestamp":` + T + `,"twin":{"temp":` + tc.want + `}}`
			if string(m.Content) != want {
				t.Errorf("edge_updated = %s\nwant %s", m.Content, want)
			}
		})
	}
}

// TestDeleteVersions: an app delete bumps only the versions of the sides
// the twin has; a side never set keeps an empty version column.
func TestDeleteVersions(t *testing.T) {
	e := setupS1(t, Config{})
	e.connect()
	e.report() // detail request
	const dev = "$hw/events/device/default/s1"
	e.mqtt(dev+"/twin/update", `{"event_id":"a","twin":{"nk":{"actual":{"value":"x"}}}}`)
	topics(e, 2) // result, document
	e.repeat(e.report())
	if _, _, ev, av, _ := e.twinRow("nk"); ev != "" || av != `{"cloud":0,"edge":1}` {
		t.Fatalf("added row versions %q %q, want \"\" {cloud:0,edge:1}", ev, av)
	}
	e.mqtt(dev+"/twin/update", `{"event_id":"d","twin":{"nk":null}}`)
	e.expect(
		pub{dev + "/twin/update/result", `{"event_id":"d","timestamp":` + T + `,"twin":{"nk":null}}`},
		pub{dev + "/twin/update/document", `{"event_id":"d","timestamp":` + T + `,"twin":{"nk":{"last":{"actual":{"value":"x","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}},"current":null}}}`},
	)
	m := e.report()
	want := `{"event_id":"id-5","timestamp":` + T + `,"twin":{"nk":{"optional":true,"metadata":{"type":"deleted"},"actual_version":{"cloud":0,"edge":2}}}}`
	if string(m.Content) != want {
		t.Errorf("edge_updated = %s\nwant %s", m.Content, want)
	}
	exp, act, ev, av, typ := e.twinRow("nk")
	if exp.Valid || act.Valid || typ != typeDeleted || ev != "" || av != `{"cloud":0,"edge":2}` {
		t.Errorf("tombstone = %v %v %q %q %s, want NULL NULL \"\" {cloud:0,edge:2} deleted", exp, act, ev, av, typ)
	}
	e.settle()
	e.quiet()
}

// TestLocalDevicesUnchanged: a device file that nobody changed is no
// update at the next start: no row is written again and nothing is
// published, though an app update with the same value is a change.
func TestLocalDevicesUnchanged(t *testing.T) {
	dir := t.TempDir()
	devDir := filepath.Join(dir, "devices")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := `{"added_devices":[{"id":"lamp","name":"lamp","state":"unknown",` +
		`"twin":{"power":{"expected":{"value":"off"},"metadata":{"type":"string"}}}}]}`
	if err := os.WriteFile(filepath.Join(devDir, "lamp.json"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, Config{DevicesDir: devDir}, dir)
	topics(e, 2) // membership/updated, delta
	rows := e.rows()
	e.stop()
	e2 := startEnv(t, Config{DevicesDir: devDir}, dir)
	e2.settle()
	e2.quiet()
	if diff := cmp.Diff(rows, e2.rows()); diff != "" {
		t.Errorf("rows changed across restart (-before +after):\n%s", diff)
	}
}

// TestReviveEdgeUpdated: an app update of a deleted twin sends the cloud
// only the side it sets, not the kept version of the other side
// (dealTwinCompare handles an existing tombstone).
func TestReviveEdgeUpdated(t *testing.T) {
	e := setupS1(t, Config{})
	e.connect()
	e.report() // detail request
	const dev = "$hw/events/device/default/s1"
	e.mqtt(dev+"/twin/update", `{"event_id":"a","twin":{"nk":{"expected":{"value":"x"},"actual":{"value":"x"}}}}`)
	topics(e, 2) // result, document
	e.repeat(e.report())
	e.mqtt(dev+"/twin/update", `{"event_id":"d","twin":{"nk":null}}`)
	topics(e, 2) // result, document
	e.report()
	e.mqtt(dev+"/twin/update", `{"event_id":"r","twin":{"nk":{"actual":{"value":"y"}}}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"r","timestamp":` + T + `,"twin":{"nk":{"actual":{"value":"y","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}}}}`})
	topics(e, 1) // document
	m := e.report()
	want := `{"event_id":"id-6","timestamp":` + T + `,"twin":{"nk":{"actual":{"value":"y","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"},"actual_version":{"cloud":0,"edge":3}}}}`
	if string(m.Content) != want {
		t.Errorf("edge_updated = %s\nwant %s", m.Content, want)
	}
	if _, _, ev, av, _ := e.twinRow("nk"); ev != `{"cloud":0,"edge":2}` || av != `{"cloud":0,"edge":3}` {
		t.Errorf("row versions %s %s, want expected kept at {cloud:0,edge:2}, actual {cloud:0,edge:3}", ev, av)
	}
	e.settle()
	e.quiet()
}
