package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/hub"
	"edgenode/hub/hubtest"
	"edgenode/meta"
	"edgenode/twin"
)

// cloudNode is a node with the store, meta, twin and the hub, joined to a
// hubtest cloud; edged is a stand-in module that receives what meta hands
// to edged and asks meta as edged does.
type cloudNode struct {
	t      *testing.T
	b      *bus.Bus
	store  *db.DB
	hub    *hub.Client
	cancel context.CancelFunc
	done   chan error
}

const e2eNode = "edge-1"

func startCloudNode(t *testing.T, srv *hubtest.Server, dataDir, token string) *cloudNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := db.Open(ctx, filepath.Join(dataDir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(bus.Config{}, nil)
	if err := b.AddModule(bus.ModulePod, bus.GroupPod); err != nil {
		t.Fatal(err)
	}
	mm, err := meta.New(meta.Config{NodeName: e2eNode, RemoteQueryTimeout: 10 * time.Second}, b, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	tw, err := twin.New(twin.Config{NodeName: e2eNode}, b, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{Server: srv.Addr, CertServer: srv.CertURL, Token: token, NodeName: e2eNode,
		DataDir: dataDir, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := &cloudNode{t: t, b: b, store: store, hub: h, cancel: cancel, done: make(chan error, 3)}
	for _, m := range []runner{mm, tw, h} {
		go func() { n.done <- m.Run(ctx) }()
	}
	t.Cleanup(n.stop)
	t.Cleanup(func() { checkAPI(t, srv) })
	return n
}

func (n *cloudNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	for range 3 {
		if err := <-n.done; err != nil && !errors.Is(err, context.Canceled) {
			n.t.Errorf("module Run() = %v", err)
		}
	}
	n.store.Close()
}

// query asks meta as edged does and returns the JSON strings of the
// answer (docs/protocol.md 3: a JSON array of JSON-encoded objects).
func (n *cloudNode) query(res string) ([]string, error) {
	q := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, res, nil)
	resp, err := n.b.SendSync(context.Background(), bus.ModuleMeta, q, 15*time.Second)
	if err != nil {
		return nil, err
	}
	if resp.Route.Operation == bus.OpError {
		return nil, errors.New(string(resp.Content))
	}
	// A local answer is a JSON array of JSON-encoded objects; a remote
	// one is the cloud's answer as it came (meta's package doc).
	var out []string
	if err := json.Unmarshal(resp.Content, &out); err != nil {
		return []string{string(resp.Content)}, nil
	}
	return out, nil
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

const (
	podJSON = `{"metadata":{"name":"nginx","namespace":"default","uid":"u-1","resourceVersion":"7"},"spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{}}`
	cmJSON  = `{"metadata":{"name":"cfg","namespace":"default","uid":"u-2"},"data":{"k":"v"}}`
)

func cmAnswer(req bus.Message) (bus.Message, bool) {
	if req.Route.Operation != bus.OpQuery || req.Route.Resource != "default/configmap/cfg" {
		return bus.Message{}, false
	}
	resp := req.Resp([]byte(`{"Object":` + cmJSON + `,"Err":null}`))
	resp.Route.Source, resp.Route.Group = bus.SourceEdgeController, bus.GroupResource
	return resp, true
}

// TestCloudEndToEnd runs meta, twin and the hub against a hubtest cloud:
// a pod insert is stored, handed to edged and acknowledged so the cloud
// stops resending it; a configmap query goes to the cloud through the
// hub; meta and twin see the connection; and a node restarted while the
// cloud is down serves its store and reconnects when the cloud returns.
func TestCloudEndToEnd(t *testing.T) {
	srv := hubtest.NewServer(hubtest.Config{Retransmit: 200 * time.Millisecond, Answer: cmAnswer})
	defer srv.Close()
	dir := t.TempDir()
	n := startCloudNode(t, srv, dir, srv.Token(e2eNode))

	// Twin saw cloud_connected: it asks for the membership detail
	// (docs/protocol.md 9).
	if _, err := srv.WaitFor(waitCtx(t), func(m bus.Message) bool {
		return m.Route.Source == bus.ModuleTwin && m.Route.Resource == bus.ResMembershipDetail
	}); err != nil {
		t.Fatalf("twin did not ask for the membership detail: %v", err)
	}

	// Pod insert: stored, handed to edged, acknowledged.
	pod := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/nginx", []byte(podJSON))
	pod.Header.ResourceVersion = "7"
	srv.Push(pod)
	if err := srv.WaitAcked(waitCtx(t), pod.Header.ID); err != nil {
		t.Fatalf("pod insert not acknowledged: %v", err)
	}
	if srv.Pending() != 0 {
		t.Errorf("cloud still resends %d messages", srv.Pending())
	}
	ack, err := srv.WaitFor(waitCtx(t), func(m bus.Message) bool { return m.Header.ParentID == pod.Header.ID })
	if err != nil {
		t.Fatal(err)
	}
	if ack.Route.Operation != bus.OpResponse || !bus.IsOK(ack.Content) || ack.Route.Source != bus.SourceEdgeController {
		t.Errorf("ACK = %+v %s, want response \"OK\" with the cloud's source (docs/protocol.md 2.5)", ack.Route, ack.Content)
	}
	fwd, err := n.b.Receive(waitCtx(t), bus.ModulePod)
	if err != nil || fwd.Route.Resource != "default/pod/nginx" {
		t.Fatalf("edged got %+v, %v, want the pod", fwd.Route, err)
	}
	row, err := n.store.MetaByKey(context.Background(), "default/pod/nginx")
	if err != nil || !strings.Contains(row.Value, `"uid":"u-1"`) {
		t.Fatalf("stored pod = %+v, %v", row, err)
	}

	// Configmap: meta asks the cloud through the hub (meta saw
	// cloud_connected), stores and answers.
	got, err := n.query("default/configmap/cfg")
	if err != nil || len(got) != 1 || !strings.Contains(got[0], `"k":"v"`) {
		t.Fatalf("configmap query = %q, %v, want the cloud's configmap", got, err)
	}
	q, err := srv.WaitFor(waitCtx(t), func(m bus.Message) bool {
		return m.Route.Operation == bus.OpQuery && m.Route.Resource == "default/configmap/cfg"
	})
	if err != nil {
		t.Fatal(err)
	}
	if q.Header.Sync {
		t.Error("query went on the v1.23 wire with sync=true")
	}
	if row, err := n.store.MetaByKey(context.Background(), "default/configmap/cfg"); err != nil || !strings.Contains(row.Value, `"k":"v"`) {
		t.Errorf("stored configmap = %+v, %v", row, err)
	}
	n.stop()

	// Restart while the cloud is unreachable: the store answers.
	srv.Pause()
	n2 := startCloudNode(t, srv, dir, "")
	for _, res := range []string{"default/pod/nginx", "default/configmap/cfg"} {
		got, err := n2.query(res)
		if err != nil || len(got) != 1 {
			t.Fatalf("query %s with the cloud down = %q, %v, want the stored object", res, got, err)
		}
	}
	if n2.hub.Connected() {
		t.Fatal("hub connected with the cloud down")
	}
	connectsBefore := srv.Connects()
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitConnects(waitCtx(t), connectsBefore+1); err != nil {
		t.Fatalf("no reconnect after the cloud came back: %v", err)
	}
	// A pod pushed now reaches the restarted node and is acknowledged.
	pod2 := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpUpdate, "default/pod/nginx", []byte(podJSON))
	srv.Push(pod2)
	if err := srv.WaitAcked(waitCtx(t), pod2.Header.ID); err != nil {
		t.Fatalf("pod update after reconnect not acknowledged: %v", err)
	}
	if got := srv.Issued(); got != 1 {
		t.Errorf("certificates issued = %d, want 1 (the restart reuses it)", got)
	}
}

// TestCloudLargeMessages pushes messages as CloudHub writes them (gorilla's
// 4 KiB write buffer: a 6 KB message is a 4 KiB frame and a continuation,
// the larger ones a long non-final frame and an empty final frame). Each
// must be stored whole and acknowledged exactly once; with a reader that
// takes one frame for a message, the 6 KB configmap was lost and resent
// every 5 s forever by a real cloud.
func TestCloudLargeMessages(t *testing.T) {
	srv := hubtest.NewServer(hubtest.Config{})
	defer srv.Close()
	n := startCloudNode(t, srv, t.TempDir(), srv.Token(e2eNode))
	if err := srv.WaitConnects(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	configMap := func(name string, size int) string {
		return `{"metadata":{"name":"` + name + `","namespace":"default","uid":"u-` + name + `"},"data":{"big":"` +
			strings.Repeat("x", size) + `"}}`
	}
	// A pod whose spec is ~30 KB: many env entries.
	var env []string
	for i := range 600 {
		env = append(env, `{"name":"E`+strconv.Itoa(i)+`","value":"`+strings.Repeat("v", 24)+`"}`)
	}
	bigPod := `{"metadata":{"name":"big","namespace":"default","uid":"u-big"},"spec":{"containers":[{"name":"c","image":"busybox","env":[` +
		strings.Join(env, ",") + `]}]}}`
	for _, tc := range []struct {
		res, obj string
	}{
		{"default/configmap/cm6k", configMap("cm6k", 6000)},
		{"default/configmap/cm64k", configMap("cm64k", 64<<10)},
		{"default/pod/big", bigPod},
	} {
		t.Run(tc.res, func(t *testing.T) {
			m := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, tc.res, []byte(tc.obj))
			srv.Push(m)
			if err := srv.WaitAcked(waitCtx(t), m.Header.ID); err != nil {
				t.Fatalf("%s (%d bytes) not acknowledged: %v", tc.res, len(tc.obj), err)
			}
			acks := 0
			for _, r := range srv.Received() {
				if r.Route.Operation == bus.OpResponse && r.Header.ParentID == m.Header.ID {
					acks++
				}
			}
			if acks != 1 {
				t.Errorf("%s: %d ACKs, want 1 (a lost message is resent and ACKed again)", tc.res, acks)
			}
			row, err := n.store.MetaByKey(context.Background(), tc.res)
			if err != nil {
				t.Fatalf("MetaByKey(%s) = %v", tc.res, err)
			}
			if !json.Valid([]byte(row.Value)) || len(row.Value) < len(tc.obj)-16 {
				t.Errorf("%s stored %d bytes, want the whole %d-byte object", tc.res, len(row.Value), len(tc.obj))
			}
		})
	}
	if got := n.hub.Stats().BadFrames; got != 0 {
		t.Errorf("hub bad frames = %d, want 0", got)
	}
}

// TestTwinReportReachesDeviceStatus: a twin value an app reports reaches
// the device's status in the cloud, against hubtest's device status,
// which loses the first report of a new twin as cloudcore v1.23.1 does:
// twin reports a twin's first value once more after the cloud confirms it.
// The same holds for a device removed and added again, which the cloud
// gives a new, empty status, also while the node is offline.
func TestTwinReportReachesDeviceStatus(t *testing.T) {
	srv := hubtest.NewServer(hubtest.Config{})
	defer srv.Close()
	n := startCloudNode(t, srv, t.TempDir(), srv.Token(e2eNode))
	if err := n.b.AddModule(bus.ModuleMQTT, bus.GroupBus); err != nil {
		t.Fatal(err)
	}
	// As the device controller sends a device bound to the node.
	add := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpUpdate, bus.ResMembership,
		[]byte(`{"event_id":"m","added_devices":[{"id":"default/d1","name":"d1","state":"unknown",`+
			`"twin":{"temp":{"expected":{"value":"20"},"optional":false,"metadata":{"type":"string"}}}}]}`))
	srv.Push(add)
	publish := func(suffix string) {
		t.Helper()
		for {
			m, err := n.b.Receive(waitCtx(t), bus.ModuleMQTT)
			if err != nil {
				t.Fatalf("no publish on .../%s: %v", suffix, err)
			}
			if strings.HasSuffix(m.Route.Resource, suffix) {
				return
			}
		}
	}
	publish("membership/updated")
	report := func(v string) {
		t.Helper()
		// As the eventbus hands an app's publish to twin.
		up := bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, "$hw/events/device/default/d1/twin/update",
			[]byte(`{"event_id":"u","twin":{"temp":{"actual":{"value":"`+v+`"}}}}`))
		if err := n.b.Send(bus.ModuleTwin, up); err != nil {
			t.Fatal(err)
		}
		publish("twin/update/result")
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, ok := srv.DeviceTwinStatus("default/d1", "temp")
			if ok && got.Reported == v {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the device's status has temp %+v (listed %v) 30 s after the update, want reported %s", got, ok, v)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	report("21")
	// kubectl delete device, then apply it again.
	srv.Push(bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpUpdate, bus.ResMembership,
		[]byte(`{"event_id":"r","removed_devices":[{"id":"default/d1","name":"d1"}]}`)))
	publish("membership/updated")
	if _, ok := srv.DeviceTwinStatus("default/d1", "temp"); ok {
		t.Fatal("the device's status still lists temp after the device was removed")
	}
	srv.Push(bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpUpdate, bus.ResMembership, add.Content))
	publish("membership/updated")
	report("22")
	// The same while the node is offline: nothing tells the node.
	links := srv.Connects()
	srv.Pause()
	if err := srv.WaitDisconnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	srv.RecreateDevice("default/d1")
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitConnects(waitCtx(t), links+1); err != nil {
		t.Fatal(err)
	}
	report("23")
}
