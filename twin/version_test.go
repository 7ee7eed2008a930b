package twin

import (
	"database/sql"
	"testing"

	"edgenode/bus"
)

func topics(e *env, n int) []string {
	var out []string
	for range n {
		out = append(out, e.pub().Topic)
	}
	return out
}

func (e *env) twinRow(name string) (exp, act sql.NullString, ev, av, typ string) {
	e.t.Helper()
	for _, r := range e.rows().Twins {
		if r.Name == name {
			return r.Expected, r.Actual, r.ExpectedVersion, r.ActualVersion, r.AttrType
		}
	}
	e.t.Fatalf("no twin row %q", name)
	return
}

func TestVersionRules(t *testing.T) {
	e := setupS1(t, Config{})
	e.connect()
	e.report() // detail request
	const sync = "device/default/s1/twin/cloud_updated"
	const dev = "$hw/events/device/default/s1"

	// A newer cloud version is accepted: document and delta, no result.
	e.cloud(bus.OpUpdate, sync, `{"event_id":"c1","twin":{"temp":{"expected":{"value":"5"},"expected_version":{"cloud":2,"edge":1}}}}`)
	e.expect(
		pub{dev + "/twin/update/document", `{"event_id":"c1","timestamp":` + T + `,"twin":{"temp":{"last":{"expected":{"value":"1","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}},` +
			`"current":{"expected":{"value":"5","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}}}}}`},
		pub{dev + "/twin/update/delta", `{"event_id":"id-3","timestamp":` + T + `,"twin":{"temp":{"expected":{"value":"5","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}}},"delta":{"temp":"5"}}`},
	)
	if exp, _, ev, _, _ := e.twinRow("temp"); exp.String != "5" || ev != `{"cloud":2,"edge":1}` {
		t.Errorf("after newer sync: expected %q version %s, want 5 {cloud:2,edge:1}", exp.String, ev)
	}

	// An older one is rejected and the edge's twin is echoed to the cloud.
	e.cloud(bus.OpUpdate, sync, `{"event_id":"c2","twin":{"temp":{"expected":{"value":"9"},"expected_version":{"cloud":1,"edge":1}}}}`)
	m := e.report()
	want := `{"event_id":"id-4","timestamp":` + T + `,"twin":{"temp":{"expected":{"value":"5","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"},` +
		`"expected_version":{"cloud":2,"edge":1},"actual_version":{"cloud":1,"edge":1}}}}`
	if m.Route.Resource != "device/default/s1/twin/edge_updated" || string(m.Content) != want {
		t.Errorf("echo = %s %s\nwant edge_updated %s", m.Route.Resource, m.Content, want)
	}
	if exp, _, _, _, _ := e.twinRow("temp"); exp.String != "5" {
		t.Errorf("after older sync: expected %q, want 5", exp.String)
	}

	// An app update bumps the edge version; a sync that has not seen it is
	// rejected.
	e.mqtt(dev+"/twin/update", `{"event_id":"r1","twin":{"temp":{"expected":{"value":"6"},"expected_version":{"cloud":99,"edge":99}}}}`)
	if got := topics(e, 3); got[0] != dev+"/twin/update/result" {
		t.Errorf("app update publishes %v", got)
	}
	e.report() // edge_updated
	if _, _, ev, _, _ := e.twinRow("temp"); ev != `{"cloud":2,"edge":2}` {
		t.Errorf("after app update: expected_version %s, want {cloud:2,edge:2} (request versions ignored)", ev)
	}
	e.cloud(bus.OpUpdate, sync, `{"twin":{"temp":{"expected":{"value":"7"},"expected_version":{"cloud":3,"edge":1}}}}`)
	if m := e.report(); m.Route.Resource != "device/default/s1/twin/edge_updated" {
		t.Errorf("conflict echo on %s", m.Route.Resource)
	}

	// A sync delete without a version tombstones the twin, even a
	// non-optional one; the get result leaves it out.
	e.cloud(bus.OpUpdate, sync, `{"event_id":"c3","twin":{"temp":{"metadata":{"type":"deleted"}}}}`)
	e.expect(pub{dev + "/twin/update/document", `{"event_id":"c3","timestamp":` + T + `,"twin":{"temp":{"last":{"expected":{"value":"6","metadata":{"timestamp":` + T + `}},"actual":{"value":"1","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"int"}},"current":null}}}`})
	exp, act, ev, av, typ := e.twinRow("temp")
	if exp.Valid || act.Valid || typ != typeDeleted || ev != `{"cloud":2,"edge":2}` || av != `{"cloud":1,"edge":1}` {
		t.Errorf("tombstone row = %v %v %s %s %s, want NULL NULL, versions kept, deleted", exp, act, ev, av, typ)
	}
	e.mqtt(dev+"/twin/get", `{"event_id":"g"}`)
	e.expect(pub{dev + "/twin/get/result", `{"event_id":"g","timestamp":` + T + `,"twin":{}}`})

	// An app update revives it as a string twin.
	e.mqtt(dev+"/twin/update", `{"event_id":"r2","twin":{"temp":{"actual":{"value":"abc"}}}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"r2","timestamp":` + T + `,"twin":{"temp":{"actual":{"value":"abc","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"string"}}}}`})
	exp, act, _, av, typ = e.twinRow("temp")
	if exp.String != "" || act.String != "abc" || typ != "string" || av != `{"cloud":1,"edge":2}` {
		t.Errorf("revived row = %v %v %s %s", exp, act, typ, av)
	}
}

func TestRESTDeleteAndOptional(t *testing.T) {
	e := setupS1(t, Config{})
	const dev = "$hw/events/device/default/s1"
	e.mqtt(dev+"/twin/update", `{"event_id":"a","twin":{"fan":{"expected":{"value":"1"},"actual":{"value":"1"}}}}`)
	topics(e, 2) // result, document: no delta, expected == actual
	// optional only goes from true to false.
	e.mqtt(dev+"/twin/update", `{"event_id":"b","twin":{"fan":{"optional":false}}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"b","timestamp":` + T + `,"twin":{"fan":{"optional":false,"metadata":{"type":"string"}}}}`})
	topics(e, 1)
	e.mqtt(dev+"/twin/update", `{"event_id":"c","twin":{"fan":{"optional":true}}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"c","timestamp":` + T + `,"twin":{}}`})
	// A null deletes only optional twins.
	e.mqtt(dev+"/twin/update", `{"event_id":"d","twin":{"fan":null}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"d","timestamp":` + T + `,"twin":{}}`})
	e.mqtt(dev+"/twin/update", `{"event_id":"e","twin":{"gone":{"actual":{"value":"x"}}}}`)
	topics(e, 2)
	e.mqtt(dev+"/twin/update", `{"event_id":"f","twin":{"gone":null}}`)
	e.expect(
		pub{dev + "/twin/update/result", `{"event_id":"f","timestamp":` + T + `,"twin":{"gone":null}}`},
		pub{dev + "/twin/update/document", `{"event_id":"f","timestamp":` + T + `,"twin":{"gone":{"last":{"actual":{"value":"x","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}},"current":null}}}`},
	)
	_, act, _, av, typ := e.twinRow("gone")
	if act.Valid || typ != typeDeleted || av != `{"cloud":0,"edge":2}` {
		t.Errorf("REST tombstone = %v %s %s, want NULL deleted {cloud:0,edge:2}", act, typ, av)
	}
	// Deleting it again is a no-op.
	e.mqtt(dev+"/twin/update", `{"event_id":"g","twin":{"gone":null}}`)
	e.expect(pub{dev + "/twin/update/result", `{"event_id":"g","timestamp":` + T + `,"twin":{}}`})
	e.settle()
	e.quiet()
}
