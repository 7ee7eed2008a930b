package meta

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
	"edgenode/db"
)

// env is a running MetaManager on a real bus and a real SQLite file, with
// the modules it talks to registered as plain queues the test reads.
type env struct {
	t      *testing.T
	ctx    context.Context
	b      *bus.Bus
	d      *db.DB
	m      *Meta
	cancel context.CancelFunc
	done   chan error
}

// fakes are the modules around meta; the test reads their queues.
var fakes = []struct {
	name  bus.Module
	group bus.Group
}{
	{bus.ModuleHub, bus.GroupHub},
	{bus.ModulePod, bus.GroupPod},
	{bus.ModuleTwin, bus.GroupTwin},
	{bus.ModuleNodeStatus, ""},
	{bus.ModuleTest, ""},
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(bus.Config{QueueLen: 64}, nil)
	for _, f := range fakes {
		if err := b.AddModule(f.name, f.group); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(cfg, b, d, log)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, b: b, d: d, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-e.done; err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
		d.Close()
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// send puts msg on meta's queue.
func (e *env) send(msg bus.Message) {
	e.t.Helper()
	if err := e.b.Send(bus.ModuleMeta, msg); err != nil {
		e.t.Fatalf("Send(meta) = %v", err)
	}
}

// barrier returns once meta has handled everything sent before it: meta
// handles its queue in order, and a local query is answered in line.
func (e *env) barrier() {
	e.t.Helper()
	q := bus.NewMessage(bus.ModuleTest, bus.GroupMeta, bus.OpQuery, "barrier/"+string(bus.KindRule), nil)
	if _, err := e.b.SendSync(e.ctx, bus.ModuleMeta, q, 10*time.Second); err != nil {
		e.t.Fatalf("barrier: %v", err)
	}
}

// drain returns what is queued for module now.
func (e *env) drain(mod bus.Module) []bus.Message {
	var out []bus.Message
	q := e.b.Queue(mod)
	for {
		msg, ok := q.Next()
		if !ok {
			return out
		}
		out = append(out, msg)
	}
}

// recv waits for the next message to mod.
func (e *env) recv(mod bus.Module) bus.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	msg, err := e.b.Receive(ctx, mod)
	if err != nil {
		e.t.Fatalf("Receive(%s) = %v", mod, err)
	}
	return msg
}

// setConnected tells meta the cloud came or went, as the hub does.
func (e *env) setConnected(up bool) {
	e.t.Helper()
	s := bus.CloudDisconnected
	if up {
		s = bus.CloudConnected
	}
	e.send(bus.NewMessage(bus.ModuleEdgeHub, bus.GroupMeta, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(s)))
	e.barrier()
	if e.m.Connected() != up {
		e.t.Fatalf("Connected() = %v after %s", !up, s)
	}
}

// rows returns table meta as key -> value.
func (e *env) rows() map[string]string {
	e.t.Helper()
	r, err := e.d.SQL().QueryContext(e.ctx, `SELECT "key", coalesce("value", '') FROM meta`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	out := map[string]string{}
	for r.Next() {
		var k, v string
		if err := r.Scan(&k, &v); err != nil {
			e.t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func (e *env) put(key string, kind bus.Kind, value string) {
	e.t.Helper()
	if err := e.d.UpsertMeta(e.ctx, db.Meta{Key: key, Type: string(kind), Value: value}); err != nil {
		e.t.Fatal(err)
	}
}

// checkAck checks that hub got exactly the "OK" acknowledgement of req
// (docs/protocol.md 2.5): parent = req id, source and group copied, op response.
func (e *env) checkAck(got []bus.Message, req bus.Message) {
	e.t.Helper()
	if len(got) != 1 {
		e.t.Fatalf("hub got %d messages, want 1 ack: %+v", len(got), got)
	}
	a := got[0]
	if a.Header.ParentID != req.Header.ID || a.Route.Operation != bus.OpResponse || !bus.IsOK(a.Content) ||
		a.Route.Source != req.Route.Source || a.Route.Group != req.Route.Group || a.Route.Resource != req.Route.Resource {
		e.t.Errorf("ack = %+v %s, want OK response to %s with parent %s", a.Route, a.Content, req.Route.Resource, req.Header.ID.String())
	}
}

const (
	podJSON  = `{"metadata":{"name":"nginx","namespace":"default","uid":"uid-1"},"spec":{},"status":{}}`
	pod2JSON = `{"metadata":{"name":"nginx","namespace":"default","uid":"uid-2"},"spec":{"x":1}}`
	cmJSON   = `{"metadata":{"name":"cm","namespace":"default"},"data":{"k":"v"}}`
	nodeJSON = `{"metadata":{"name":"edge-1"},"status":{}}`
	devJSON  = `{"metadata":{"name":"dev1","namespace":"default"},"spec":{}}`
	statusA  = `{"UID":"uid-1","Name":"nginx","Status":{"phase":"Running"}}`
	statusB  = `{"UID":"uid-1","Name":"nginx","Status":{"phase":"Failed"}}`
)

func TestCloudObjects(t *testing.T) {
	tests := []struct {
		name      string
		era       bus.Era
		src       bus.Module
		op        bus.Op
		res       string
		content   string
		before    map[string]string // rows stored first
		wantRows  map[string]string
		wantTo    bus.Module // module the message is handed to; "" for none
		wantKinds map[string]string
	}{
		{name: "v1.23 pod insert", src: bus.SourceEdgeController, op: bus.OpInsert, res: "default/pod/nginx", content: podJSON,
			wantRows: map[string]string{"default/pod/nginx": podJSON}, wantTo: bus.ModulePod},
		{name: "v0.3 pod insert", era: bus.EraV03, src: bus.SourceController, op: bus.OpInsert, res: "default/pod/nginx", content: podJSON,
			wantRows: map[string]string{"default/pod/nginx": podJSON}, wantTo: bus.ModulePod},
		{name: "v1.23 insert replaces", src: bus.SourceEdgeController, op: bus.OpInsert, res: "default/pod/nginx", content: pod2JSON,
			before: map[string]string{"default/pod/nginx": podJSON}, wantRows: map[string]string{"default/pod/nginx": pod2JSON}, wantTo: bus.ModulePod},
		{name: "v0.3 insert keeps the existing row", era: bus.EraV03, src: bus.SourceController, op: bus.OpInsert, res: "default/pod/nginx", content: pod2JSON,
			before: map[string]string{"default/pod/nginx": podJSON}, wantRows: map[string]string{"default/pod/nginx": podJSON}, wantTo: bus.ModulePod},
		{name: "v0.3 update replaces", era: bus.EraV03, src: bus.SourceController, op: bus.OpUpdate, res: "default/pod/nginx", content: pod2JSON,
			before: map[string]string{"default/pod/nginx": podJSON}, wantRows: map[string]string{"default/pod/nginx": pod2JSON}, wantTo: bus.ModulePod},
		{name: "configmap update", src: bus.SourceEdgeController, op: bus.OpUpdate, res: "default/configmap/cm", content: cmJSON,
			wantRows: map[string]string{"default/configmap/cm": cmJSON}, wantTo: bus.ModulePod},
		{name: "v0.3 secret as update", era: bus.EraV03, src: bus.SourceController, op: bus.OpUpdate, res: "default/secret/s", content: `{"metadata":{"name":"s"},"data":{}}`,
			wantRows: map[string]string{"default/secret/s": `{"metadata":{"name":"s"},"data":{}}`}, wantTo: bus.ModulePod},
		{name: "dynamiccontroller update", src: bus.SourceDynamicController, op: bus.OpUpdate, res: "default/service/svc", content: `{"metadata":{"name":"svc"}}`,
			wantRows: map[string]string{"default/service/svc": `{"metadata":{"name":"svc"}}`}, wantTo: bus.ModulePod},
		{name: "node update not to edged", src: bus.SourceEdgeController, op: bus.OpUpdate, res: "null/node/edge-1", content: nodeJSON,
			wantRows: map[string]string{"null/node/edge-1": nodeJSON}},
		{name: "v1.23 device to twin", src: bus.SourceDeviceController, op: bus.OpInsert, res: "default/device/dev1", content: devJSON,
			wantRows: map[string]string{"default/device/dev1": devJSON}, wantTo: bus.ModuleTwin},
		{name: "v0.3 device to twin", era: bus.EraV03, src: bus.SourceEdgeMgr, op: bus.OpUpdate, res: "default/device/dev1", content: devJSON,
			wantRows: map[string]string{"default/device/dev1": devJSON}, wantTo: bus.ModuleTwin},
		{name: "policycontroller stored only", src: bus.SourcePolicyController, op: bus.OpInsert, res: "default/serviceaccountaccess/a", content: `{"metadata":{"name":"a"}}`,
			wantRows: map[string]string{"default/serviceaccountaccess/a": `{"metadata":{"name":"a"}}`}},
		{name: "delete configmap", src: bus.SourceEdgeController, op: bus.OpDelete, res: "default/configmap/cm", content: cmJSON,
			before: map[string]string{"default/configmap/cm": cmJSON, "default/configmap/other": cmJSON}, wantRows: map[string]string{"default/configmap/other": cmJSON}, wantTo: bus.ModulePod},
		{name: "delete pod with matching uid", src: bus.SourceEdgeController, op: bus.OpDelete, res: "default/pod/nginx", content: podJSON,
			before:   map[string]string{"default/pod/nginx": podJSON, "default/podpatch/nginx": `{}`, "default/podstatus/nginx": statusA, "default/pod/other": pod2JSON},
			wantRows: map[string]string{"default/pod/other": pod2JSON}, wantTo: bus.ModulePod},
		{name: "delete pod of an older uid keeps the new pod", src: bus.SourceEdgeController, op: bus.OpDelete, res: "default/pod/nginx", content: podJSON,
			before:   map[string]string{"default/pod/nginx": pod2JSON, "default/podpatch/nginx": `{}`},
			wantRows: map[string]string{"default/pod/nginx": pod2JSON, "default/podpatch/nginx": `{}`}, wantTo: bus.ModulePod},
		{name: "v0.3 delete with name only", era: bus.EraV03, src: bus.SourceController, op: bus.OpDelete, res: "default/pod/nginx", content: `{"metadata":{"name":"nginx","namespace":"default"}}`,
			before: map[string]string{"default/pod/nginx": podJSON}, wantRows: map[string]string{}, wantTo: bus.ModulePod},
		{name: "delete with null content", src: bus.SourceEdgeController, op: bus.OpDelete, res: "default/secret/s",
			before: map[string]string{"default/secret/s": `{}`}, wantRows: map[string]string{}, wantTo: bus.ModulePod},
		{name: "delete device to twin", src: bus.SourceDeviceController, op: bus.OpDelete, res: "default/device/dev1", content: devJSON,
			before: map[string]string{"default/device/dev1": devJSON}, wantRows: map[string]string{}, wantTo: bus.ModuleTwin},
		{name: "event to edged, not stored", src: bus.SourceEdgeController, op: bus.OpInsert, res: "default/event/e1", content: `{"metadata":{"name":"e1"}}`,
			wantRows: map[string]string{}, wantTo: bus.ModulePod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{Era: tt.era})
			for k, v := range tt.before {
				e.put(k, kindOf(k), v)
			}
			var content []byte
			if tt.content != "" {
				content = []byte(tt.content)
			}
			msg := bus.NewMessage(tt.src, bus.GroupResource, tt.op, tt.res, content)
			msg.Header.ResourceVersion = "42"
			e.send(msg)
			e.barrier()
			if diff := cmp.Diff(tt.wantRows, e.rows()); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
			e.checkAck(e.drain(bus.ModuleHub), msg)
			for _, mod := range []bus.Module{bus.ModulePod, bus.ModuleTwin} {
				got := e.drain(mod)
				want := 0
				if mod == tt.wantTo {
					want = 1
				}
				if len(got) != want {
					t.Fatalf("%s got %d messages, want %d", mod, len(got), want)
				}
				if want == 1 && (got[0].Header.ID != msg.Header.ID || got[0].Route != msg.Route || string(got[0].Content) != tt.content) {
					t.Errorf("%s got %+v, want the cloud message as it came", mod, got[0])
				}
			}
			if s := e.m.Stats(); s.Errors != 0 || s.In < 2 {
				t.Errorf("Stats() = %+v, want no errors", s)
			}
		})
	}
}

func TestEdgeStatus(t *testing.T) {
	e := newEnv(t, Config{Era: bus.EraV03})
	type step struct {
		res, content string
		connected    bool
		forwarded    bool
	}
	steps := []step{
		{"default/podstatus/nginx", statusA, true, true},
		{"default/podstatus/nginx", statusA, true, false}, // unchanged: not sent again
		{"default/podstatus/nginx", statusB, false, true}, // changed, disconnected: still handed to the hub
		{"default/nodestatus/edge-1", `{"UID":"x","Status":{}}`, false, true},
		{"default/nodestatus/edge-1", `{"UID":"x","Status":{}}`, true, true}, // node status is a heartbeat
	}
	for i, s := range steps {
		e.setConnected(s.connected)
		msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpUpdate, s.res, []byte(s.content))
		resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
		if err != nil || !bus.IsOK(resp.Content) || resp.Header.ParentID != msg.Header.ID {
			t.Fatalf("step %d: SendSync(podstatus) = %+v %s, %v, want OK", i, resp.Route, resp.Content, err)
		}
		e.barrier()
		hub := e.drain(bus.ModuleHub)
		if s.forwarded != (len(hub) == 1) || len(hub) > 1 {
			t.Fatalf("step %d: hub got %d messages, want forwarded=%v", i, len(hub), s.forwarded)
		}
		if s.forwarded && (hub[0].Header.ID != msg.Header.ID || hub[0].Route != msg.Route || string(hub[0].Content) != s.content) {
			t.Errorf("step %d: hub got %+v, want the status as sent", i, hub[0])
		}
		if got := e.rows()[s.res]; got != s.content {
			t.Errorf("step %d: stored %q, want %q", i, got, s.content)
		}
	}
	if got := e.drain(bus.ModulePod); len(got) != 0 {
		t.Errorf("edged got %d messages, want only sync replies", len(got))
	}
}

// responder answers the next request on the hub with the cloud's answer
// built by answer, and returns the request.
func (e *env) responder(answer func(req bus.Message) bus.Message) <-chan bus.Message {
	ch := make(chan bus.Message, 1)
	go func() {
		req, err := e.b.Receive(e.ctx, bus.ModuleHub)
		if err != nil {
			close(ch)
			return
		}
		ch <- req
		if answer != nil {
			e.b.SendResp(answer(req))
		}
	}()
	return ch
}

// cloudResp is the cloud's answer to req, as edgecontroller sends it.
func cloudResp(req bus.Message, content string) bus.Message {
	resp := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpResponse, req.Route.Resource, []byte(content))
	resp.Header.ParentID = req.Header.ID
	return resp
}

func TestRemote(t *testing.T) {
	patched := `{"metadata":{"name":"nginx","namespace":"default","uid":"uid-1"},"status":{"phase":"Running"}}`
	tests := []struct {
		name     string
		era      bus.Era
		op       bus.Op
		res      string
		content  string
		before   map[string]string
		answer   string
		wantRows map[string]string
	}{
		{name: "v1.23 node insert", op: bus.OpInsert, res: "null/node/edge-1", content: nodeJSON,
			answer: `{"Object":` + nodeJSON + `,"Err":null}`, wantRows: map[string]string{"null/node/edge-1": nodeJSON}},
		{name: "lease query not found", op: bus.OpQuery, res: "kube-node-lease/lease/edge-1",
			answer: `{"Object":null,"Err":{"ErrStatus":{"reason":"NotFound"}}}`, wantRows: map[string]string{}},
		// A renewed lease is not written to the store: it changes every
		// round and nothing reads it back.
		{name: "lease update not stored", op: bus.OpUpdate, res: "kube-node-lease/lease/edge-1", content: `{"metadata":{"name":"edge-1"}}`,
			answer:   `{"Object":{"metadata":{"name":"edge-1","resourceVersion":"7"}},"Err":null}`,
			wantRows: map[string]string{}},
		{name: "podpatch stores the patched pod", op: bus.OpPatch, res: "default/podpatch/nginx", content: `"{\"status\":{\"phase\":\"Running\"}}"`,
			before:   map[string]string{"default/pod/nginx": podJSON},
			answer:   `{"Object":` + patched + `,"Err":null}`,
			wantRows: map[string]string{"default/pod/nginx": patched, "default/podpatch/nginx": `{"status":{"phase":"Running"}}`}},
		{name: "v1.23 configmap always remote", op: bus.OpQuery, res: "default/configmap/cm",
			before: map[string]string{"default/configmap/cm": `{"old":1}`},
			answer: `{"Object":` + cmJSON + `,"Err":null}`, wantRows: map[string]string{"default/configmap/cm": cmJSON}},
		{name: "v0.3 configmap missing locally", era: bus.EraV03, op: bus.OpQuery, res: "default/configmap/cm",
			answer: cmJSON, wantRows: map[string]string{"default/configmap/cm": cmJSON}},
		{name: "v0.3 secret missing locally", era: bus.EraV03, op: bus.OpQuery, res: "default/secret/s",
			answer: `{"metadata":{"name":"s"}}`, wantRows: map[string]string{"default/secret/s": `{"metadata":{"name":"s"}}`}},
		{name: "cluster CA", op: bus.OpQuery, res: "default/k8s/ca.crt",
			answer: `{"Object":"-----BEGIN CERTIFICATE-----\n","Err":null}`, wantRows: map[string]string{"default/k8s/ca.crt": `"-----BEGIN CERTIFICATE-----\n"`}},
		{name: "cluster CA without namespace", op: bus.OpQuery, res: "k8s/ca.crt",
			answer: `{"Object":"PEM","Err":null}`, wantRows: map[string]string{"k8s/ca.crt": `"PEM"`}},
		{name: "OK answer stores nothing", op: bus.OpInsert, res: "kube-node-lease/lease/edge-1", content: `{"metadata":{"name":"edge-1"}}`,
			answer: `"OK"`, wantRows: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{Era: tt.era})
			for k, v := range tt.before {
				e.put(k, kindOf(k), v)
			}
			e.setConnected(true)
			var content []byte
			if tt.content != "" {
				content = []byte(tt.content)
			}
			var cloud bus.Message
			reqs := e.responder(func(req bus.Message) bus.Message {
				cloud = cloudResp(req, tt.answer)
				return cloud
			})
			msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, tt.op, tt.res, content)
			resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
			if err != nil {
				t.Fatalf("SendSync(%s %s) = %v", tt.op, tt.res, err)
			}
			req := <-reqs
			// The cloud gets the request under a new id (docs/protocol.md 3.2),
			// sync.
			if req.Header.ID == msg.Header.ID || !req.Header.Sync || req.Route != msg.Route || string(req.Content) != tt.content {
				t.Errorf("hub got %+v %s, want the request under a new id", req.Header, req.Content)
			}
			// The asker gets the cloud's answer with its own request id as parent.
			if resp.Header.ParentID != msg.Header.ID || resp.Route.Operation != bus.OpResponse || string(resp.Content) != tt.answer {
				t.Errorf("answer = %+v %s, want the cloud's answer with parent %s", resp.Header, resp.Content, msg.Header.ID.String())
			}
			e.barrier()
			if diff := cmp.Diff(tt.wantRows, withoutKeys(e.rows(), tt.before, tt.wantRows)); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
			// The cloud's answer is acknowledged (docs/protocol.md 9 item 4).
			e.checkAck(e.recvAll(bus.ModuleHub, 1), cloud)
		})
	}
}

// recvAll waits for n messages to mod, then checks nothing more is queued.
func (e *env) recvAll(mod bus.Module, n int) []bus.Message {
	e.t.Helper()
	var out []bus.Message
	for range n {
		out = append(out, e.recv(mod))
	}
	e.barrier()
	return append(out, e.drain(mod)...)
}

// withoutKeys drops rows that were stored before the test and that the test
// does not name in want.
func withoutKeys(rows, before, want map[string]string) map[string]string {
	for k := range before {
		if _, ok := want[k]; !ok {
			delete(rows, k)
		}
	}
	return rows
}

func TestRemoteNotConnected(t *testing.T) {
	tests := []struct {
		name     string
		op       bus.Op
		res      string
		content  string
		wantHub  bool // handed to the hub to queue
		wantRows map[string]string
	}{
		{name: "node insert", op: bus.OpInsert, res: "null/node/edge-1", content: nodeJSON, wantRows: map[string]string{}},
		{name: "lease update", op: bus.OpUpdate, res: "kube-node-lease/lease/edge-1", content: `{"metadata":{"name":"edge-1"}}`, wantRows: map[string]string{}},
		{name: "nodepatch stored and queued", op: bus.OpPatch, res: "null/nodepatch/edge-1", content: `"{}"`, wantHub: true,
			wantRows: map[string]string{"null/nodepatch/edge-1": `{}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, tt.op, tt.res, []byte(tt.content))
			resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := bus.ContentString(resp.Content); resp.Route.Operation != bus.OpError || s != reasonNotConnected || resp.Header.ParentID != msg.Header.ID {
				t.Errorf("answer = %+v %s, want error %q", resp.Route, resp.Content, reasonNotConnected)
			}
			e.barrier()
			hub := e.drain(bus.ModuleHub)
			if tt.wantHub != (len(hub) == 1) || len(hub) > 1 {
				t.Errorf("hub got %d messages, want queued=%v", len(hub), tt.wantHub)
			}
			if diff := cmp.Diff(tt.wantRows, e.rows()); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPatchUnchanged(t *testing.T) {
	e := newEnv(t, Config{})
	e.setConnected(true)
	e.put("default/podpatch/nginx", bus.KindPodPatch, `{"a":1}`)
	msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, "default/podpatch/nginx", bus.JSONString(`{"a":1}`))
	resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
	if err != nil || !bus.IsOK(resp.Content) {
		t.Fatalf("SendSync(unchanged podpatch) = %s, %v, want OK", resp.Content, err)
	}
	e.barrier()
	if hub := e.drain(bus.ModuleHub); len(hub) != 0 {
		t.Errorf("hub got %+v, want an unchanged podpatch not sent", hub)
	}
}

func TestRemoteQueryTimeout(t *testing.T) {
	tests := []struct {
		name     string
		stored   bool
		wantOp   bus.Op
		wantBody string
	}{
		{name: "stored row answers", stored: true, wantOp: bus.OpResponse, wantBody: `["` + strings.ReplaceAll(cmJSON, `"`, `\"`) + `"]`},
		{name: "nothing stored", wantOp: bus.OpError, wantBody: `"` + reasonRemote + bus.ErrTimeout.Error() + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{RemoteQueryTimeout: 50 * time.Millisecond})
			if tt.stored {
				e.put("default/configmap/cm", bus.KindConfigMap, cmJSON)
			}
			e.setConnected(true)
			reqs := e.responder(nil) // the cloud never answers
			msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, "default/configmap/cm", nil)
			resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			<-reqs
			if resp.Route.Operation != tt.wantOp || string(resp.Content) != tt.wantBody || resp.Header.ParentID != msg.Header.ID {
				t.Errorf("answer = %s %s, want %s %s", resp.Route.Operation, resp.Content, tt.wantOp, tt.wantBody)
			}
		})
	}
}

func TestQueryLocal(t *testing.T) {
	e := newEnv(t, Config{})
	e.put("default/configmap/a", bus.KindConfigMap, `{"a":1}`)
	e.put("kube-system/configmap/b", bus.KindConfigMap, `{"b":"x\"y"}`)
	e.put("default/pod/p", bus.KindPod, podJSON)
	tests := []struct {
		name, res string
		connected bool
		want      string
	}{
		{"by key", "default/configmap/a", false, `["{\"a\":1}"]`},
		{"list all namespaces", "default/configmap", false, `["{\"a\":1}","{\"b\":\"x\\\"y\"}"]`},
		{"missing", "default/configmap/none", false, `[]`},
		{"pod is local while connected", "default/pod/p", true, `["` + strings.ReplaceAll(podJSON, `"`, `\"`) + `"]`},
		{"list is local while connected", "default/configmap", true, `["{\"a\":1}","{\"b\":\"x\\\"y\"}"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.setConnected(tt.connected)
			msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, tt.res, nil)
			resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.Content) != tt.want || resp.Route.Operation != bus.OpResponse ||
				resp.Route.Source != bus.ModuleMeta || resp.Header.ParentID != msg.Header.ID || resp.Route.Resource != tt.res {
				t.Errorf("answer = %+v %s, want response %s", resp.Route, resp.Content, tt.want)
			}
		})
	}
	// An asynchronous query is answered on the asker's queue.
	e.setConnected(false)
	msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, "default/configmap/a", nil)
	e.send(msg)
	if got := e.recv(bus.ModulePod); got.Header.ParentID != msg.Header.ID || string(got.Content) != `["{\"a\":1}"]` {
		t.Errorf("async answer = %+v %s", got.Header, got.Content)
	}
	if hub := e.drain(bus.ModuleHub); len(hub) != 0 {
		t.Errorf("hub got %d messages, want none for local queries", len(hub))
	}
}

func TestCloudResponse(t *testing.T) {
	e := newEnv(t, Config{})
	e.put("default/pod/nginx", bus.KindPod, podJSON)
	tests := []struct {
		name, res, content string
		wantRows           map[string]string
	}{
		// A podpatch answer that came after the edge stopped waiting (or
		// for a patch queued offline) still updates the pod.
		{"late patch answer", "default/podpatch/nginx", `{"Object":` + pod2JSON + `,"Err":null}`, map[string]string{"default/pod/nginx": pod2JSON}},
		{"error answer stores nothing", "default/podpatch/nginx", `{"Object":null,"Err":{"ErrStatus":{}}}`, map[string]string{"default/pod/nginx": pod2JSON}},
		{"v0.3 object", "default/configmap/cm", cmJSON, map[string]string{"default/pod/nginx": pod2JSON, "default/configmap/cm": cmJSON}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpResponse, tt.res, []byte(tt.content))
			msg.Header.ParentID = bus.NewID()
			e.send(msg)
			e.barrier()
			if diff := cmp.Diff(tt.wantRows, e.rows()); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
			e.checkAck(e.drain(bus.ModuleHub), msg)
			if got := e.drain(bus.ModulePod); len(got) != 1 || got[0].Header.ID != msg.Header.ID {
				t.Errorf("edged got %+v, want the response", got)
			}
		})
	}
}

// TestEdgeDelete: edged's final pod delete is a remote operation (KubeEdge
// v1.23.1 edge/pkg/metamanager/client/pod.go Delete); once the cloud
// answers "OK" the pod's rows go, an error keeps them, and without a cloud
// edged hears "not connected" at once.
func TestEdgeDelete(t *testing.T) {
	const opts = `{"gracePeriodSeconds":0,"preconditions":{"uid":"uid-1"}}`
	patch := `{"status":{"phase":"Succeeded"}}`
	before := map[string]string{"default/pod/nginx": podJSON, "default/podpatch/nginx": patch, "default/pod/other": pod2JSON}
	tests := []struct {
		name      string
		connected bool
		content   string
		answer    string // the cloud's; "" for none
		wantResp  string
		wantRows  map[string]string
	}{
		{name: "OK deletes the rows", connected: true, content: opts, answer: `"OK"`, wantResp: `"OK"`,
			wantRows: map[string]string{"default/pod/other": pod2JSON}},
		{name: "uid string of older edges", connected: true, content: `"uid-1"`, answer: `"OK"`, wantResp: `"OK"`,
			wantRows: map[string]string{"default/pod/other": pod2JSON}},
		{name: "OK for another uid keeps the pod", connected: true, content: `{"gracePeriodSeconds":0,"preconditions":{"uid":"uid-9"}}`,
			answer: `"OK"`, wantResp: `"OK"`, wantRows: before},
		{name: "cloud error keeps the rows", connected: true, content: opts, answer: `"pods \"nginx\" is forbidden"`,
			wantResp: `"pods \"nginx\" is forbidden"`, wantRows: before},
		{name: "no cloud", content: opts, wantResp: `"` + reasonNotConnected + `"`, wantRows: before},
		{name: "bad content", connected: true, content: `5`, wantResp: `"` + ErrBadContent.Error() + `: want DeleteOptions or a pod uid"`, wantRows: before},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			for k, v := range before {
				e.put(k, kindOf(k), v)
			}
			if tt.connected {
				e.setConnected(true)
			}
			var reqs <-chan bus.Message
			var cloud bus.Message
			if tt.answer != "" {
				reqs = e.responder(func(req bus.Message) bus.Message {
					cloud = cloudResp(req, tt.answer)
					return cloud
				})
			}
			msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpDelete, "default/pod/nginx", []byte(tt.content))
			resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
			if err != nil || string(resp.Content) != tt.wantResp || resp.Header.ParentID != msg.Header.ID {
				t.Fatalf("SendSync(pod delete) = %+v %s, %v, want %s", resp.Header, resp.Content, err, tt.wantResp)
			}
			if reqs != nil {
				req := <-reqs
				if req.Route != msg.Route || !req.Header.Sync || string(req.Content) != tt.content {
					t.Errorf("cloud got %+v %+v %s, want the delete as sent, sync", req.Route, req.Header, req.Content)
				}
				e.checkAck(e.recvAll(bus.ModuleHub, 1), cloud)
			} else {
				e.barrier()
				if hub := e.drain(bus.ModuleHub); len(hub) != 0 {
					t.Errorf("hub got %+v, want nothing", hub)
				}
			}
			if diff := cmp.Diff(tt.wantRows, e.rows()); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		src     bus.Module
		op      bus.Op
		res     string
		content string
	}{
		{"content not JSON", bus.SourceEdgeController, bus.OpInsert, "default/pod/a", `{"metadata":`},
		{"pod content a string", bus.SourceEdgeController, bus.OpInsert, "default/pod/a", `"pod"`},
		{"pod content an array", bus.SourceEdgeController, bus.OpUpdate, "default/pod/a", `[1]`},
		{"pod without name", bus.SourceEdgeController, bus.OpInsert, "default/pod/a", `{"metadata":{}}`},
		{"metadata a string", bus.SourceController, bus.OpInsert, "default/configmap/a", `{"metadata":"x"}`},
		{"uid a number", bus.SourceEdgeController, bus.OpDelete, "default/pod/nginx", `{"metadata":{"uid":5}}`},
		{"empty insert", bus.SourceEdgeController, bus.OpInsert, "default/pod/a", ``},
		{"unknown kind from the edge", bus.ModulePod, bus.OpInsert, "default/gizmo/a", `{}`},
		{"unknown kind empty insert", bus.SourceDeviceController, bus.OpInsert, "default/devicemodel/m", ``},
		{"unknown kind not JSON", bus.SourceDeviceController, bus.OpUpdate, "default/devicemodel/m", `{"spec":`},
		{"unknown kind two tokens", bus.SourceEdgeController, bus.OpInsert, "default/gizmo", `{}`},
		{"unknown kind cloud query", bus.SourceEdgeController, bus.OpQuery, "default/gizmo/a", ``},
		{"two tokens insert", bus.SourceEdgeController, bus.OpInsert, "default/pod", podJSON},
		{"empty token", bus.SourceEdgeController, bus.OpUpdate, "default//a", podJSON},
		{"unknown operation", bus.SourceEdgeController, bus.OpAction, "default/pod/a", podJSON},
		{"patch from the cloud", bus.SourceEdgeController, bus.OpPatch, "default/podpatch/a", `"{}"`},
		{"podstatus an array", bus.ModulePod, bus.OpUpdate, "default/podstatus/nginx", `[` + statusA + `]`},
		{"podstatus Status a string", bus.ModulePod, bus.OpUpdate, "default/podstatus/nginx", `{"Status":"x"}`},
		{"podpatch not JSON inside", bus.ModulePod, bus.OpPatch, "default/podpatch/nginx", `"{not json"`},
		{"podpatch a number", bus.ModulePod, bus.OpPatch, "default/podpatch/nginx", `12`},
		{"patch of a pod", bus.ModulePod, bus.OpPatch, "default/pod/nginx", `"{}"`},
		{"edge query bad path", bus.ModulePod, bus.OpQuery, "configmap", ``},
		{"board node status not JSON", bus.ModuleNodeStatus, bus.OpUpdate, "default/nodestatus/n", `{`},
		{"path with dot-dot", bus.SourceEdgeController, bus.OpInsert, "../../../etc/pod/passwd", `{"metadata":{"name":"passwd"}}`},
		{"name dot-dot", bus.SourceEdgeController, bus.OpInsert, "default/configmap/..", `{"metadata":{"name":"x"}}`},
		{"unknown kind dot-dot", bus.SourceDeviceController, bus.OpInsert, "default/../x", `{}`},
		{"name with a space", bus.SourceEdgeController, bus.OpInsert, "default/configmap/a b", `{"metadata":{"name":"a b"}}`},
		{"kind with a colon", bus.SourceDeviceController, bus.OpInsert, "default/a:b/x", `{}`},
		{"configmap data an array", bus.SourceEdgeController, bus.OpInsert, "default/configmap/a", `{"metadata":{"name":"a"},"data":["x"]}`},
		{"configmap value a number", bus.SourceEdgeController, bus.OpUpdate, "default/configmap/a", `{"metadata":{"name":"a"},"data":{"k":1}}`},
		{"secret data not base64", bus.SourceEdgeController, bus.OpInsert, "default/secret/a", `{"metadata":{"name":"a"},"data":{"k":"!!"}}`},
		{"pod containers an object", bus.SourceEdgeController, bus.OpInsert, "default/pod/a", `{"metadata":{"name":"a"},"spec":{"containers":{}}}`},
		{"pod command a string", bus.SourceEdgeController, bus.OpInsert, "default/pod/a", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","command":"sh"}]}}`},
		{"node connection garbage", bus.ModuleTest, bus.OpConnect, bus.ResNodeConnection, `"maybe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.put("default/pod/nginx", bus.KindPod, podJSON)
			e.put("default/podstatus/nginx", bus.KindPodStatus, statusA)
			e.put("default/podpatch/nginx", bus.KindPodPatch, `{}`)
			before := e.rows()
			var content []byte
			if tt.content != "" {
				content = []byte(tt.content)
			}
			msg := bus.NewMessage(tt.src, bus.GroupResource, tt.op, tt.res, content)
			var got bus.Message
			if isCloud(tt.src) {
				e.send(msg)
				e.barrier()
				hub := e.drain(bus.ModuleHub)
				if len(hub) != 1 {
					t.Fatalf("hub got %d messages, want 1 error", len(hub))
				}
				got = hub[0]
			} else {
				resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				got = resp
			}
			reason, _ := bus.ContentString(got.Content)
			if got.Route.Operation != bus.OpError || got.Header.ParentID != msg.Header.ID || reason == "" ||
				got.Route.Source != bus.ModuleMeta || got.Route.Resource != tt.res {
				t.Errorf("answer = %+v %s, want an error for request %s", got.Route, got.Content, msg.Header.ID.String())
			}
			t.Logf("reason: %s", reason)
			if diff := cmp.Diff(before, e.rows()); diff != "" {
				t.Errorf("stored rows changed (-before +after):\n%s", diff)
			}
			for _, mod := range []bus.Module{bus.ModulePod, bus.ModuleTwin} {
				if got := e.drain(mod); len(got) != 0 {
					t.Errorf("%s got %+v, want nothing", mod, got)
				}
			}
			if e.m.Stats().Errors != 1 {
				t.Errorf("Stats().Errors = %d, want 1", e.m.Stats().Errors)
			}
		})
	}
}

func TestNodeConnection(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		op      bus.Op
		content string
		want    bool
	}{
		{bus.OpConnect, bus.CloudConnected, true},
		{bus.OpConnect, bus.CloudDisconnected, false},
		{bus.OpPublish, bus.CloudConnected, true}, // v0.3 spelling
		{bus.OpPublish, bus.CloudDisconnected, false},
	}
	for _, tt := range tests {
		e.send(bus.NewMessage(bus.ModuleEdgeHub, bus.GroupMeta, tt.op, bus.ResNodeConnection, bus.JSONString(tt.content)))
		e.barrier()
		if got := e.m.Connected(); got != tt.want {
			t.Errorf("after %s %s: Connected() = %v, want %v", tt.op, tt.content, got, tt.want)
		}
	}
}

func TestPodStatusSync(t *testing.T) {
	e := newEnv(t, Config{Era: bus.EraV03})
	e.put("default/pod/a", bus.KindPod, podJSON)
	e.put("kube-system/pod/c", bus.KindPod, podJSON)
	e.put("default/podstatus/a", bus.KindPodStatus, statusA)
	e.put("default/podstatus/b", bus.KindPodStatus, statusB) // pod b is gone
	e.put("kube-system/podstatus/c", bus.KindPodStatus, statusB)
	e.send(bus.NewMessage(bus.ModuleMeta, bus.GroupResource, bus.OpMetaSync, string(bus.KindPodStatus), nil))
	e.barrier()
	hub := e.drain(bus.ModuleHub)
	if len(hub) != 1 {
		t.Fatalf("hub got %d messages, want 1 podstatus sync", len(hub))
	}
	got := hub[0]
	want := bus.Route{Source: bus.ModuleMeta, Group: bus.GroupResource, Operation: bus.OpUpdate, Resource: "default/podstatus"}
	if got.Route != want || string(got.Content) != `[`+statusA+`,`+statusB+`]` {
		t.Errorf("sync = %+v %s, want %+v with statuses a and c", got.Route, got.Content, want)
	}
	// On the v0.3 wire the source is spelled metaManager (docs/protocol.md 2.5).
	frame, err := bus.Encode(nil, got, bus.EraV03)
	if err != nil || !strings.Contains(string(frame), `"source":"metaManager"`) {
		t.Errorf("Encode(sync, v0.3) = %s, %v, want source metaManager", frame, err)
	}
	if _, ok := e.rows()["default/podstatus/b"]; ok {
		t.Error("status of a deleted pod kept, want it deleted")
	}
	// Nothing stored: nothing sent.
	e2 := newEnv(t, Config{Era: bus.EraV03})
	e2.send(bus.NewMessage(bus.ModuleMeta, bus.GroupResource, bus.OpMetaSync, string(bus.KindPodStatus), nil))
	e2.barrier()
	if hub := e2.drain(bus.ModuleHub); len(hub) != 0 {
		t.Errorf("sync with no statuses sent %+v, want nothing", hub)
	}
}

func TestNewConfig(t *testing.T) {
	b := bus.New(bus.Config{}, nil)
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m, err := New(Config{PodStatusSyncInterval: 10 * time.Second}, b, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{RemoteQueryTimeout: 60 * time.Second, PodStatusSyncInterval: 60 * time.Second, MaxRemote: DefaultMaxRemote}
	if diff := cmp.Diff(want, m.cfg); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
	if !b.Has(bus.ModuleMeta) {
		t.Error("New did not register metamanager on the bus")
	}
	if _, err := New(Config{}, b, d, nil); !errors.Is(err, bus.ErrDuplicate) {
		t.Errorf("second New() = %v, want ErrDuplicate", err)
	}
	bad := Config{RemoteQueryTimeout: -1, PodStatusSyncInterval: -1, MaxRemote: -1}
	errs := bad.Validate()
	var keys []string
	for _, e := range errs {
		keys = append(keys, strings.SplitN(e.Error(), ":", 2)[0])
	}
	sort.Strings(keys)
	if diff := cmp.Diff([]string{"meta.maxRemote", "meta.podStatusSyncInterval", "meta.remoteQueryTimeout"}, keys); diff != "" {
		t.Errorf("Validate() keys mismatch (-want +got):\n%s", diff)
	}
	if _, err := New(bad, bus.New(bus.Config{}, nil), d, nil); err == nil {
		t.Error("New(bad config) = nil error")
	}
}

// TestRemoteAskerGaveUp: the cloud answers after the asker's own timeout.
// The answer is still stored and acknowledged, and nothing lands on the
// asker's queue.
func TestRemoteAskerGaveUp(t *testing.T) {
	e := newEnv(t, Config{})
	e.setConnected(true)
	gaveUp := make(chan struct{})
	answered := make(chan bus.Message, 1)
	go func() {
		req, err := e.b.Receive(e.ctx, bus.ModuleHub)
		if err != nil {
			close(answered)
			return
		}
		<-gaveUp
		resp := cloudResp(req, `{"Object":`+nodeJSON+`,"Err":null}`)
		e.b.SendResp(resp)
		answered <- resp
	}()
	msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpInsert, "null/node/edge-1", []byte(nodeJSON))
	if _, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, 20*time.Millisecond); !errors.Is(err, bus.ErrTimeout) {
		t.Fatalf("SendSync() = %v, want the asker's timeout", err)
	}
	close(gaveUp)
	cloud := <-answered
	e.checkAck(e.recvAll(bus.ModuleHub, 1), cloud)
	if got := e.rows()["null/node/edge-1"]; got != nodeJSON {
		t.Errorf("node row = %q, want the cloud's object", got)
	}
	e.m.wg.Wait() // the remote operation has ended
	if got := e.drain(bus.ModulePod); len(got) != 0 {
		t.Errorf("edged got %+v, want nothing after it stopped waiting", got)
	}
}

// TestCloudUnknownKind: a cloud insert, update or delete of a kind meta
// has no rules for (devicemodel, or one added to KubeEdge later) is stored
// under its path with the kind as type, handed on and acknowledged "OK":
// cloudcore takes nothing else as an ACK (metamanager process.go v1.23.1).
func TestCloudUnknownKind(t *testing.T) {
	const (
		model  = `{"metadata":{"name":"m1","namespace":"default"},"spec":{"properties":[]}}`
		model2 = `{"metadata":{"name":"m1","namespace":"default"},"spec":{"properties":[{"name":"t"}]}}`
	)
	tests := []struct {
		name    string
		src     bus.Module
		res     string
		to      bus.Module // the module the object is handed to
		content string     // any JSON the cloud sends is kept
	}{
		{"devicemodel", bus.SourceDeviceController, "default/devicemodel/m1", bus.ModuleTwin, model},
		{"future kind", bus.SourceEdgeController, "default/gizmo/g1", bus.ModulePod, `{"spec":{"size":3}}`},
		{"future kind string content", bus.SourceDynamicController, "default/gizmo/g2", bus.ModulePod, `"text"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			for _, step := range []struct {
				op      bus.Op
				content string
				want    map[string]string // rows of kind besides the pod
			}{
				{bus.OpInsert, tt.content, map[string]string{tt.res: tt.content}},
				{bus.OpUpdate, model2, map[string]string{tt.res: model2}},
				{bus.OpDelete, model2, map[string]string{}},
			} {
				msg := bus.NewMessage(tt.src, bus.GroupResource, step.op, tt.res, []byte(step.content))
				e.send(msg)
				e.barrier()
				e.checkAck(e.drain(bus.ModuleHub), msg)
				got := e.drain(tt.to)
				if len(got) != 1 || got[0].Header.ID != msg.Header.ID {
					t.Errorf("%s: %s got %+v, want the message handed on", step.op, tt.to, got)
				}
				if diff := cmp.Diff(step.want, e.rows()); diff != "" {
					t.Errorf("%s: rows (-want +got):\n%s", step.op, diff)
				}
				if step.op == bus.OpInsert {
					var typ string
					if err := e.d.SQL().QueryRowContext(e.ctx, `SELECT "type" FROM meta WHERE "key" = ?`, tt.res).Scan(&typ); err != nil {
						t.Fatal(err)
					}
					if want := strings.Split(tt.res, "/")[1]; typ != want {
						t.Errorf("type = %q, want %q", typ, want)
					}
				}
			}
			if s := e.m.Stats(); s.Errors != 0 {
				t.Errorf("Stats().Errors = %d, want 0", s.Errors)
			}
		})
	}
}

// TestRemoteQueriesShareAFlight: identical queries in flight together go
// to the cloud once and all get its answer. A real cloudcore keeps one
// pending message per object toward the node, so two answers about the
// same configmap queued together lose one (two pods mounting one
// configmap, created together, left one Pending for 10 s).
func TestRemoteQueriesShareAFlight(t *testing.T) {
	e := newEnv(t, Config{})
	e.setConnected(true)
	e.barrier()
	const n = 3
	answers := make(chan bus.Message, n)
	var asked []bus.Message
	for range n {
		msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, "default/configmap/cm", nil)
		asked = append(asked, msg)
		go func() {
			resp, err := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, time.Minute)
			if err != nil {
				t.Errorf("SendSync() = %v", err)
			}
			answers <- resp
		}()
	}
	req := e.recv(bus.ModuleHub)
	// Let the other queries reach meta and join the flight.
	for _, m := range asked {
		for !e.b.IsWaiting(m.Header.ID) {
			time.Sleep(time.Millisecond)
		}
	}
	e.barrier()
	e.b.SendResp(cloudResp(req, `{"Object":`+cmJSON+`,"Err":null}`))
	got := map[bus.ID]bool{}
	for range n {
		resp := <-answers
		if resp.Route.Operation != bus.OpResponse || !strings.Contains(string(resp.Content), `"cm"`) {
			t.Errorf("answer = %s %s, want the cloud's configmap", resp.Route.Operation, resp.Content)
		}
		got[resp.Header.ParentID] = true
	}
	for _, m := range asked {
		if !got[m.Header.ID] {
			t.Errorf("query %s got no answer of its own", m.Header.ID)
		}
	}
	e.barrier()
	if more := e.drain(bus.ModuleHub); len(more) != 1 || more[0].Route.Operation != bus.OpResponse {
		t.Errorf("the hub got %d more messages (%v), want only the ACK of the answer: one query for all", len(more), more)
	}
}

// TestRemoteQueryAskedAgain: a query whose answer the cloud dropped is
// sent again (new id) after queryRetry, within RemoteQueryTimeout.
func TestRemoteQueryAskedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Config{})
		e.setConnected(true)
		e.barrier()
		msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, "default/secret/s", nil)
		done := make(chan bus.Message, 1)
		go func() {
			resp, _ := e.b.SendSync(e.ctx, bus.ModuleMeta, msg, time.Minute)
			done <- resp
		}()
		first := e.recv(bus.ModuleHub) // the cloud drops this answer
		start := time.Now()
		second := e.recv(bus.ModuleHub)
		if waited := time.Since(start); waited != queryRetry || second.Header.ID == first.Header.ID {
			t.Errorf("second query after %v with id %s, want after %v with a new id", waited, second.Header.ID, queryRetry)
		}
		e.b.SendResp(cloudResp(second, `{"Object":{"metadata":{"name":"s"}},"Err":null}`))
		if resp := <-done; resp.Route.Operation != bus.OpResponse || resp.Header.ParentID != msg.Header.ID {
			t.Errorf("answer = %s %s, want the cloud's answer to the second query", resp.Route.Operation, resp.Content)
		}
		e.cancel()
	})
}

// TestAsyncReportNoAnswer: a pod status edged sends without waiting gets
// no answer on edged's queue, neither the cloud's nor an error, connected
// or not; it still goes to the cloud.
func TestAsyncReportNoAnswer(t *testing.T) {
	e := newEnv(t, Config{})
	patch := `"{\"status\":{\"phase\":\"Running\"}}"`
	for _, connected := range []bool{false, true} {
		e.setConnected(connected)
		var reqs <-chan bus.Message
		if connected {
			reqs = e.responder(func(req bus.Message) bus.Message { return cloudResp(req, `{"Object":{},"Err":null}`) })
		}
		phase := "Running"
		if connected {
			phase = "Succeeded" // a change, so that meta sends it on
		}
		content := []byte(strings.Replace(patch, "Running", phase, 1))
		e.send(bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, "default/podpatch/web", content))
		if connected {
			if req := <-reqs; req.Route.Resource != "default/podpatch/web" {
				t.Fatalf("hub got %+v, want the podpatch", req.Route)
			}
		} else if got := e.recv(bus.ModuleHub); got.Route.Resource != "default/podpatch/web" {
			t.Fatalf("hub got %+v, want the podpatch queued for the cloud", got.Route)
		}
		e.barrier()
		if got := e.drain(bus.ModulePod); len(got) != 0 {
			t.Errorf("connected=%v: edged got %d answers to an asynchronous status (%+v), want none", connected, len(got), got[0].Route)
		}
		e.drain(bus.ModuleHub)
	}
}

// kindOf is the type token of a stored key, as a message carries it.
func kindOf(key string) bus.Kind {
	return bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpInsert, key, nil).Res.Kind
}
