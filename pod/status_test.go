package pod

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
)

// TestStatusRateLimit: a pod's status goes out at once, then at most every
// StatusInterval, and never when unchanged (docs/protocol.md 2.5).
func TestStatusRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New(bus.Config{QueueLen: 16}, testLog())
		if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
			t.Fatal(err)
		}
		cfg := Config{DataDir: t.TempDir(), Era: bus.EraV03}
		cfg = cfg.Defaults()
		r := &Runner{cfg: cfg, b: b, log: testLog()}
		p := testPod("rl", sh("main", "true"))
		w := newWorker(r, p, nil, nil)
		count := func() int { return b.Depth(bus.ModuleMeta) }
		w.report(p, PodStatus{Phase: "Pending"})
		if n := count(); n != 1 {
			t.Fatalf("first report sent %d messages, want 1", n)
		}
		w.report(p, PodStatus{Phase: "Pending"})
		time.Sleep(time.Minute)
		w.report(p, PodStatus{Phase: "Pending"})
		if n := count(); n != 1 {
			t.Fatalf("unchanged status sent: %d messages, want 1", n)
		}
		w.report(p, PodStatus{Phase: "Running"})
		if n := count(); n != 2 {
			t.Fatalf("changed status after the interval: %d messages, want 2", n)
		}
		w.report(p, PodStatus{Phase: "Failed"})
		if n := count(); n != 2 {
			t.Fatalf("change within the interval sent at once: %d messages, want 2", n)
		}
		time.Sleep(DefaultStatusInterval)
		w.report(p, PodStatus{Phase: "Failed"})
		if n := count(); n != 3 {
			t.Fatalf("deferred change after the interval: %d messages, want 3", n)
		}
		var last bus.Message
		for range 3 {
			last, _ = b.Receive(context.Background(), bus.ModuleMeta)
		}
		if last.Route.Resource != "default/podstatus/rl" || last.Route.Operation != bus.OpUpdate {
			t.Errorf("v0.3 status message = %s %s, want update default/podstatus/rl", last.Route.Operation, last.Route.Resource)
		}
	})
}

// TestStatusAtOnceV123: the v1.23 edged is the kubelet, whose status
// manager sends every change at once: Pending then Running within the
// same second are two messages, so kubectl shows Running without waiting.
func TestStatusAtOnceV123(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New(bus.Config{QueueLen: 16}, testLog())
		if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
			t.Fatal(err)
		}
		cfg := Config{DataDir: t.TempDir(), Era: bus.EraV123}
		cfg = cfg.Defaults()
		r := &Runner{cfg: cfg, b: b, log: testLog()}
		p := testPod("now", sh("main", "true"))
		w := newWorker(r, p, nil, nil)
		w.report(p, PodStatus{Phase: "Pending"})
		w.report(p, PodStatus{Phase: "Running"})
		w.report(p, PodStatus{Phase: "Running"})
		if n := b.Depth(bus.ModuleMeta); n != 2 {
			t.Fatalf("Pending then Running at once: %d messages, want 2", n)
		}
	})
}
