package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// msgN is a message told apart by its resource.
func msgN(i int) Message {
	return NewMessage(ModulePod, GroupMeta, OpUpdate, fmt.Sprintf("default/pod/p%d", i), nil)
}

// TestQueueGrowsAndTrims: the ring starts small, grows as messages wait
// (keeping their order across the wrap), refuses the one over QueueLen,
// and goes back to the small ring at Trim only once it is empty.
func TestQueueGrowsAndTrims(t *testing.T) {
	b := New(Config{QueueLen: 100}, nil)
	if err := b.AddModule(ModuleMeta, ""); err != nil {
		t.Fatal(err)
	}
	q := b.modules[ModuleMeta].q
	if len(q.buf) != minQueue {
		t.Fatalf("a new queue has %d slots, want %d", len(q.buf), minQueue)
	}
	in := b.Queue(ModuleMeta)
	// Turn the small ring part way, so that growing has to unwrap it.
	for i := range 3 {
		if err := b.Send(ModuleMeta, msgN(i)); err != nil {
			t.Fatal(err)
		}
		if _, ok := in.Next(); !ok {
			t.Fatal("Next after Send found nothing")
		}
	}
	for i := range 100 {
		if err := b.Send(ModuleMeta, msgN(i)); err != nil {
			t.Fatalf("Send %d of 100: %v", i, err)
		}
	}
	if err := b.Send(ModuleMeta, msgN(100)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Send over QueueLen = %v, want ErrQueueFull", err)
	}
	if len(q.buf) != 100 {
		t.Errorf("a full queue has %d slots, want 100 (QueueLen)", len(q.buf))
	}
	for i := range 60 {
		m, ok := in.Next()
		if !ok || m.Route.Resource != msgN(i).Route.Resource {
			t.Fatalf("message %d = %q, %v; want %q", i, m.Route.Resource, ok, msgN(i).Route.Resource)
		}
	}
	b.Trim()
	if len(q.buf) != 100 {
		t.Fatalf("Trim with 40 messages waiting left %d slots, want 100", len(q.buf))
	}
	for i := 60; i < 100; i++ {
		if m, ok := in.Next(); !ok || m.Route.Resource != msgN(i).Route.Resource {
			t.Fatalf("message %d = %q, %v", i, m.Route.Resource, ok)
		}
	}
	if m, ok := in.Next(); ok {
		t.Fatalf("Next on an empty queue = %q", m.Route.Resource)
	}
	b.Trim()
	if len(q.buf) != minQueue {
		t.Fatalf("Trim of an empty queue left %d slots, want %d", len(q.buf), minQueue)
	}
	// The small ring works again, and holds nothing of before.
	for _, m := range q.buf {
		if m.Route.Resource != "" {
			t.Fatalf("the small ring still holds %q", m.Route.Resource)
		}
	}
	if err := b.Send(ModuleMeta, msgN(7)); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Receive(context.Background(), ModuleMeta); err != nil || m.Route.Resource != msgN(7).Route.Resource {
		t.Fatalf("Receive after Trim = %q, %v", m.Route.Resource, err)
	}
}

// TestQueueReadyManyProducers: one consumer that selects on Ready and
// takes one message each time sees every message of many producers, in
// each producer's order, and is not woken for ever once all are taken.
func TestQueueReadyManyProducers(t *testing.T) {
	const producers, each = 8, 500
	b := New(Config{QueueLen: producers * each}, nil)
	if err := b.AddModule(ModuleMeta, ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				m := NewMessage(ModulePod, GroupMeta, OpUpdate, fmt.Sprintf("p%d", p), nil)
				m.Header.Timestamp = int64(i)
				if err := b.Send(ModuleMeta, m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	in := b.Queue(ModuleMeta)
	next := map[string]int64{}
	timeout := time.After(time.Minute)
	for got := 0; got < producers*each; {
		select {
		case <-in.Ready():
			m, ok := in.Next()
			if !ok {
				continue
			}
			if m.Header.Timestamp != next[m.Route.Resource] {
				t.Fatalf("%s: message %d came when %d was due", m.Route.Resource, m.Header.Timestamp, next[m.Route.Resource])
			}
			next[m.Route.Resource]++
			got++
		case <-timeout:
			t.Fatalf("%d of %d messages after a minute", len(next), producers*each)
		}
	}
	wg.Wait()
	// At most one stale token is left, and it finds the queue empty.
	select {
	case <-in.Ready():
		if m, ok := in.Next(); ok {
			t.Fatalf("a message beyond those sent: %q", m.Route.Resource)
		}
	default:
	}
	select {
	case <-in.Ready():
		t.Fatal("Ready has a value again on an empty queue")
	default:
	}
}

// TestUnknownInbox: the inbox of an unknown module is never ready and
// empty.
func TestUnknownInbox(t *testing.T) {
	b := newBus(t)
	in := b.Queue(ModuleMeta)
	if in.Ready() != nil {
		t.Error("an unknown module's inbox has a Ready channel")
	}
	if _, ok := in.Next(); ok || b.Depth(ModuleMeta) != 0 {
		t.Error("an unknown module's inbox has a message")
	}
}
