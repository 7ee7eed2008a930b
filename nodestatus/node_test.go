package nodestatus

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/board"

	"edgenode/bus"
)

// fakeHost is a Pi Zero whose health can be changed by the test.
type fakeHost struct {
	mu        sync.Mutex
	unhealthy []string
	runtime   string
	offline   bool // the hub has no link to the cloud
}

func (h *fakeHost) host() Host {
	return Host{
		FS:    os.DirFS("../board/testdata/pizero"),
		Uname: func() (board.Uname, error) { return board.Uname{Machine: "armv6l", Release: "6.6.51+rpt-rpi-v6"}, nil },
		Interfaces: func() ([]board.IfaceAddrs, error) {
			return []board.IfaceAddrs{{Name: "wlan0", Up: true, Addrs: []net.IP{net.ParseIP("192.168.1.23")}}}, nil
		},
		StatDisk: func(string) (board.Disk, error) {
			return board.Disk{Total: 8 << 30, Free: 6 << 30, Inodes: 500000, InodesFree: 400000}, nil
		},
		Runtime: func(context.Context) (string, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.runtime, nil
		},
		Unhealthy: func() []string {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.unhealthy
		},
		Connected: func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return !h.offline
		},
	}
}

func (h *fakeHost) setUnhealthy(m ...string) {
	h.mu.Lock()
	h.unhealthy = m
	h.mu.Unlock()
}

// seen is one request the fake MetaManager got, with the fake time.
type seen struct {
	At       time.Duration
	Op       bus.Op
	Resource string
}

// fakeMeta serves module metamanager on b: answer decides each reply (nil
// for no reply). It records what it got until ctx ends.
type fakeMeta struct {
	mu    sync.Mutex
	start time.Time
	got   []seen
	msgs  []bus.Message
}

func (m *fakeMeta) run(ctx context.Context, t *testing.T, b *bus.Bus, answer func(bus.Message) *bus.Message) {
	for {
		msg, err := b.Receive(ctx, bus.ModuleMeta)
		if err != nil {
			return
		}
		m.mu.Lock()
		m.got = append(m.got, seen{time.Since(m.start).Round(time.Second), msg.Route.Operation, msg.Route.Resource})
		m.msgs = append(m.msgs, msg)
		m.mu.Unlock()
		if msg.Route.Source != bus.ModulePod || msg.Route.Group != bus.GroupMeta || !msg.Header.Sync {
			t.Errorf("request route = %+v sync %v, want source edged, group meta, sync", msg.Route, msg.Header.Sync)
		}
		if r := answer(msg); r != nil && !b.SendResp(*r) {
			t.Errorf("SendResp(%s %s): nobody waiting", msg.Route.Operation, msg.Route.Resource)
		}
	}
}

func (m *fakeMeta) seen() ([]seen, []bus.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]seen(nil), m.got...), append([]bus.Message(nil), m.msgs...)
}

// runNode runs a node status module and a fake meta in a synctest bubble for d
// of fake time and returns what meta saw.
func runNode(t *testing.T, cfg Config, h *fakeHost, d time.Duration, during func(elapsed time.Duration, b *bus.Bus), answer func(bus.Message) *bus.Message) ([]seen, []bus.Message, Stats) {
	var got []seen
	var msgs []bus.Message
	var stats Stats
	synctest.Test(t, func(t *testing.T) {
		b := bus.New(bus.Config{}, nil)
		if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
			t.Fatal(err)
		}
		n, err := New(cfg, b, nil, h.host())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		meta := &fakeMeta{start: time.Now()}
		var wg sync.WaitGroup
		wg.Go(func() { meta.run(ctx, t, b, answer) })
		wg.Go(func() {
			if err := n.Run(ctx); err != nil {
				t.Errorf("Run() = %v", err)
			}
		})
		for el := time.Duration(0); el < d; el += time.Second {
			synctest.Wait()
			if during != nil {
				during(el, b)
			}
			time.Sleep(time.Second)
		}
		synctest.Wait()
		cancel()
		wg.Wait()
		got, msgs = meta.seen()
		stats = n.Stats()
	})
	return got, msgs, stats
}

func ok(m bus.Message) *bus.Message {
	r := m.Resp(bus.OKContent)
	return &r
}

func TestNodeStatusV03(t *testing.T) {
	h := &fakeHost{runtime: "1.1.5"}
	cfg := Config{NodeName: "pizero", Era: bus.EraV03, DataDir: "/var/lib/edgenode"}
	got, msgs, stats := runNode(t, cfg, h, 35*time.Second, nil, ok)
	res := "default/nodestatus/pizero"
	want := []seen{{0, bus.OpUpdate, res}, {10 * time.Second, bus.OpUpdate, res}, {20 * time.Second, bus.OpUpdate, res}, {30 * time.Second, bus.OpUpdate, res}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("v0.3 requests mismatch (-want +got):\n%s", diff)
	}
	if stats.StatusSent != 4 || stats.StatusFailed != 0 {
		t.Errorf("Stats() = %+v, want 4 sent", stats)
	}
	var body struct {
		UID             string
		Status          NodeStatus
		ExtendResources json.RawMessage
	}
	if err := json.Unmarshal(msgs[0].Content, &body); err != nil {
		t.Fatalf("nodestatus content %s: %v", msgs[0].Content, err)
	}
	if body.UID != NodeStatusUID || string(body.ExtendResources) != "null" {
		t.Errorf("nodestatus content = %s, want UID %s and ExtendResources null", msgs[0].Content, NodeStatusUID)
	}
	if body.Status.NodeInfo.Architecture != "arm" || body.Status.Capacity["pods"] != "110" ||
		body.Status.NodeInfo.KubeletVersion != "v1.10.9-kubeedge-v0.3.0" || body.Status.DaemonEndpoints.KubeletEndpoint.Port != 10255 {
		t.Errorf("nodestatus status = %+v", body.Status)
	}
}

func TestNodeStatusV03NoMeta(t *testing.T) {
	// A meta that never answers: every round times out and is counted,
	// and the loop keeps its 10 s cadence (timeout 3 s < period).
	h := &fakeHost{runtime: "1.1.5"}
	cfg := Config{NodeName: "pizero", Era: bus.EraV03, SyncTimeout: 3 * time.Second}
	got, _, stats := runNode(t, cfg, h, 25*time.Second, nil, func(bus.Message) *bus.Message { return nil })
	if len(got) != 3 || stats.StatusFailed != 3 || stats.StatusSent != 0 {
		t.Errorf("no answers: requests %v, stats %+v, want 3 requests all failed", got, stats)
	}
}

// cloud answers like MetaManager in front of a v1.23 cloud: the
// first node insert is refused (not connected yet), the lease does not
// exist until inserted, updates bump the resourceVersion.
type cloud struct {
	mu         sync.Mutex
	inserts    int
	leaseRV    int
	leaseSpecs []LeaseSpec
	patches    []string
}

func (c *cloud) answer(m bus.Message) *bus.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	objResp := func(obj string) *bus.Message {
		r := m.Resp([]byte(`{"Object":` + obj + `,"Err":null}`))
		r.Route.Source = bus.SourceEdgeController
		return &r
	}
	switch {
	case m.Route.Resource == "null/node/pizero" && m.Route.Operation == bus.OpQuery:
		r := m.Resp([]byte(`[]`)) // meta's local answer: nothing stored
		return &r
	case m.Route.Resource == "null/node/pizero" && m.Route.Operation == bus.OpInsert:
		c.inserts++
		if c.inserts == 1 {
			r := m.ErrorResp(bus.ModuleMeta, "failed to process remote: not connected")
			return &r
		}
		return objResp(`{"metadata":{"name":"pizero","uid":"5b8f-node-uid"}}`)
	case m.Route.Resource == "null/nodepatch/pizero":
		s, _ := bus.ContentString(m.Content)
		c.patches = append(c.patches, s)
		return objResp(`{"metadata":{"name":"pizero"}}`)
	case m.Route.Resource == "kube-node-lease/lease/pizero":
		var l Lease
		_ = json.Unmarshal(m.Content, &l)
		switch m.Route.Operation {
		case bus.OpQuery:
			if c.leaseRV == 0 {
				r := m.Resp([]byte(`{"Object":null,"Err":{"ErrStatus":{"kind":"Status","status":"Failure","reason":"NotFound","code":404}}}`))
				return &r
			}
		case bus.OpInsert:
			c.leaseRV = 1
		case bus.OpUpdate:
			if l.Metadata.ResourceVersion != itoa(c.leaseRV) {
				r := m.Resp([]byte(`{"Object":null,"Err":{"ErrStatus":{"reason":"Conflict","code":409}}}`))
				return &r
			}
			c.leaseRV++
		}
		c.leaseSpecs = append(c.leaseSpecs, l.Spec)
		l.Metadata.ResourceVersion = itoa(c.leaseRV)
		b, _ := json.Marshal(l)
		return objResp(string(b))
	}
	r := m.ErrorResp(bus.ModuleMeta, "unexpected")
	return &r
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestNodeStatusV123(t *testing.T) {
	h := &fakeHost{runtime: "1.1.5"}
	c := &cloud{}
	cfg := Config{NodeName: "pizero", DataDir: "/var/lib/edgenode"}
	const minute = 60 * time.Second
	got, msgs, stats := runNode(t, cfg, h, 7*minute+5*time.Second, func(el time.Duration, _ *bus.Bus) {
		switch el {
		case 25 * time.Second:
			h.setUnhealthy("eventbus")
		case 35 * time.Second:
			h.setUnhealthy()
		}
	}, c.answer)

	node, lease, patch := "null/node/pizero", "kube-node-lease/lease/pizero", "null/nodepatch/pizero"
	var want []seen
	add := func(at time.Duration, op bus.Op, res string) { want = append(want, seen{at, op, res}) }
	// No node stored by meta: insert (the first is refused: not
	// connected). A node this run created has no lease: insert it with
	// no query first.
	add(0, bus.OpQuery, node)
	add(0, bus.OpInsert, node)
	add(10*time.Second, bus.OpQuery, node)
	add(10*time.Second, bus.OpInsert, node)
	add(10*time.Second, bus.OpInsert, lease)
	for at := 20 * time.Second; at <= 7*minute; at += 10 * time.Second {
		// Patches only when the status changed (Ready false at 30 s,
		// true again at 40 s) or 5 min after the last one.
		if at == 30*time.Second || at == 40*time.Second || at == 40*time.Second+5*minute {
			add(at, bus.OpPatch, patch)
		}
		add(at, bus.OpUpdate, lease)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("v1.23 requests mismatch (-want +got):\n%s", diff)
	}
	if !stats.Registered || stats.StatusFailed != 1 || stats.StatusSent != 4 || stats.LeaseFailed != 0 {
		t.Errorf("Stats() = %+v, want registered, 1 failed insert, insert + 3 patches sent", stats)
	}

	// The node insert carries the v1.Node.
	var n KubeNode
	if err := json.Unmarshal(msgs[3].Content, &n); err != nil {
		t.Fatal(err)
	}
	if n.Kind != "Node" || n.Metadata.Name != "pizero" || n.Metadata.Labels["kubernetes.io/arch"] != "arm" ||
		n.Status.NodeInfo.ContainerRuntimeVersion != "runc://1.1.5" {
		t.Errorf("node insert = %s", msgs[3].Content)
	}
	// Patches are JSON strings holding {"status":...}; the first says
	// NotReady.
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.patches) != 3 {
		t.Fatalf("patches = %d, want 3", len(c.patches))
	}
	var p struct{ Status NodeStatus }
	if err := json.Unmarshal([]byte(c.patches[0]), &p); err != nil {
		t.Fatalf("patch %q: %v", c.patches[0], err)
	}
	if r := p.Status.Conditions[3]; r.Type != CondReady || r.Status != "False" || !strings.Contains(r.Message, "eventbus") {
		t.Errorf("first patch Ready = %+v, want False naming eventbus", r)
	}
	// The insert names the kubelet port; patches never do: cloudstream
	// sets it when the stream tunnel connects.
	if n.Status.DaemonEndpoints == nil || n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10350 {
		t.Errorf("node insert daemonEndpoints = %+v, want port 10350", n.Status.DaemonEndpoints)
	}
	for _, raw := range c.patches {
		if strings.Contains(raw, "daemonEndpoints") {
			t.Errorf("nodepatch %s names daemonEndpoints", raw)
		}
	}
	// Lease: holder, duration, renew times 10 s apart, owner the node.
	if len(c.leaseSpecs) < 3 {
		t.Fatalf("lease writes = %d", len(c.leaseSpecs))
	}
	s0, s1 := c.leaseSpecs[0], c.leaseSpecs[1]
	if s0.HolderIdentity != "pizero" || s0.LeaseDurationSeconds != 40 {
		t.Errorf("lease spec = %+v", s0)
	}
	t0, err0 := time.Parse(microTimeFormat, s0.RenewTime)
	t1, err1 := time.Parse(microTimeFormat, s1.RenewTime)
	if err0 != nil || err1 != nil || t1.Sub(t0) != 10*time.Second {
		t.Errorf("renew times %s, %s: want 10 s apart", s0.RenewTime, s1.RenewTime)
	}
	var l Lease
	_ = json.Unmarshal(msgs[4].Content, &l)
	if len(l.Metadata.OwnerReferences) != 1 || l.Metadata.OwnerReferences[0].UID != "5b8f-node-uid" {
		t.Errorf("lease insert = %s, want owner the node's uid", msgs[4].Content)
	}
}

func TestNodeAlreadyRegistered(t *testing.T) {
	// A node that exists, but meta has no copy (the store was lost):
	// insert answers AlreadyExists, and a patch brings the status up to
	// date at once.
	h := &fakeHost{runtime: "1.1.5"}
	answer := func(m bus.Message) *bus.Message {
		switch m.Route.Operation {
		case bus.OpInsert:
			if m.Route.Resource == "null/node/pizero" {
				r := m.Resp([]byte(`{"Object":null,"Err":{"ErrStatus":{"reason":"AlreadyExists","code":409}}}`))
				return &r
			}
		case bus.OpQuery:
			if m.Route.Resource == "null/node/pizero" {
				r := m.Resp([]byte(`[]`))
				return &r
			}
			r := m.Resp([]byte(`{"Object":{"metadata":{"name":"pizero","namespace":"kube-node-lease","resourceVersion":"77"}},"Err":null}`))
			return &r
		}
		return ok(m)
	}
	got, msgs, _ := runNode(t, Config{NodeName: "pizero"}, h, 15*time.Second, nil, answer)
	want := []seen{
		{0, bus.OpQuery, "null/node/pizero"},
		{0, bus.OpInsert, "null/node/pizero"},
		{0, bus.OpPatch, "null/nodepatch/pizero"},
		{0, bus.OpQuery, "kube-node-lease/lease/pizero"},
		{0, bus.OpUpdate, "kube-node-lease/lease/pizero"},
		{10 * time.Second, bus.OpUpdate, "kube-node-lease/lease/pizero"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	var l Lease
	_ = json.Unmarshal(msgs[4].Content, &l)
	if l.Metadata.ResourceVersion != "77" {
		t.Errorf("lease update = %s, want the queried resourceVersion 77", msgs[4].Content)
	}
}

// storedNodeMeta answers as meta does for a node registered in an earlier
// run: the node row is in the store, the lease is in the cloud. A patch
// answers NotFound when gone is set (the node was deleted in the cloud).
func storedNodeMeta(gone *bool) func(m bus.Message) *bus.Message {
	return func(m bus.Message) *bus.Message {
		switch {
		case m.Route.Operation == bus.OpQuery && m.Route.Resource == "null/node/pizero":
			r := m.Resp([]byte(`["{\"metadata\":{\"name\":\"pizero\",\"uid\":\"u-77\"}}"]`))
			return &r
		case m.Route.Operation == bus.OpQuery:
			r := m.Resp([]byte(`{"Object":{"metadata":{"name":"pizero","namespace":"kube-node-lease","resourceVersion":"77"}},"Err":null}`))
			return &r
		case m.Route.Operation == bus.OpPatch && *gone:
			*gone = false
			r := m.Resp([]byte(`{"Object":null,"Err":{"ErrStatus":{"reason":"NotFound","code":404}}}`))
			return &r
		}
		return ok(m)
	}
}

func TestNodeRegisteredBeforeIsNotInserted(t *testing.T) {
	// cloudcore logs an insert of an existing node as an error: a node
	// whose object meta kept only patches its status.
	h := &fakeHost{runtime: "1.1.5"}
	gone := false
	got, _, stats := runNode(t, Config{NodeName: "pizero"}, h, 5*time.Second, nil, storedNodeMeta(&gone))
	want := []seen{
		{0, bus.OpQuery, "null/node/pizero"},
		{0, bus.OpPatch, "null/nodepatch/pizero"},
		{0, bus.OpQuery, "kube-node-lease/lease/pizero"},
		{0, bus.OpUpdate, "kube-node-lease/lease/pizero"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	if !stats.Registered {
		t.Errorf("Stats().Registered = false, want true")
	}

	// The node was deleted in the cloud: the patch answers NotFound and
	// the next round inserts the node, not trusting meta's stale copy.
	gone = true
	got, _, _ = runNode(t, Config{NodeName: "pizero"}, h, 15*time.Second, nil, storedNodeMeta(&gone))
	want = []seen{
		{0, bus.OpQuery, "null/node/pizero"},
		{0, bus.OpPatch, "null/nodepatch/pizero"},
		{10 * time.Second, bus.OpQuery, "null/node/pizero"},
		{10 * time.Second, bus.OpInsert, "null/node/pizero"},
		{10 * time.Second, bus.OpInsert, "kube-node-lease/lease/pizero"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a NotFound patch, requests mismatch (-want +got):\n%s", diff)
	}
}

// TestRoundsFollowTheLink: the round at start looks for a stored node
// whatever the link; then rounds run while the hub has the cloud. The
// connect event starts one at once; offline, the link is looked at once a
// minute, so one that came back without an event is found too.
func TestRoundsFollowTheLink(t *testing.T) {
	const node, lease = "null/node/pizero", "kube-node-lease/lease/pizero"
	start := []seen{
		{0, bus.OpQuery, node},
		{0, bus.OpInsert, node}, // refused: not connected
	}
	register := func(at time.Duration) []seen {
		return []seen{{at, bus.OpQuery, node}, {at, bus.OpInsert, node}, {at, bus.OpInsert, lease}}
	}
	for _, tt := range []struct {
		name    string
		offline bool          // the hub has no link at start
		back    time.Duration // when the link comes back
		event   bool          // with the hub's connect event
		run     time.Duration
		want    []seen
	}{
		{"connect event", false, 3 * time.Second, true, 5 * time.Second, append(start, register(3*time.Second)...)},
		{"no rounds while offline", true, 32 * time.Second, true, 45 * time.Second,
			append(append(start, register(32*time.Second)...), seen{42 * time.Second, bus.OpUpdate, lease})},
		{"back without an event", true, 15 * time.Second, false, 75 * time.Second,
			// 10 s: offline, the next look a minute later.
			append(start, register(70*time.Second)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{runtime: "1.1.5", offline: tt.offline}
			c := &cloud{}
			got, _, _ := runNode(t, Config{NodeName: "pizero"}, h, tt.run, func(el time.Duration, b *bus.Bus) {
				if el != tt.back {
					return
				}
				h.mu.Lock()
				h.offline = false
				h.mu.Unlock()
				if tt.event {
					m := bus.NewMessage(bus.ModuleEdgeHub, "", bus.OpConnect, bus.ResNodeConnection, bus.JSONString(bus.CloudConnected))
					if err := b.Send(bus.ModuleNodeStatus, m); err != nil {
						t.Errorf("Send(nodestatus) = %v", err)
					}
				}
			}, c.answer)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAddressCheckedCheaply: between full listings of the interfaces (with
// the other facts), the picked interface is only checked; a changed
// address or a down interface brings the full listing back. InternalIP
// (what the stream tunnel sends) follows every change.
func TestAddressCheckedCheaply(t *testing.T) {
	b := bus.New(bus.Config{}, nil)
	lists := 0
	addr, up := net.ParseIP("192.168.1.23").To4(), true
	n, err := New(Config{NodeName: "pizero"}, b, nil, Host{
		Interfaces: func() ([]board.IfaceAddrs, error) {
			lists++
			return []board.IfaceAddrs{{Name: "lo", Up: true, Loopback: true, Addrs: []net.IP{net.IPv4(127, 0, 0, 1)}},
				{Name: "wlan0", Up: up, Addrs: []net.IP{addr}}}, nil
		},
		IPv4: func(name string) (net.IP, bool, error) {
			if name != "wlan0" {
				t.Errorf("IPv4(%q), want wlan0", name)
			}
			return addr, up, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.InternalIP(); got != "" {
		t.Errorf("InternalIP() before the first round = %q, want none", got)
	}
	for i, tt := range []struct {
		full   bool
		change func()
		want   string
		lists  int
	}{
		{true, nil, "192.168.1.23", 1},
		{false, nil, "192.168.1.23", 1},
		{false, func() { addr = net.ParseIP("192.168.1.99").To4() }, "192.168.1.99", 2},
		{false, nil, "192.168.1.99", 2},
		{false, func() { up = false }, "", 3},
		{true, func() { up = true }, "192.168.1.99", 4},
	} {
		if tt.change != nil {
			tt.change()
		}
		got := n.address(tt.full)
		if (got == nil && tt.want != "") || (got != nil && got.String() != tt.want) || lists != tt.lists {
			t.Errorf("round %d: address = %v after %d listings, want %q after %d", i, got, lists, tt.want, tt.lists)
		}
		if got := n.InternalIP(); got != tt.want {
			t.Errorf("round %d: InternalIP() = %q, want %q", i, got, tt.want)
		}
	}
}

// TestUnchangedRoundAllocations: a round of a registered node whose
// status has not changed builds no status; what it allocates is reading
// two /proc files and the lease's request and answer (33 allocations on
// amd64). Building and comparing a status, as every round did before,
// took it to 67.
func TestUnchangedRoundAllocations(t *testing.T) {
	n, ctx := registeredNode(t)
	sent := n.Stats().StatusSent
	if a := testing.AllocsPerRun(50, func() { n.round(ctx) }); a > 45 {
		t.Errorf("allocations of an unchanged round = %v, want at most 45", a)
	}
	if s := n.Stats(); s.StatusSent != sent || s.LeaseFailed != 0 {
		t.Errorf("Stats() = %+v, want no status sent and no lease failed", s)
	}
}

// TestKnownAfterFirstStatus: Known closes once the cloud has this run's
// first status, not when the node is found registered: cloudstream's
// write of its port into the node fails with a conflict, and waits 20 s,
// if the status patch lands between its read and its write. A node
// registered before closes it when its patch is taken; one whose patch
// is refused (the hub not connected yet), when a later round's patch is;
// a new node, when its insert is taken; one whose insert is refused, not
// at all.
func TestKnownAfterFirstStatus(t *testing.T) {
	tests := []struct {
		name    string
		refused int // patches refused before one is taken; -1: every insert and patch
		stored  bool
		firstAt time.Duration // when Known closes
	}{
		{"registered before", 0, true, 0},
		{"registered before, first patch refused", 1, true, 10 * time.Second},
		{"inserted", 0, false, 0},
		{"insert refused", -1, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := bus.New(bus.Config{}, nil)
				if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
					t.Fatal(err)
				}
				h := &fakeHost{runtime: "1.1.5"}
				n, err := New(Config{NodeName: "pizero"}, b, nil, h.host())
				if err != nil {
					t.Fatal(err)
				}
				gone, refused, answered := false, 0, false
				answer := storedNodeMeta(&gone)
				if !tt.stored {
					answer = (&cloud{inserts: 1}).answer
				}
				start := time.Now()
				ctx, cancel := context.WithCancel(t.Context())
				go func() {
					for {
						m, err := b.Receive(ctx, bus.ModuleMeta)
						if err != nil {
							return
						}
						status := m.Route.Operation == bus.OpPatch || m.Route.Operation == bus.OpInsert && m.Route.Resource == "null/node/pizero"
						if status && !answered {
							select {
							case <-n.Known():
								t.Errorf("Known closed before the %s was answered", m.Route.Operation)
							default:
							}
						}
						r := answer(m)
						if tt.refused < 0 && status {
							e := m.ErrorResp(bus.ModuleMeta, "failed to process remote: not connected")
							r = &e
						}
						if m.Route.Operation == bus.OpPatch && refused < tt.refused {
							refused++
							e := m.ErrorResp(bus.ModuleMeta, "failed to process remote: not connected")
							r = &e
						}
						answered = answered || status
						b.SendResp(*r)
					}
				}()
				done := make(chan struct{})
				go func() {
					defer close(done)
					n.Run(ctx)
				}()
				known := time.Duration(-1)
				go func() {
					select {
					case <-n.Known():
						known = time.Since(start)
					case <-ctx.Done():
					}
				}()
				time.Sleep(25 * time.Second) // two rounds and a half
				cancel()
				<-done
				synctest.Wait()
				if known != tt.firstAt {
					t.Errorf("Known closed after %v (-1: not at all), want %v", known, tt.firstAt)
				}
			})
		})
	}
}
