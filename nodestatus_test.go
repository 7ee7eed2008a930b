package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"edgenode/board"
	"edgenode/bus"
	"edgenode/db"
	"edgenode/hub"
	"edgenode/hub/hubtest"
	"edgenode/meta"
	"edgenode/nodestatus"
)

// TestNodeStatusThroughHub runs the board module behind the real MetaManager
// and hub client against the in-process cloud of each era and checks what
// reaches the cloud: v0.3 nodestatus updates on the cadence; v1.23 node insert,
// nodepatch and lease insert then updates (docs/protocol.md 2.5, 9), each
// accepted by hubtest's strict API side.
func TestNodeStatusThroughHub(t *testing.T) {
	const node = "edge-board"
	for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
		t.Run(era.String(), func(t *testing.T) {
			srv := hubtest.NewServer(hubtest.Config{Era: era})
			defer srv.Close()

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Stand-ins for edged and twin, which meta forwards to.
			cn := newLinkNode(t, ctx, srv, era, node, standIn{bus.ModulePod, bus.GroupPod}, standIn{bus.ModuleTwin, bus.GroupTwin})
			b, dir, hc, mm := cn.b, cn.dir, cn.hub, cn.meta
			bn, err := nodestatus.New(nodestatus.Config{NodeName: node, Era: era, DataDir: dir,
				UpdateFrequency: time.Second, ReportFrequency: 2 * time.Second, SyncTimeout: 5 * time.Second},
				b, nil, nodestatus.Host{
					Interfaces: func() ([]board.IfaceAddrs, error) {
						return []board.IfaceAddrs{{Name: "eth0", Up: true, Addrs: []net.IP{net.ParseIP("10.1.2.3")}}}, nil
					},
					Runtime: func(context.Context) (string, error) { return "1.1.12", nil },
				})
			if err != nil {
				t.Fatal(err)
			}
			var g errgroup.Group
			runCtx, stop := context.WithCancel(ctx)
			for _, m := range []runner{hc, mm, bn} {
				g.Go(func() error { return m.Run(runCtx) })
			}
			defer func() {
				stop()
				if err := g.Wait(); err != nil {
					t.Errorf("Run() = %v", err)
				}
			}()
			// Drain what meta forwards to the stand-ins.
			for _, m := range []bus.Module{bus.ModulePod, bus.ModuleTwin} {
				g.Go(func() error {
					for {
						if _, err := b.Receive(runCtx, m); err != nil {
							return nil
						}
					}
				})
			}
			is := func(op bus.Op, res string) func(bus.Message) bool {
				return func(m bus.Message) bool { return m.Route.Operation == op && m.Route.Resource == res }
			}

			if era == bus.EraV03 {
				res := "default/nodestatus/" + node
				if err := srv.WaitCount(ctx, 2, is(bus.OpUpdate, res)); err != nil {
					t.Fatalf("the cloud got fewer than 2 nodestatus updates: %v", err)
				}
				m, _ := srv.WaitFor(ctx, is(bus.OpUpdate, res))
				var body struct {
					UID             string
					Status          nodestatus.NodeStatus
					ExtendResources json.RawMessage
				}
				if err := json.Unmarshal(m.Content, &body); err != nil {
					t.Fatalf("nodestatus content %s: %v", m.Content, err)
				}
				st := body.Status
				if body.UID != nodestatus.NodeStatusUID || st.NodeInfo.ContainerRuntimeVersion != "runc://1.1.12" ||
					len(st.Addresses) != 2 || st.Addresses[0].Address != "10.1.2.3" || st.Capacity["pods"] != "110" ||
					len(st.Conditions) != 4 || m.Route.Source != bus.ModulePod || m.Route.Group != bus.GroupMeta {
					t.Errorf("nodestatus at the cloud = %+v %s", m.Route, m.Content)
				}
				return
			}

			ins, err := srv.WaitFor(ctx, is(bus.OpInsert, "null/node/"+node))
			if err != nil {
				t.Fatalf("no node insert at the cloud: %v", err)
			}
			var n nodestatus.KubeNode
			if err := json.Unmarshal(ins.Content, &n); err != nil || n.Kind != "Node" || n.Metadata.Name != node ||
				n.Status.NodeInfo.KubeletVersion == "" || n.Status.Allocatable["cpu"] == "" {
				t.Errorf("node insert = %s, %v", ins.Content, err)
			}
			lease := "kube-node-lease/lease/" + node
			if _, err := srv.WaitFor(ctx, is(bus.OpInsert, lease)); err != nil {
				t.Fatalf("lease: %v", err)
			}
			if err := srv.WaitCount(ctx, 2, is(bus.OpUpdate, lease)); err != nil {
				t.Fatalf("fewer than 2 lease updates: %v", err)
			}
			// Nothing changes on this node, so the patch comes after
			// ReportFrequency; it is a JSON string holding the status.
			p, err := srv.WaitFor(ctx, is(bus.OpPatch, "null/nodepatch/"+node))
			if err != nil {
				t.Fatalf("no nodepatch: %v", err)
			}
			s, ok := bus.ContentString(p.Content)
			var patch struct{ Status nodestatus.NodeStatus }
			if !ok || json.Unmarshal([]byte(s), &patch) != nil || len(patch.Status.Conditions) != 4 {
				t.Errorf("nodepatch content = %s", p.Content)
			}
			if st := bn.Stats(); !st.Registered || st.LeaseRenewed < 2 {
				t.Errorf("nodestatus Stats() = %+v, want registered and at least the insert and one update (the cloud saw two updates)", st)
			}

			// The link drops and comes back: the lease is renewed on the
			// new link without a second node insert.
			count := func(match func(bus.Message) bool) int {
				n := 0
				for _, m := range srv.Received() {
					if match(m) {
						n++
					}
				}
				return n
			}
			updates, inserts := count(is(bus.OpUpdate, lease)), count(is(bus.OpInsert, "null/node/"+node))
			srv.Drop()
			if err := srv.WaitConnects(ctx, 2); err != nil {
				t.Fatalf("no reconnect: %v", err)
			}
			if err := srv.WaitCount(ctx, updates+2, is(bus.OpUpdate, lease)); err != nil {
				t.Fatalf("lease not renewed after the reconnect: %v", err)
			}
			if n := count(is(bus.OpInsert, "null/node/"+node)); n != inserts {
				t.Errorf("node inserts after a reconnect = %d, want still %d", n, inserts)
			}
			// A node created by this run has no lease: it is inserted
			// without a query, whose NotFound cloudcore logs as an error.
			// (Later rounds may query it again: after a reconnect, or a
			// failed update.)
			for _, m := range srv.Received() {
				if is(bus.OpInsert, lease)(m) {
					break
				}
				if is(bus.OpQuery, lease)(m) {
					t.Errorf("the lease was queried before its first insert")
					break
				}
			}
			checkAPI(t, srv)
			if an, ok := srv.APINode(node); !ok || !nodeReady(an) {
				t.Errorf("node at the API = %+v, want it Ready", an.Status.Conditions)
			}
		})
	}
}

// checkAPI fails the test for every object the strict API side of srv
// refused: what kube-apiserver would reject must fail our tests too.
func checkAPI(t *testing.T, srv *hubtest.Server) {
	t.Helper()
	for _, err := range srv.Invalid() {
		t.Errorf("the API refused: %v", err)
	}
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// standIn is a bus module a test reads in place of a real one.
type standIn struct {
	name  bus.Module
	group bus.Group
}

// linkNode is the part of a node that talks to a cloud: a store in a temp
// dir, a bus with stand-ins, and hub and meta built but not running.
type linkNode struct {
	dir   string
	store *db.DB
	b     *bus.Bus
	hub   *hub.Client
	meta  *meta.Meta
}

// newLinkNode builds a linkNode joined to srv with a token; the store is
// closed when the test ends.
func newLinkNode(t *testing.T, ctx context.Context, srv *hubtest.Server, era bus.Era, node string, mods ...standIn) *linkNode {
	t.Helper()
	return newLinkNodeIn(t, ctx, srv, era, node, t.TempDir(), mods...)
}

// newLinkNodeIn is newLinkNode on the data dir dir, e.g. one an earlier
// node left (its certificate and store).
func newLinkNodeIn(t *testing.T, ctx context.Context, srv *hubtest.Server, era bus.Era, node, dir string, mods ...standIn) *linkNode {
	t.Helper()
	cn := &linkNode{dir: dir, b: bus.New(bus.Config{}, nil)}
	t.Cleanup(func() { checkAPI(t, srv) })
	var err error
	if cn.store, err = db.Open(ctx, filepath.Join(cn.dir, db.FileName), db.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cn.store.Close() })
	for _, m := range mods {
		if err := cn.b.AddModule(m.name, m.group); err != nil {
			t.Fatal(err)
		}
	}
	cn.hub, err = hub.New(hub.Config{Server: srv.Addr, CertServer: srv.CertURL, Token: srv.Token(node),
		InsecureSkipVerify: era == bus.EraV03, NodeName: node, DataDir: cn.dir, Era: era,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, cn.b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cn.meta, err = meta.New(meta.Config{Era: era, NodeName: node}, cn.b, cn.store, nil); err != nil {
		t.Fatal(err)
	}
	return cn
}

// TestRestartDoesNotRecreateNode restarts a v1.23 node on its data dir: the
// second run finds its node in meta's store and only patches its status
// and renews the lease, so the cloud sees one node insert in all (a real
// cloudcore logs every insert of an existing node as an error).
func TestRestartDoesNotRecreateNode(t *testing.T) {
	const node = "edge-restart"
	srv := hubtest.NewServer(hubtest.Config{})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	is := func(op bus.Op, res string) func(bus.Message) bool {
		return func(m bus.Message) bool { return m.Route.Operation == op && m.Route.Resource == res }
	}
	lease := "kube-node-lease/lease/" + node
	for run := 1; run <= 2; run++ {
		cn := newLinkNodeIn(t, ctx, srv, bus.EraV123, node, dir, standIn{bus.ModulePod, bus.GroupPod}, standIn{bus.ModuleTwin, bus.GroupTwin})
		bn, err := nodestatus.New(nodestatus.Config{NodeName: node, DataDir: dir, SyncTimeout: 5 * time.Second}, cn.b, nil, nodestatus.Host{
			Runtime: func(context.Context) (string, error) { return "1.1.12", nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		var g errgroup.Group
		for _, m := range []runner{cn.hub, cn.meta, bn} {
			g.Go(func() error { return m.Run(runCtx) })
		}
		for _, m := range []bus.Module{bus.ModulePod, bus.ModuleTwin} {
			g.Go(func() error {
				for {
					if _, err := cn.b.Receive(runCtx, m); err != nil {
						return nil
					}
				}
			})
		}
		// The first run inserts the lease; the second finds it and
		// updates it on its new link, at once (the connect starts a
		// round; the period is 10 s).
		want := is(bus.OpInsert, lease)
		if run == 2 {
			want = is(bus.OpUpdate, lease)
		}
		_, err = srv.WaitFor(ctx, want)
		stop()
		if gerr := g.Wait(); gerr != nil {
			t.Errorf("run %d: Run() = %v", run, gerr)
		}
		cn.store.Close()
		if err != nil {
			t.Fatalf("run %d: lease not written: %v", run, err)
		}
	}
	if created, existed := srv.NodeCreates(); created != 1 || existed != 0 {
		t.Errorf("node inserts: %d created, %d of an existing node; want 1 and 0", created, existed)
	}
	if _, err := srv.WaitFor(ctx, is(bus.OpPatch, "null/nodepatch/"+node)); err != nil {
		t.Errorf("the restarted node sent no nodepatch: %v", err)
	}
	checkAPI(t, srv)
}

// TestNodeStatusConfigOldKey: a config file written when the section was
// called board still starts the node, and naming both is an error.
func TestNodeStatusConfigOldKey(t *testing.T) {
	cfg, err := loadYAML(t, "board:\n  maxPods: 12\n  interface: wlan0\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeStatus.MaxPods != 12 || cfg.NodeStatus.Interface != "wlan0" {
		t.Errorf("nodeStatus from board: = maxPods %d interface %q, want 12 wlan0", cfg.NodeStatus.MaxPods, cfg.NodeStatus.Interface)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "nodeStatus:") || strings.Contains(string(out), "\nboard:") {
		t.Errorf("edgenode config prints the old key:\n%s", out)
	}
	if _, err := loadYAML(t, "board:\n  maxPods: 12\nnodeStatus:\n  maxPods: 13\n"); err == nil || !strings.Contains(err.Error(), "old name of nodeStatus") {
		t.Errorf("both keys: err = %v, want one naming the old key", err)
	}
}
