package twin

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
)

func TestHealthCheckRestartsSilentWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handled := make(chan string, 8)
		stuck := newWorker("stuck", 4, func(ctx context.Context, j job) {
			if j.act == actTwinUpdate {
				<-ctx.Done() // hangs until the health check gives up on it
				return
			}
			handled <- "stuck"
		})
		fine := newWorker("fine", 4, func(ctx context.Context, j job) { handled <- "fine" })
		s := &supervisor{workers: []*worker{stuck, fine}, interval: 60 * time.Second, timeout: 120 * time.Second,
			log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.run(ctx); close(done) }()
		stuck.inbox <- job{act: actTwinUpdate}

		time.Sleep(150 * time.Second)
		synctest.Wait()
		if r := stuck.restarts.Load(); r != 0 {
			t.Errorf("at 150 s: %d restarts, want 0 (silent for 150 s, checked at 60 and 120 s)", r)
		}
		time.Sleep(31 * time.Second) // the check at 180 s sees 180 s of silence
		synctest.Wait()
		if r, f := stuck.restarts.Load(), fine.restarts.Load(); r != 1 || f != 0 {
			t.Errorf("at 181 s: restarts stuck %d fine %d, want 1 and 0", r, f)
		}
		// The restarted worker serves its inbox again.
		stuck.inbox <- job{}
		fine.inbox <- job{}
		synctest.Wait()
		if len(handled) != 2 {
			t.Errorf("handled %d jobs after the restart, want 2", len(handled))
		}
		// A worker that answers its pings is never restarted.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if r, f := stuck.restarts.Load(), fine.restarts.Load(); r != 1 || f != 0 {
			t.Errorf("after 10 more minutes: restarts stuck %d fine %d, want 1 and 0", r, f)
		}
		cancel()
		<-done
	})
}

func TestCommConfirmAndResend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New(bus.Config{}, nil)
		if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
			t.Fatal(err)
		}
		tw, err := New(Config{NodeName: "n1"}, b, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { tw.com.loop(ctx); close(done) }()
		hub := func() []bus.Message {
			synctest.Wait()
			var out []bus.Message
			for b.Depth(bus.ModuleHub) > 0 {
				m, _ := b.Receive(ctx, bus.ModuleHub)
				out = append(out, m)
			}
			return out
		}
		send := func(res string) bus.Message {
			m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, res, []byte(`{}`))
			tw.com.inbox <- job{act: actSendToCloud, msg: m}
			return m
		}
		conn := func(s string) {
			tw.com.inbox <- job{act: actLifeCycle, msg: bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(s))}
		}

		// Reports made while the cloud is away wait, and go out in order
		// when it comes back, before the membership detail request.
		off1 := send("device/a/twin/edge_updated")
		off2 := send("device/b/state/update")
		if got := hub(); len(got) != 0 || tw.Stats().CloudDropped != 0 {
			t.Errorf("while disconnected: %d sent, %d dropped, want 0 and 0", len(got), tw.Stats().CloudDropped)
		}
		conn(bus.CloudConnected)
		got := hub()
		if len(got) != 3 || got[0].Header.ID != off1.Header.ID || got[1].Header.ID != off2.Header.ID ||
			got[2].Route.Resource != bus.ResMembershipDetail {
			t.Fatalf("on connect sent %v, want the two offline reports in order, then the membership detail request", got)
		}
		detail := got[2]
		for _, m := range []bus.Message{off1, off2} {
			c := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpResponse, bus.ResTwin, nil)
			c.Header.ParentID = m.Header.ID
			tw.com.inbox <- job{act: actConfirm, msg: c}
		}
		upd := send("device/a/twin/edge_updated")
		state := send("device/a/state/update")
		if got := hub(); len(got) != 2 {
			t.Fatalf("sent %d, want 2", len(got))
		}
		// The cloud confirms the twin update (parent id = our id).
		confirm := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpResponse, bus.ResTwin, nil)
		confirm.Header.ParentID = upd.Header.ID
		tw.com.inbox <- job{act: actConfirm, msg: confirm}

		time.Sleep(59 * time.Second)
		if got := hub(); len(got) != 0 {
			t.Errorf("resent %d before 60 s idle", len(got))
		}
		time.Sleep(2 * time.Second)
		got = hub()
		if len(got) != 2 || got[0].Header.ID != detail.Header.ID || got[1].Header.ID != state.Header.ID {
			t.Errorf("after 60 s idle resent %d messages, want the detail request and the unconfirmed state, same ids", len(got))
		}
		conn(bus.CloudDisconnected)
		time.Sleep(5 * time.Minute)
		if got := hub(); len(got) != 0 {
			t.Errorf("resent %d while disconnected", len(got))
		}
		cancel()
		<-done
	})
}

func TestCommOfflineBound(t *testing.T) {
	// At most MaxPending reports wait for the cloud; the oldest goes
	// first, counted.
	synctest.Test(t, func(t *testing.T) {
		b := bus.New(bus.Config{}, nil)
		if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
			t.Fatal(err)
		}
		tw, err := New(Config{NodeName: "n1", MaxPending: 2}, b, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tw.com.loop(ctx)
		var sent []bus.Message
		for _, res := range []string{"device/a/twin/edge_updated", "device/b/twin/edge_updated", "device/c/twin/edge_updated"} {
			m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, res, []byte(`{}`))
			tw.com.inbox <- job{act: actSendToCloud, msg: m}
			sent = append(sent, m)
		}
		tw.com.inbox <- job{act: actLifeCycle, msg: bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect,
			bus.ResNodeConnection, bus.JSONString(bus.CloudConnected))}
		synctest.Wait()
		var got []bus.ID
		for b.Depth(bus.ModuleHub) > 0 {
			m, _ := b.Receive(ctx, bus.ModuleHub)
			got = append(got, m.Header.ID)
		}
		// a was dropped for c; b, sent, then made room for the detail
		// request, so it will not be resent.
		if len(got) != 3 || got[0] != sent[1].Header.ID || got[1] != sent[2].Header.ID || tw.Stats().CloudDropped != 2 {
			t.Errorf("after connect: sent %v, dropped %d; want reports b and c then the detail request, 2 dropped",
				got, tw.Stats().CloudDropped)
		}
	})
}
