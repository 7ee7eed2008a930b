package twin

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
)

// TestHealthCheckMarksStuckWorker: a worker blocked in a job is marked
// stuck once silent for longer than the timeout, and the module reads
// unhealthy; no second reader is started on its inbox; once it answers
// again it is healthy again. A worker that answers its pings never is.
func TestHealthCheckMarksStuckWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handled := make(chan string, 8)
		release := make(chan struct{})
		hang := newWorker("twin", 4, func(ctx context.Context, j job) {
			if j.act == actTwinUpdate {
				<-release
				return
			}
			handled <- "twin"
		})
		fine := func(name string) *worker {
			return newWorker(name, 4, func(ctx context.Context, j job) { handled <- name })
		}
		tw := &Twin{mem: fine("membership"), twin: hang, dev: fine("device"), com: fine("communication")}
		s := &supervisor{workers: []*worker{tw.mem, tw.twin, tw.dev, tw.com}, interval: 60 * time.Second, timeout: 120 * time.Second,
			log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.run(ctx); close(done) }()
		hang.inbox <- &job{act: actTwinUpdate}

		time.Sleep(150 * time.Second)
		synctest.Wait()
		if err := tw.Healthy(); err != nil {
			t.Errorf("at 150 s: Healthy() = %v, want nil (silent for 150 s, checked at 60 and 120 s)", err)
		}
		time.Sleep(31 * time.Second) // the check at 180 s sees 180 s of silence
		synctest.Wait()
		if err := tw.Healthy(); !errors.Is(err, ErrStuck) || !strings.Contains(err.Error(), "twin") || strings.Contains(err.Error(), "device") {
			t.Errorf("at 181 s: Healthy() = %v, want ErrStuck naming only the twin worker", err)
		}
		// Nobody else reads the stuck worker's inbox.
		hang.inbox <- &job{}
		synctest.Wait()
		if len(handled) != 0 || len(hang.inbox) != 1 {
			t.Errorf("handled %d jobs, inbox holds %d, want 0 and 1: a second reader took the stuck worker's job", len(handled), len(hang.inbox))
		}
		// Released, it serves its inbox and the next check finds it well.
		close(release)
		synctest.Wait()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if err := tw.Healthy(); err != nil || len(handled) != 1 {
			t.Errorf("after release: Healthy() = %v, handled %d, want nil and 1", err, len(handled))
		}
		if st := tw.Stats(); st.Stalls != 1 {
			t.Errorf("Stats().Stalls = %d, want 1", st.Stalls)
		}
		// Workers that answer their pings are never marked.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if err := tw.Healthy(); err != nil {
			t.Errorf("after 10 more minutes: Healthy() = %v, want nil", err)
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
			tw.com.inbox <- &job{act: actSendToCloud, msg: m}
			return m
		}
		conn := func(s string) {
			tw.com.inbox <- &job{act: actLifeCycle, msg: bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(s))}
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
			tw.com.inbox <- &job{act: actConfirm, msg: c}
		}
		upd := send("device/a/twin/edge_updated")
		state := send("device/a/state/update")
		if got := hub(); len(got) != 2 {
			t.Fatalf("sent %d, want 2", len(got))
		}
		// The cloud confirms the twin update (parent id = our id).
		confirm := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpResponse, bus.ResTwin, nil)
		confirm.Header.ParentID = upd.Header.ID
		tw.com.inbox <- &job{act: actConfirm, msg: confirm}

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
	// first, counted. A report merged into one of its device that waits
	// already counts once: b's second report takes no room.
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
		for i, res := range []string{"device/a/twin/edge_updated", "device/b/twin/edge_updated", "device/b/twin/edge_updated", "device/c/twin/edge_updated"} {
			m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, res, []byte(`{"event_id":"`+strconv.Itoa(i)+`","timestamp":0,"twin":{}}`))
			tw.com.inbox <- &job{act: actSendToCloud, msg: m}
			sent = append(sent, m)
		}
		tw.com.inbox <- &job{act: actLifeCycle, msg: bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect,
			bus.ResNodeConnection, bus.JSONString(bus.CloudConnected))}
		synctest.Wait()
		var got []bus.ID
		var bContent string
		for b.Depth(bus.ModuleHub) > 0 {
			m, _ := b.Receive(ctx, bus.ModuleHub)
			got = append(got, m.Header.ID)
			if len(got) == 1 {
				bContent = string(m.Content)
			}
		}
		// a was dropped for c; b, sent, then made room for the detail
		// request, so it will not be resent.
		if len(got) != 3 || got[0] != sent[1].Header.ID || got[1] != sent[3].Header.ID || tw.Stats().CloudDropped != 2 {
			t.Errorf("after connect: sent %v, dropped %d; want reports b and c then the detail request, 2 dropped",
				got, tw.Stats().CloudDropped)
		}
		if want := `{"event_id":"2","timestamp":0,"twin":{}}`; bContent != want {
			t.Errorf("b's report = %s, want the newer one merged in: %s", bContent, want)
		}
	})
}
