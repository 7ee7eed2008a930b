package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func newBus(t testing.TB, mods ...Module) *Bus {
	t.Helper()
	b := New(Config{QueueLen: 8}, nil)
	for _, m := range mods {
		if err := b.AddModule(m, Group("g-"+string(m))); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestSendReceive(t *testing.T) {
	b := newBus(t, ModuleMeta)
	msg := NewMessage(ModulePod, GroupMeta, OpInsert, "default/pod/a", []byte(`{}`))
	if err := b.Send(ModuleMeta, msg); err != nil {
		t.Fatalf("Send() = %v, want nil", err)
	}
	got, err := b.Receive(context.Background(), ModuleMeta)
	if err != nil || got.Header.ID != msg.Header.ID || got.Route != msg.Route {
		t.Fatalf("Receive() = %+v, %v, want %+v", got, err, msg)
	}
}

func TestSendErrors(t *testing.T) {
	b := newBus(t, ModuleMeta)
	if err := b.Send(ModuleTwin, Message{}); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("Send(unknown) = %v, want ErrUnknownModule", err)
	}
	for i := range 8 {
		if err := b.Send(ModuleMeta, Message{}); err != nil {
			t.Fatalf("Send #%d = %v", i, err)
		}
	}
	if err := b.Send(ModuleMeta, Message{}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Send(full) = %v, want ErrQueueFull", err)
	}
	if got := b.Stats().Dropped; got != 2 {
		t.Errorf("Stats().Dropped = %d, want 2", got)
	}
	if err := b.AddModule(ModuleMeta, GroupMeta); !errors.Is(err, ErrDuplicate) {
		t.Errorf("AddModule(dup) = %v, want ErrDuplicate", err)
	}
}

func TestReceiveCancel(t *testing.T) {
	b := newBus(t, ModuleMeta)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Receive(ctx, ModuleMeta); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := b.Receive(context.Background(), ModuleTwin); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("Receive(unknown) = %v, want ErrUnknownModule", err)
	}
	if err := b.Send2Group("g-nobody", Message{}); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("Send2Group(unknown) = %v, want ErrUnknownGroup", err)
	}
}

func TestSend2Group(t *testing.T) {
	b := New(Config{}, nil)
	for _, m := range []Module{ModuleMeta, ModuleTwin, ModuleMQTT} {
		if err := b.AddModule(m, GroupTwin); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send2Group(GroupTwin, NewMessage(ModuleHub, GroupTwin, OpConnect, ResNodeConnection, nil)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Module{ModuleMeta, ModuleTwin, ModuleMQTT} {
		if got := b.Depth(m); got != 1 {
			t.Errorf("Depth(%s) = %d, want 1", m, got)
		}
	}
}

// responder answers every message for m with its resource as content.
func responder(ctx context.Context, b *Bus, m Module) {
	for {
		req, err := b.Receive(ctx, m)
		if err != nil {
			return
		}
		if !req.Header.Sync {
			continue
		}
		b.SendResp(req.Resp([]byte(`"` + req.Route.Resource + `"`)))
	}
}

func TestSendSync(t *testing.T) {
	b := newBus(t, ModuleHub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go responder(ctx, b, ModuleHub)
	req := NewMessage(ModuleMeta, GroupResource, OpQuery, "default/configmap/c", nil)
	resp, err := b.SendSync(ctx, ModuleHub, req, time.Minute) // a guard
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.ParentID != req.Header.ID || string(resp.Content) != `"default/configmap/c"` || resp.Route.Operation != OpResponse {
		t.Errorf("SendSync() = %+v, want response to %s", resp, req.Header.ID)
	}
}

func TestSendSyncTimeoutAndOrphan(t *testing.T) {
	b := newBus(t, ModuleHub)
	req := NewMessage(ModuleMeta, GroupResource, OpQuery, "x/y/z", nil)
	_, err := b.SendSync(context.Background(), ModuleHub, req, 10*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("SendSync(no answer) = %v, want ErrTimeout", err)
	}
	if b.IsWaiting(req.Header.ID) {
		t.Error("IsWaiting after timeout = true, want false")
	}
	// The late answer is an orphan: counted, not delivered to anyone.
	if b.SendResp(req.Resp(nil)) {
		t.Error("SendResp(late) = true, want false")
	}
	if got := b.Stats().OrphanResponses; got != 1 {
		t.Errorf("OrphanResponses = %d, want 1", got)
	}
	// The pooled waiter must not leak the late answer into the next call.
	// Take the first, unanswered request off the queue before the
	// responder starts: otherwise the responder may take it and this
	// Receive waits forever (it did under qemu-arm-static).
	_, _ = b.Receive(context.Background(), ModuleHub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go responder(ctx, b, ModuleHub)
	req2 := NewMessage(ModuleMeta, GroupResource, OpQuery, "a/b/c", nil)
	resp, err := b.SendSync(context.Background(), ModuleHub, req2, time.Minute) // a guard
	if err != nil || resp.Header.ParentID != req2.Header.ID {
		t.Errorf("SendSync after orphan = %+v, %v, want answer to %s", resp, err, req2.Header.ID)
	}
}

func TestManySendersRace(t *testing.T) {
	b := New(Config{QueueLen: 64}, nil)
	if err := b.AddModule(ModuleHub, GroupHub); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go responder(ctx, b, ModuleHub)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				req := NewMessage(ModuleMeta, GroupMeta, OpQuery, fmt.Sprintf("ns/k/%d-%d", i, j), nil)
				resp, err := b.SendSync(ctx, ModuleHub, req, time.Minute)
				for errors.Is(err, ErrQueueFull) {
					time.Sleep(time.Millisecond) // back off; the queue is bounded on purpose
					resp, err = b.SendSync(ctx, ModuleHub, req, time.Minute)
				}
				if err != nil {
					errs <- err
					return
				}
				if want := `"` + req.Route.Resource + `"`; string(resp.Content) != want {
					errs <- fmt.Errorf("answer %s, want %s", resp.Content, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items); make test runs this test without -race")
	}
	b := newBus(t, ModuleMeta, ModuleHub)
	ctx := context.Background()
	msg := NewMessage(ModulePod, GroupMeta, OpUpdate, "default/podstatus/a", []byte(`{}`))
	if n := testing.AllocsPerRun(1000, func() {
		_ = b.Send(ModuleMeta, msg)
		_, _ = b.Receive(ctx, ModuleMeta)
	}); n != 0 {
		t.Errorf("Send+Receive allocs = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = NewMessage(ModulePod, GroupMeta, OpUpdate, "r", nil) }); n != 0 {
		t.Errorf("NewMessage allocs = %v, want 0", n)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		q := b.Queue(ModuleHub)
		for {
			select {
			case <-q.Ready():
				if req, ok := q.Next(); ok {
					b.SendResp(req.Resp(req.Content))
				}
			case <-stop:
				return
			}
		}
	}()
	// Warm the waiter pool and map.
	for range 10 {
		_, _ = b.SendSync(ctx, ModuleHub, msg, time.Second)
	}
	if n := testing.AllocsPerRun(1000, func() {
		m := msg
		m.Header.ID = NewID()
		_, _ = b.SendSync(ctx, ModuleHub, m, time.Second)
	}); n != 0 {
		t.Errorf("SendSync+SendResp allocs = %v, want 0", n)
	}
}

func BenchmarkSendReceive(b *testing.B) {
	bus := newBus(b, ModuleMeta)
	ctx := context.Background()
	msg := NewMessage(ModulePod, GroupMeta, OpUpdate, "default/podstatus/a", []byte(`{}`))
	b.ReportAllocs()
	for b.Loop() {
		_ = bus.Send(ModuleMeta, msg)
		_, _ = bus.Receive(ctx, ModuleMeta)
	}
}

func BenchmarkSendSync(b *testing.B) {
	bus := newBus(b, ModuleHub)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		q := bus.Queue(ModuleHub)
		for {
			select {
			case <-q.Ready():
				if req, ok := q.Next(); ok {
					bus.SendResp(req.Resp(nil))
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	msg := NewMessage(ModulePod, GroupMeta, OpQuery, "default/configmap/a", nil)
	b.ReportAllocs()
	for b.Loop() {
		m := msg
		m.Header.ID = NewID()
		if _, err := bus.SendSync(ctx, ModuleHub, m, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
