package nodestatus

import (
	"context"

	"net"
	"os"
	"testing"
	"time"

	"edgenode/board"
	"edgenode/bus"
)

// BenchmarkBuildStatus is the cost of building the status from the facts.
func BenchmarkBuildStatus(b *testing.B) {
	f, err := board.Collect(os.DirFS("../board/testdata/pizero"), board.Uname{Machine: "armv6l"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{NodeName: "n"}.Defaults()
	in := Inputs{Facts: f, IP: net.ParseIP("10.0.0.2"), Runtime: "1.1.5"}
	prev := BuildStatus(cfg, in, nil, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		st := BuildStatus(cfg, in, &prev, time.Now())
		if !sameStatus(&prev, &st) {
			b.Fatal("status changed")
		}
	}
}

// BenchmarkRound is one v1.23 status round of a registered node whose
// status has not changed: the facts read again, no nodepatch, the lease
// renewed. MetaManager is a fake that answers at once with a stored
// lease, so the allocations are the round's own, the lease's request and
// answer included.
func BenchmarkRound(b *testing.B) {
	n, ctx := registeredNode(b)
	sent := n.Stats().StatusSent
	b.ReportAllocs()
	for b.Loop() {
		n.round(ctx)
	}
	if s := n.Stats(); s.StatusSent != sent || s.LeaseFailed != 0 {
		b.Fatalf("Stats() = %+v, want no status sent and no lease failed", s)
	}
}

// registeredNode returns a v1.23 node that has registered and renewed its
// lease twice, on a Pi Zero fake host, with a fake MetaManager that
// answers every request at once: a node query with nothing stored, the
// node insert with the node, anything else with a lease.
func registeredNode(tb testing.TB) (*Node, context.Context) {
	bb := bus.New(bus.Config{}, nil)
	if err := bb.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
		tb.Fatal(err)
	}
	h := &fakeHost{runtime: "1.1.5"}
	host := h.host()
	ip := net.ParseIP("192.168.1.23") // wlan0's, as the fake lists it
	host.IPv4 = func(string) (net.IP, bool, error) { return ip, true, nil }
	n, err := New(Config{NodeName: "pizero", DataDir: "/var/lib/edgenode"}, bb, nil, host)
	if err != nil {
		tb.Fatal(err)
	}
	lease := []byte(`{"Object":{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"pizero","namespace":"kube-node-lease","resourceVersion":"7"},"spec":{"holderIdentity":"pizero","leaseDurationSeconds":40,"renewTime":"2026-12-07T05:00:00.000000Z"}},"Err":null}`)
	node := []byte(`{"Object":{"metadata":{"name":"pizero","uid":"u1"}},"Err":null}`)
	ctx, cancel := context.WithCancel(tb.Context())
	tb.Cleanup(cancel)
	go func() {
		for {
			m, err := bb.Receive(ctx, bus.ModuleMeta)
			if err != nil {
				return
			}
			content := lease
			switch m.Route.Operation {
			case bus.OpQuery:
				content = []byte(`[]`) // no node stored
			case bus.OpInsert:
				if m.Route.Resource == "null/node/pizero" {
					content = node
				}
			}
			bb.SendResp(m.Resp(content))
		}
	}()
	n.round(ctx) // registers, inserts the lease
	n.round(ctx)
	if s := n.Stats(); !s.Registered || s.LeaseRenewed != 2 || s.StatusFailed+s.LeaseFailed != 0 {
		tb.Fatalf("Stats() = %+v after two rounds, want registered and two leases", s)
	}
	return n, ctx
}
