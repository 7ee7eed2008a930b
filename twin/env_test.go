package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
	"edgenode/db"
)

// fixedNow is the clock of tests that compare payload bytes.
var fixedNow = time.UnixMilli(1700000000123)

// env is a twin module on a real bus and a real SQLite file; the eventbus
// and the hub are plain bus modules the test reads.
type env struct {
	t      testing.TB
	dir    string
	b      *bus.Bus
	d      *db.DB
	tw     *Twin
	cancel context.CancelFunc
	done   chan error
	ids    atomic.Int64

	skipped []pub // publishes settle read past
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	return startEnv(t, cfg, t.TempDir())
}

func startEnv(t testing.TB, cfg Config, dir string) *env {
	t.Helper()
	return startEnvWith(t, cfg, dir, nil)
}

// startEnvWith is startEnv with the eventbus set up by eventbus (nil: a
// plain bus module the test reads).
func startEnvWith(t testing.TB, cfg Config, dir string, eventbus func(e *env)) *env {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(dir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, d: d, b: bus.New(bus.Config{}, nil), done: make(chan error, 1)}
	if err := e.b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
		t.Fatal(err)
	}
	if eventbus == nil {
		if err := e.b.AddModule(bus.ModuleMQTT, bus.GroupBus); err != nil {
			t.Fatal(err)
		}
	} else {
		eventbus(e)
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "edge-node"
	}
	e.tw, err = New(cfg, e.b, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.tw.now = func() time.Time { return fixedNow }
	e.tw.newID = func() string { return fmt.Sprintf("id-%d", e.ids.Add(1)) }
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- e.tw.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

// stop ends Run and closes the database; it is safe to call twice.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("Run() = %v, want nil", err)
	}
	e.d.Close()
	e.cancel = nil
}

// mqtt sends what the eventbus sends for an MQTT message (docs/protocol.md 4.2).
func (e *env) mqtt(topic, payload string) {
	e.t.Helper()
	m := bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, topic, []byte(payload))
	if err := e.b.Send(bus.ModuleTwin, m); err != nil {
		e.t.Fatal(err)
	}
}

// cloud sends a message from a cloud module.
func (e *env) cloud(op bus.Op, resource, content string) {
	e.t.Helper()
	m := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, op, resource, []byte(content))
	if err := e.b.Send(bus.ModuleTwin, m); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) connect() {
	e.t.Helper()
	m := bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(bus.CloudConnected))
	if err := e.b.Send(bus.ModuleTwin, m); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) recv(m bus.Module) bus.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg, err := e.b.Receive(ctx, m)
	if err != nil {
		e.t.Fatalf("Receive(%s): %v", m, err)
	}
	return msg
}

// report returns the next cloud-bound message and confirms it as the
// cloud does (KubeEdge v1.23.1 devicecontroller answers a report with a
// message whose parent id is the report's). twin sends a device's next
// report only once the one before it is confirmed.
func (e *env) report() bus.Message {
	e.t.Helper()
	m := e.recv(bus.ModuleHub)
	c := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpResponse, bus.ResTwin, nil)
	c.Header.ParentID = m.Header.ID
	if err := e.b.Send(bus.ModuleTwin, c); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// repeat takes the report that follows first, the first report of its
// twins (comm.repeatNew), confirms it and checks that it carries first's
// twins again.
func (e *env) repeat(first bus.Message) {
	e.t.Helper()
	m := e.report()
	twins := func(b []byte) string {
		var v struct{ Twin json.RawMessage }
		if err := json.Unmarshal(b, &v); err != nil {
			e.t.Fatalf("report %s: %v", b, err)
		}
		return string(v.Twin)
	}
	if m.Route.Resource != first.Route.Resource || twins(m.Content) != twins(first.Content) {
		e.t.Errorf("report after the first of its twins = %s %s, want its twins again: %s %s",
			m.Route.Resource, m.Content, first.Route.Resource, first.Content)
	}
}

type pub struct{ Topic, Payload string }

// pub returns the next MQTT publish.
func (e *env) pub() pub {
	e.t.Helper()
	m := e.recv(bus.ModuleMQTT)
	if m.Route.Operation != bus.OpPublish || m.Route.Source != bus.ModuleTwin {
		e.t.Fatalf("eventbus got %s from %s, want publish from twin", m.Route.Operation, m.Route.Source)
	}
	return pub{m.Route.Resource, string(m.Content)}
}

// expect checks the next publishes, in order.
func (e *env) expect(want ...pub) {
	e.t.Helper()
	var got []pub
	for range want {
		got = append(got, e.pub())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		e.t.Errorf("publishes diff (-want +got):\n%s", diff)
	}
}

// rows is the content of the device tables, SELECT * scanned by position into
// strings as KubeEdge's integration checks do (docs/protocol.md 7.2): a NULL in
// a row fails the scan unless the row is a tombstone.
type rows struct {
	Devices []db.Device
	Attrs   []db.DeviceAttr
	Twins   []db.DeviceTwin
}

func (e *env) rows() rows {
	e.t.Helper()
	ctx := context.Background()
	var r rows
	var err error
	if r.Devices, err = e.d.Devices(ctx); err != nil {
		e.t.Fatal(err)
	}
	if r.Attrs, err = e.d.DeviceAttrs(ctx); err != nil {
		e.t.Fatal(err)
	}
	if r.Twins, err = e.d.DeviceTwins(ctx); err != nil {
		e.t.Fatal(err)
	}
	q, err := e.d.SQL().Query(`SELECT * FROM device_twin WHERE attr_type != 'deleted'`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	for q.Next() {
		var id int64
		var s [9]string
		var opt bool
		var typ, meta string
		if err := q.Scan(&id, &s[0], &s[1], &s[2], &s[3], &s[4], &s[5], &s[6], &s[7], &s[8], &opt, &typ, &meta); err != nil {
			e.t.Errorf("SELECT * FROM device_twin scanned into strings: %v", err)
		}
	}
	return r
}

// settle waits until everything sent to the module so far is handled: a
// twin get for an unknown device proves the dispatcher got past earlier
// messages, then a marker job through every worker proves they did.
func (e *env) settle() {
	e.t.Helper()
	e.mqtt("$hw/events/device/settle/twin/get", `{"event_id":"settle"}`)
	// Other workers may publish before the twin worker answers; keep what
	// came for quiet and for the test.
	for p := e.pub(); p.Topic != "$hw/events/device/settle/twin/get/result"; p = e.pub() {
		e.skipped = append(e.skipped, p)
	}
	for _, w := range []*worker{e.tw.mem, e.tw.twin, e.tw.dev, e.tw.com} {
		done := make(chan struct{})
		w.inbox <- &job{done: done}
		<-done
	}
}

// quiet checks that nothing was published or sent to the cloud.
func (e *env) quiet() {
	e.t.Helper()
	for _, p := range e.skipped {
		e.t.Errorf("unexpected publish %s %s", p.Topic, p.Payload)
	}
	e.skipped = nil
	if n := e.b.Depth(bus.ModuleMQTT); n != 0 {
		e.t.Errorf("%d unexpected publishes, first %+v", n, e.pub())
	}
	if n := e.b.Depth(bus.ModuleHub); n != 0 {
		m := e.recv(bus.ModuleHub)
		e.t.Errorf("%d unexpected cloud messages, first %s %s", n, m.Route.Resource, m.Content)
	}
}
