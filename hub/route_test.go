package hub

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
	"edgenode/hub/hubtest"
)

// connected starts a node against srv and waits until both ends see the
// link.
func connected(t *testing.T, srv *hubtest.Server, cfg Config) *node {
	t.Helper()
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	n.recvConn(fakeTwin)
	n.recvConn(fakeBus)
	if err := srv.WaitConnects(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRouteToEdge(t *testing.T) {
	for _, binary := range []bool{false, true} {
		name := "text"
		if binary {
			name = "binary"
		}
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, hubtest.Config{Binary: binary})
			n := connected(t, srv, testConfig(t, srv, bus.EraV123))
			tests := []struct {
				name  string
				msg   bus.Message
				to    bus.Module
				extra func(*bus.Message)
			}{
				{"resource to meta", bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/a", []byte(`{"metadata":{"name":"a"}}`)), fakeMeta, nil},
				{"func to meta", bus.NewMessage(bus.SourceFuncMgr, bus.GroupFunc, bus.OpUpdate, "default/func/f", []byte(`{}`)), fakeMeta, nil},
				{"twin to twin", bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpUpdate, "device/d1/twin/cloud_updated", []byte(`{"twin":{}}`)), fakeTwin, nil},
				{"user to bus", bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpPublish, "a/topic", bus.JSONString("x")), fakeBus, nil},
				{"response with no waiter to meta", bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpResponse, "null/node/node-a", []byte(`{"Object":{},"Err":null}`)), fakeMeta,
					func(m *bus.Message) { m.Header.ParentID = bus.NewID() }},
			}
			for _, tt := range tests {
				if tt.extra != nil {
					tt.extra(&tt.msg)
				}
				srv.Push(tt.msg)
				got := n.recv(tt.to)
				if got.Header.ID != tt.msg.Header.ID || got.Route != tt.msg.Route || string(got.Content) != string(tt.msg.Content) {
					t.Errorf("%s: %s got %+v %s, want %+v %s", tt.name, tt.to, got.Route, got.Content, tt.msg.Route, tt.msg.Content)
				}
			}
			// An unknown group is dropped and counted; the next message
			// still arrives.
			srv.Push(bus.NewMessage(bus.SourceCloudHub, "nosuchgroup", bus.OpUpdate, "x/y/z", nil))
			next := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpDelete, "default/pod/a", []byte(`{}`))
			srv.Push(next)
			if got := n.recv(fakeMeta); got.Header.ID != next.Header.ID {
				t.Errorf("after unknown group: meta got %v, want %v", got.Header.ID, next.Header.ID)
			}
			if got := n.c.Stats().UnknownGroups; got != 1 {
				t.Errorf("Stats().UnknownGroups = %d, want 1", got)
			}
		})
	}
}

func TestBadFramesDropped(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	cfg.MaxFrameBytes = 1024
	n := connected(t, srv, cfg)
	frames := [][]byte{
		[]byte(`not json`),
		[]byte(`[1,2,3]`),
		[]byte(`{"header":{"msg_id":1}}`),
		[]byte(`{"header":{"msg_id":"` + strings.Repeat("x", 40) + `"}}`),
		[]byte(`{"route":{"group":"resource"},"content":` + `"` + strings.Repeat("a", 2000) + `"}`), // too large
	}
	for _, f := range frames {
		if !srv.PushFrame(f) {
			t.Fatal("PushFrame: no link")
		}
	}
	good := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/b", []byte(`{}`))
	srv.Push(good)
	if got := n.recv(fakeMeta); got.Header.ID != good.Header.ID {
		t.Fatalf("meta got %v, want the good message %v", got.Header.ID, good.Header.ID)
	}
	if got := n.c.Stats().BadFrames; got != uint64(len(frames)) {
		t.Errorf("Stats().BadFrames = %d, want %d", got, len(frames))
	}
	if got := srv.Connects(); got != 1 {
		t.Errorf("connects = %d, want 1 (the link stays up)", got)
	}
}

func TestSyncQueryAnsweredThroughHub(t *testing.T) {
	const cm = `{"metadata":{"name":"cfg","namespace":"default"},"data":{"k":"v"}}`
	srv := newServer(t, hubtest.Config{Answer: func(req bus.Message) (bus.Message, bool) {
		if req.Route.Operation != bus.OpQuery || req.Route.Resource != "default/configmap/cfg" {
			return bus.Message{}, false
		}
		resp := req.Resp([]byte(`{"Object":` + cm + `,"Err":null}`))
		resp.Route.Source = bus.SourceEdgeController
		resp.Route.Group = bus.GroupResource
		return resp, true
	}})
	n := connected(t, srv, testConfig(t, srv, bus.EraV123))
	q := bus.NewMessage(bus.ModuleMeta, bus.GroupMeta, bus.OpQuery, "default/configmap/cfg", nil)
	resp, err := n.b.SendSync(ctxT(t), bus.ModuleHub, q, 10*time.Second)
	if err != nil {
		t.Fatalf("SendSync() = %v", err)
	}
	if resp.Header.ParentID != q.Header.ID || resp.Route.Operation != bus.OpResponse {
		t.Errorf("reply = %+v parent %v, want a response to %v", resp.Route, resp.Header.ParentID, q.Header.ID)
	}
	if !strings.Contains(string(resp.Content), `"k":"v"`) {
		t.Errorf("reply content = %s, want the configmap", resp.Content)
	}
	got, err := srv.WaitFor(ctxT(t), isOp(bus.OpQuery))
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Sync {
		t.Errorf("query on the v1.23 wire has sync=true, want false (docs/protocol.md 1.3)")
	}
	// The reply went to the waiter, not to meta's queue.
	if d := n.b.Depth(fakeMeta); d != 0 {
		t.Errorf("meta queue holds %d messages, want 0", d)
	}
}

func TestSyncFlagOnSeedWire(t *testing.T) {
	srv := newServer(t, hubtest.Config{Era: bus.EraV03})
	n := connected(t, srv, testConfig(t, srv, bus.EraV03))
	st := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpUpdate, "default/podstatus/p", []byte(`{"UID":"u","Name":"p","Status":{}}`))
	st.Header.Sync = true
	if err := n.b.Send(bus.ModuleHub, st); err != nil {
		t.Fatal(err)
	}
	got, err := srv.WaitFor(ctxT(t), func(m bus.Message) bool { return m.Header.ID == st.Header.ID })
	if err != nil {
		t.Fatal(err)
	}
	if !got.Header.Sync {
		t.Errorf("podstatus on the v0.3 wire has sync=false, want true (docs/protocol.md 1.3)")
	}
}

func TestViaductControlAnswered(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	connected(t, srv, testConfig(t, srv, bus.EraV123))
	for _, op := range []bus.Op{bus.OpPing, bus.OpPong, bus.OpConfig} {
		m := bus.NewMessage(bus.SourceCloudHub, bus.GroupResource, op, bus.ResNode, bus.JSONString("x"))
		srv.Push(m)
		got, err := srv.WaitFor(ctxT(t), func(r bus.Message) bool { return r.Header.ParentID == m.Header.ID })
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		want := bus.Route{Source: bus.SourceCloudHub, Group: bus.GroupResource, Operation: bus.OpResponse, Resource: bus.ResNode}
		if diff := cmp.Diff(want, got.Route); diff != "" || string(got.Content) != `"ack"` {
			t.Errorf("%s: answer %s route (-want +got):\n%s", op, got.Content, diff)
		}
	}
}

func TestOfflineSyncRequestFailsFast(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	srv.Pause() // the cloud is unreachable from the start
	n := startNode(t, testConfig(t, srv, bus.EraV123))
	q := bus.NewMessage(bus.ModuleMeta, bus.GroupMeta, bus.OpQuery, "default/secret/s", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := n.b.SendSync(ctx, bus.ModuleHub, q, 10*time.Second)
	if err != nil {
		t.Fatalf("SendSync() = %v, want an error reply", err)
	}
	if resp.Route.Operation != bus.OpError || resp.Header.ParentID != q.Header.ID {
		t.Errorf("reply = %+v, want operation error for %v", resp.Route, q.Header.ID)
	}
}

func TestCloudResendsUntilAcked(t *testing.T) {
	// hubtest resends an unacknowledged resource message (docs/protocol.md
	// 2.4); the edge's ACK, sent through the hub, stops it. The node writes
	// text frames only (docs/protocol.md 2.4 "Framing").
	srv := newServer(t, hubtest.Config{Retransmit: 50 * time.Millisecond})
	n := connected(t, srv, testConfig(t, srv, bus.EraV123))
	pod := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/r", []byte(`{}`))
	srv.Push(pod)
	first, again := n.recv(fakeMeta), n.recv(fakeMeta)
	if first.Header.ID != pod.Header.ID || again.Header.ID != pod.Header.ID {
		t.Fatalf("meta got %v then %v, want %v twice", first.Header.ID, again.Header.ID, pod.Header.ID)
	}
	if got := srv.Sends(pod.Header.ID); got < 2 {
		t.Errorf("Sends() = %d, want at least 2", got)
	}
	if err := n.b.Send(bus.ModuleHub, first.Resp(bus.OKContent)); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitAcked(ctxT(t), pod.Header.ID); err != nil {
		t.Fatal(err)
	}
	if srv.Pending() != 0 {
		t.Errorf("Pending() = %d after the ACK, want 0", srv.Pending())
	}
	for _, r := range srv.Records() {
		if r.Binary {
			t.Fatalf("node wrote a binary frame: %+v", r.Msg.Route)
		}
	}
}
