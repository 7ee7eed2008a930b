package hub

import (
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
)

func TestIsStatus(t *testing.T) {
	tests := []struct {
		op   bus.Op
		res  string
		want bool
	}{
		{bus.OpUpdate, "default/podstatus/p", true},
		{bus.OpUpdate, "default/podstatus", true}, // v0.3 bulk resync
		{bus.OpUpdate, "default/nodestatus/n", true},
		{bus.OpPatch, "default/podpatch/p", true},
		{bus.OpPatch, "null/nodepatch/n", true},
		{bus.OpUpdate, "kube-node-lease/lease/n", true},
		{bus.OpInsert, "kube-node-lease/lease/n", false},
		{bus.OpUpdate, "device/d1/twin/edge_updated", false},
		{bus.OpUpdate, "device/ns/d1/state/update", false},
		{bus.OpUpdate, "default/device/d1", false},
		{bus.OpInsert, "null/node/n", false},
		{bus.OpQuery, "default/configmap/c", false},
		{bus.OpResponse, "default/pod/p", false},
		{bus.OpGet, "membership/detail", false},
		{bus.OpKeepalive, "node", false},
	}
	for _, tt := range tests {
		m := bus.NewMessage(bus.ModulePod, bus.GroupMeta, tt.op, tt.res, nil)
		if got := isStatus(m); got != tt.want {
			t.Errorf("isStatus(%s %s) = %v, want %v", tt.op, tt.res, got, tt.want)
		}
	}
}

func TestIsDeviceReport(t *testing.T) {
	tests := []struct {
		res  string
		want bool
	}{
		{"device/d1/twin/edge_updated", true},
		{"device/ns/d1/twin/edge_updated", true},
		{"device/d1/state", true},
		{"device/ns/d1/state/update", true},
		{"membership/detail", false},
		{"device/d1/twin/cloud_updated", false},
		{"default/podpatch/p", false},
	}
	for _, tt := range tests {
		m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, tt.res, nil)
		if got := isDeviceReport(m); got != tt.want {
			t.Errorf("isDeviceReport(%s) = %v, want %v", tt.res, got, tt.want)
		}
	}
	// Two reports of one device both wait: neither replaces the other.
	q := newOutbox(4)
	a := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, "device/d1/twin/edge_updated", bus.JSONString("a"))
	b := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, "device/d1/twin/edge_updated", bus.JSONString("b"))
	q.put(a)
	if _, replaced, _ := q.put(b); replaced || q.len() != 2 {
		t.Errorf("second report: replaced %v, len %d, want false 2", replaced, q.len())
	}
}

func FuzzIsStatus(f *testing.F) {
	f.Add("update", "default/podstatus/p")
	f.Add("patch", "null/nodepatch/n")
	f.Add("update", "device/d1/twin/edge_updated")
	f.Add("query", "a//b")
	f.Fuzz(func(t *testing.T, op, res string) {
		m := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.Op(op), res, nil)
		if isStatus(m) {
			// A status queued twice keeps one entry.
			q := newOutbox(4)
			q.put(m)
			q.put(m)
			if q.len() != 1 {
				t.Fatalf("outbox len after two puts of status %q %q = %d, want 1", op, res, q.len())
			}
		}
	})
}

func TestOutbox(t *testing.T) {
	q := newOutbox(3)
	st := func(name string, v string) bus.Message {
		return bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, "default/podpatch/"+name, bus.JSONString(v))
	}
	other := bus.NewMessage(bus.ModuleMeta, bus.GroupResource, bus.OpResponse, "default/pod/a", bus.OKContent)
	a1, b1, a2 := st("a", "1"), st("b", "1"), st("a", "2")
	a2.Header.Sync = true
	for _, m := range []bus.Message{a1, other, b1} {
		if _, _, ok := q.put(m); !ok {
			t.Fatalf("put(%s) refused", m.Route.Resource)
		}
	}
	old, replaced, ok := q.put(a2)
	if !ok || !replaced || old.Header.ID != a1.Header.ID {
		t.Fatalf("put(a2) = %v, %v, %v, want a1 replaced", old.Header.ID, replaced, ok)
	}
	if _, _, ok := q.put(st("c", "1")); ok {
		t.Error("put into a full outbox accepted")
	}
	var got []bus.ID
	for {
		m, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, m.Header.ID)
	}
	want := []bus.ID{a2.Header.ID, other.Header.ID, b1.Header.ID}
	if len(got) != len(want) {
		t.Fatalf("popped %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("pop #%d = %v, want %v", i, got[i], want[i])
		}
	}
	// Long use does not grow the slice without bound.
	for i := range 10000 {
		q.put(st("x", string(rune('a'+i%26))))
		q.put(other)
		q.pop()
		q.pop()
	}
	if len(q.items) > 16 {
		t.Errorf("outbox slice len %d after steady use, want small", len(q.items))
	}
}

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(10, 3, time.Now())
		start := time.Now()
		sent := 0
		for sent < 13 {
			ok, wait := l.take(time.Now())
			if ok {
				sent++
				continue
			}
			time.Sleep(wait)
		}
		// 3 at once, then 10 at 10/s: one second.
		if got := time.Since(start); got != time.Second {
			t.Errorf("13 tokens at 10/s burst 3 took %v, want 1s", got)
		}
		time.Sleep(time.Hour)
		n := 0
		for {
			if ok, _ := l.take(time.Now()); !ok {
				break
			}
			n++
		}
		if n != 3 {
			t.Errorf("tokens after an idle hour = %d, want the burst 3", n)
		}
	})
}

func TestBackoff(t *testing.T) {
	c := &Client{cfg: Config{BackoffMin: time.Second, BackoffMax: 30 * time.Second}}
	for n := 1; n <= 12; n++ {
		full := min(time.Second<<(n-1), 30*time.Second)
		for range 50 {
			d := c.backoff(n)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func TestWaitQueueingHandlesBus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New(bus.Config{}, nil)
		c, err := New(Config{Server: "h:1", NodeName: "n", DataDir: "/d"}, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			c.waitQueueing(t.Context(), 10*time.Second)
			close(done)
		}()
		b.Send(bus.ModuleHub, bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, "default/podpatch/p", bus.JSONString("{}")))
		b.Send(bus.ModuleHub, bus.NewMessage(bus.ModuleMeta, bus.GroupResource, bus.OpResponse, "default/pod/p", bus.OKContent))
		synctest.Wait()
		if c.out.len() != 1 || c.Stats().OfflineDrops != 1 {
			t.Errorf("during backoff: queued %d dropped %d, want 1 1", c.out.len(), c.Stats().OfflineDrops)
		}
		select {
		case <-done:
			t.Fatal("waitQueueing returned before its time")
		default:
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("waitQueueing still waiting after 10s")
		}
	})
}
