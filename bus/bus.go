package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the bus.
var (
	ErrUnknownModule = errors.New("bus: unknown module")
	ErrUnknownGroup  = errors.New("bus: unknown group")
	ErrQueueFull     = errors.New("bus: queue full")
	ErrTimeout       = errors.New("bus: timed out waiting for response")
	ErrDuplicate     = errors.New("bus: module already registered")
	ErrBadID         = errors.New("bus: message id longer than 36 bytes")
)

// Config sizes the bus. The zero value gives the defaults.
type Config struct {
	// QueueLen is the capacity of each module's queue. Default 128.
	QueueLen int `yaml:"queueLen"`
}

// DefaultQueueLen is the queue capacity when Config.QueueLen is zero.
const DefaultQueueLen = 128

// Stats are the bus's counters, for metrics.
type Stats struct {
	Sent, Dropped, OrphanResponses uint64
}

// Bus routes messages between modules. Create one with New; it is safe for
// concurrent use and starts no goroutines.
type Bus struct {
	log      *slog.Logger
	queueLen int

	mu      sync.RWMutex
	modules map[Module]*module
	groups  map[Group][]*module

	wmu     sync.Mutex
	waiters map[ID]*waiter
	pool    sync.Pool

	sent, dropped, orphans atomic.Uint64
	orphanLogged           atomic.Bool
}

type module struct {
	name  Module
	group Group
	q     *queue
}

// waiter is a pending SendSync. It is pooled with its channel and timer, so a
// round trip allocates nothing once the pool is warm.
type waiter struct {
	ch    chan Message
	timer *time.Timer
}

// New returns an empty bus. log may be nil.
func New(cfg Config, log *slog.Logger) *Bus {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{
		log:      log,
		queueLen: cfg.QueueLen,
		modules:  make(map[Module]*module),
		groups:   make(map[Group][]*module),
		waiters:  make(map[ID]*waiter),
	}
	b.pool.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &waiter{ch: make(chan Message, 1), timer: t}
	}
	return b
}

// AddModule registers a module and its queue, and adds it to group (which may
// be empty). Registering the same name twice is an error.
func (b *Bus) AddModule(name Module, group Group) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.modules[name]; ok {
		return fmt.Errorf("bus: add %s: %w", name, ErrDuplicate)
	}
	m := &module{name: name, group: group, q: newQueue(b.queueLen)}
	b.modules[name] = m
	if group != "" {
		b.groups[group] = append(b.groups[group], m)
	}
	return nil
}

// Has reports whether a module is registered.
func (b *Bus) Has(name Module) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.modules[name]
	return ok
}

// Send queues msg for module to. It never blocks: an unknown module or a
// full queue is an error and the message is not delivered.
func (b *Bus) Send(to Module, msg Message) error {
	b.mu.RLock()
	m, ok := b.modules[to]
	if !ok {
		b.mu.RUnlock()
		b.dropped.Add(1)
		return ErrUnknownModule
	}
	err := b.put(m, &msg)
	b.mu.RUnlock()
	return err
}

func (b *Bus) put(m *module, msg *Message) error {
	if !m.q.push(msg) {
		b.dropped.Add(1)
		return ErrQueueFull
	}
	b.sent.Add(1)
	return nil
}

// Send2Group queues msg for every member of group. It returns an error if
// the group is unknown or if any member's queue was full; the other members
// still get the message.
func (b *Bus) Send2Group(group Group, msg Message) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ms, ok := b.groups[group]
	if !ok {
		b.dropped.Add(1)
		return ErrUnknownGroup
	}
	var err error
	for _, m := range ms {
		if e := b.put(m, &msg); e != nil {
			err = fmt.Errorf("bus: send to %s in %s: %w", m.name, group, e)
		}
	}
	return err
}

// Receive blocks until a message for module name arrives or ctx ends.
func (b *Bus) Receive(ctx context.Context, name Module) (Message, error) {
	b.mu.RLock()
	m, ok := b.modules[name]
	b.mu.RUnlock()
	if !ok {
		return Message{}, ErrUnknownModule
	}
	for {
		select {
		case <-m.q.ready:
			if msg, ok := m.q.next(); ok {
				return msg, nil
			}
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// Queue returns the inbox of a module, for modules that select on it
// together with other channels. It is the zero Inbox, never ready, for an
// unknown module.
func (b *Bus) Queue(name Module) Inbox {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if m, ok := b.modules[name]; ok {
		return Inbox{m.q}
	}
	return Inbox{}
}

// Trim gives back what the queues grew to in a burst: each empty queue
// goes back to its small ring. The node calls it when idle, before it
// returns freed memory to the kernel.
func (b *Bus) Trim() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, m := range b.modules {
		m.q.trim()
	}
}

// Depth returns the number of messages queued for a module.
func (b *Bus) Depth(name Module) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if m, ok := b.modules[name]; ok {
		return m.q.len()
	}
	return 0
}

// SendSync sends msg to module to with Sync set and waits up to timeout (and
// while ctx lives) for the answer given with SendResp. If msg has no id it
// gets one.
func (b *Bus) SendSync(ctx context.Context, to Module, msg Message, timeout time.Duration) (Message, error) {
	if msg.Header.ID.IsZero() {
		msg.Header.ID = NewID()
	}
	msg.Header.Sync = true
	w := b.wait(msg.Header.ID)
	if err := b.Send(to, msg); err != nil {
		b.unwait(msg.Header.ID, w)
		return Message{}, err
	}
	return b.await(ctx, msg.Header.ID, w, timeout)
}

func (b *Bus) wait(id ID) *waiter {
	w := b.pool.Get().(*waiter)
	b.wmu.Lock()
	b.waiters[id] = w
	b.wmu.Unlock()
	return w
}

// unwait removes the waiter and returns it to the pool. A response that was
// delivered after the wait ended is drained first so the next user of the
// waiter does not see it.
func (b *Bus) unwait(id ID, w *waiter) {
	b.wmu.Lock()
	if b.waiters[id] == w {
		delete(b.waiters, id)
	}
	select {
	case <-w.ch:
	default:
	}
	b.wmu.Unlock()
	b.pool.Put(w)
}

func (b *Bus) await(ctx context.Context, id ID, w *waiter, timeout time.Duration) (Message, error) {
	w.timer.Reset(timeout)
	defer w.timer.Stop()
	select {
	case resp := <-w.ch:
		b.unwait(id, w)
		return resp, nil
	case <-w.timer.C:
		b.unwait(id, w)
		return Message{}, ErrTimeout
	case <-ctx.Done():
		b.unwait(id, w)
		return Message{}, ctx.Err()
	}
}

// SendResp delivers resp to the SendSync waiting for the message whose id is
// resp.Header.ParentID. It reports whether a waiter took it. A response with
// no waiter is counted, and the first one is logged.
func (b *Bus) SendResp(resp Message) bool {
	// The lookup and the hand-over happen under one lock, so a waiter that
	// gives up (unwait) either sees the response in its channel and drains
	// it, or is gone before the response is handed over.
	b.wmu.Lock()
	w, ok := b.waiters[resp.Header.ParentID]
	if ok {
		delete(b.waiters, resp.Header.ParentID)
		select {
		case w.ch <- resp:
		default:
			ok = false
		}
	}
	b.wmu.Unlock()
	if ok {
		return true
	}
	b.orphans.Add(1)
	if b.orphanLogged.CompareAndSwap(false, true) {
		b.log.Warn("response for no waiting request (logged once, counted after)",
			"parent_msg_id", resp.Header.ParentID.String(), "resource", resp.Route.Resource)
	}
	return false
}

// IsWaiting reports whether a SendSync waits for the reply to request id.
func (b *Bus) IsWaiting(id ID) bool {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	_, ok := b.waiters[id]
	return ok
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{Sent: b.sent.Load(), Dropped: b.dropped.Load(), OrphanResponses: b.orphans.Load()}
}
