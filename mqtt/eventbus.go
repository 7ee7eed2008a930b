package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// Errors of the mqtt package.
var (
	ErrNoCredentials  = errors.New("mqtt: a broker listening beyond loopback needs a username and password")
	ErrBadCredentials = errors.New("mqtt: malformed credentials")
	ErrNoCerts        = errors.New("mqtt: no PEM certificates found")
	ErrNotConnected   = errors.New("mqtt: not connected")
	ErrTimeout        = errors.New("mqtt: timed out")
	ErrBadTopic       = errors.New("mqtt: invalid topic")
	ErrBadContent     = errors.New("mqtt: malformed message content")
)

// Stats are EventBus's counters since New.
type Stats struct {
	Received       uint64 // messages taken from the brokers into the ingress queue
	ToTwin         uint64 // ingress messages sent to group twin
	ToHub          uint64 // ingress messages sent to the cloud
	DropQueueFull  uint64 // ingress messages dropped: ingress queue full
	DropOversize   uint64 // ingress payloads over MaxPayload: dropped, or cut short for twin's error result
	DropBus        uint64 // ingress messages the bus refused (queue full, module missing)
	Overloaded     uint64 // twin requests over their client's share or refused by the bus, answered 503
	Published      uint64 // egress publishes handed to a broker
	PublishErrors  uint64 // egress publishes a broker refused (or disconnected)
	BadRequests    uint64 // egress messages with a bad topic, filter or content
	Subscribed     int    // current topic filters (static and dynamic)
	Clients        int64  // clients connected to the embedded broker
	ClientDrops    uint64 // messages the embedded broker dropped for slow clients
	AuthRefused    uint64 // clients the embedded broker refused
	Listening      bool   // the embedded broker has bound its port
	ListenFailures uint64 // failed attempts to bind it
	External       bool   // the external subscriber is connected
	ExternalSubs   uint64 // connects to the external broker after which every filter was subscribed
}

type inMsg struct {
	client  string
	topic   string
	payload []byte
}

// transport is one broker EventBus talks to: the embedded one or the
// external one.
type transport interface {
	subscribe(filter string) error
	unsubscribe(filter string) error
	publish(topic string, payload []byte) error
}

// EventBus is the module "eventbus" (group bus). Create it with New and run
// it with Run; see the package doc for the messages it takes and sends.
type EventBus struct {
	cfg   Config
	b     *bus.Bus
	store *db.DB
	log   *slog.Logger

	in chan inMsg
	// delivered counts the messages deliver has had, for pace; yield is
	// runtime.Gosched, replaced in tests.
	delivered atomic.Uint64
	yield     func()
	broker    *broker
	remote    *remote
	// transports are the brokers of the mode. In both mode an egress
	// message goes to both, as KubeEdge publishes to both
	// (docs/protocol.md 4.1, eventbus.go).
	transports []transport
	ready      chan struct{}

	mu      sync.Mutex // guards filters
	filters []string

	received, toTwin, toHub, dropQueue, dropSize, dropBus atomic.Uint64
	published, pubErrs, badReqs, overloads                atomic.Uint64
	lastWarn                                              atomic.Int64
}

// New checks cfg (after filling defaults), registers the module "eventbus"
// in group bus and prepares the brokers. It starts nothing and binds no
// port. store keeps the dynamic subscriptions (table sub_topics).
func New(cfg Config, b *bus.Bus, store *db.DB, log *slog.Logger) (*EventBus, error) {
	cfg = cfg.Defaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mqtt: config: %w", errors.Join(errs...))
	}
	e := &EventBus{
		cfg: cfg, b: b, store: store, log: log,
		in:    make(chan inMsg, cfg.QueueLen),
		ready: make(chan struct{}),
		yield: runtime.Gosched,
	}
	var err error
	if cfg.Mode != ModeExternal {
		if e.broker, err = newBroker(cfg, log.With("broker", "internal"), e.deliver); err != nil {
			return nil, err
		}
	}
	if cfg.Mode != ModeInternal {
		if e.remote, err = newRemote(cfg.External, log.With("broker", "external"), e.deliver); err != nil {
			return nil, err
		}
	}
	if e.broker != nil {
		e.transports = append(e.transports, e.broker)
	}
	if e.remote != nil {
		e.transports = append(e.transports, e.remote)
	}
	if err := b.AddModule(bus.ModuleMQTT, bus.GroupBus); err != nil {
		return nil, fmt.Errorf("mqtt: register: %w", err)
	}
	return e, nil
}

// Ready is closed once Run has subscribed to every filter and, in internal
// and both modes, the embedded broker has bound its port. Run retries a
// port that is taken, so Ready may come late or, if it never frees, never.
func (e *EventBus) Ready() <-chan struct{} { return e.ready }

// Addr is the embedded broker's bound address (useful with port 0), or ""
// in external mode or before Ready.
func (e *EventBus) Addr() string {
	if e.broker == nil {
		return ""
	}
	return e.broker.addr()
}

// Subscribed reports whether an MQTT client would receive a publish on
// topic: on the embedded broker, whether a client subscribes to it (asked
// of the broker, cached until subscriptions change). It is true when an
// external broker is used (it cannot be asked) or publishes are retained
// (a later subscriber gets them). Safe for concurrent use.
func (e *EventBus) Subscribed(topic string) bool {
	if e.broker == nil || e.remote != nil || e.cfg.Retain {
		return true
	}
	return e.broker.subscribed(topic)
}

// Publish publishes payload on topic to every broker now, on the
// caller's goroutine: DeviceTwin's results skip the egress loop's
// hand-off this way. Safe for concurrent use; it does not block on a
// slow client (the broker queues per client).
func (e *EventBus) Publish(topic string, payload []byte) error {
	return e.publish(topic, payload)
}

// Run starts the brokers, subscribes to the static topics and to those
// stored in sub_topics, then serves ingress and egress until ctx ends. It
// returns after every goroutine it started has exited.
func (e *EventBus) Run(ctx context.Context) error {
	stored, err := e.store.SubTopics(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.filters = append(StaticTopics(), stored...)
	filters := slices.Clone(e.filters)
	e.mu.Unlock()
	if e.broker != nil {
		if err := e.broker.serve(); err != nil {
			return err
		}
		defer e.broker.stop()
	}
	// Deferred calls run last to first: stop the goroutines, wait for them
	// (the external clients disconnect), then stop the broker.
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer wg.Wait()
	defer stop()
	if e.remote != nil {
		e.remote.mu.Lock()
		e.remote.filters = slices.Clone(filters)
		e.remote.mu.Unlock()
		wg.Go(func() { e.remote.run(wctx) })
	}
	for _, f := range filters {
		if e.broker != nil {
			if err := e.broker.subscribe(f); err != nil {
				e.log.Warn("mqtt stored topic not subscribed", "topic", f, "err", err)
			}
		}
	}
	e.log.Info("mqtt eventbus running", "mode", e.cfg.Mode, "topics", len(filters), "era", e.cfg.Era)
	if e.broker != nil {
		wg.Go(func() { e.listenLoop(wctx) })
	} else {
		close(e.ready)
	}
	wg.Go(func() { e.ingressLoop(wctx) })

	q := e.b.Queue(bus.ModuleMQTT)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.Ready():
			if msg, ok := q.Next(); ok {
				e.egress(ctx, msg)
			}
		}
	}
}

// listenLoop binds the embedded broker's port, retrying with back-off
// while it fails (another broker may hold it, or be about to let it go),
// so that the rest of the node keeps working meanwhile. It closes ready
// once bound.
func (e *EventBus) listenLoop(ctx context.Context) {
	for n := 0; ; n++ {
		err := e.broker.listen()
		if err == nil {
			close(e.ready)
			return
		}
		e.broker.listenErr.Add(1)
		if n%10 == 0 {
			e.log.Error("mqtt broker cannot listen; devices cannot connect until it can, retrying", "addr", e.cfg.Internal.Listen, "attempts", n+1, "err", err)
		}
		t := time.NewTimer(Backoff(n, time.Second, 30*time.Second, rand.Float64))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// deliver hands a message from a broker on. It never blocks. A message
// for DeviceTwin goes straight to the bus on the broker's goroutine
// (twin's dispatcher shares the twin path fairly among clients); one for
// the cloud goes to the ingress goroutine, and a full queue is a counted
// drop, and so is an oversize payload for the cloud. An oversize payload for DeviceTwin is counted too, but its
// first MaxPayload+1 bytes still go on, so that DeviceTwin, whose own limit
// is the same by default, answers the app with an error on the request's
// result topic instead of leaving it waiting; the bus never carries more
// than MaxPayload+1 bytes of it.
func (e *EventBus) deliver(client, topic string, payload []byte) {
	e.pace()
	toTwin := Classify(topic, e.cfg.Era) == DestTwin
	if len(payload) > e.cfg.MaxPayload {
		e.dropSize.Add(1)
		if !toTwin {
			e.warn("mqtt payload over maxPayload dropped", "topic", topic, "bytes", len(payload), "max", e.cfg.MaxPayload)
			return
		}
		e.warn("mqtt payload over maxPayload cut short for twin's error result", "topic", topic, "bytes", len(payload), "max", e.cfg.MaxPayload)
		payload = append([]byte(nil), payload[:e.cfg.MaxPayload+1]...)
	}
	if toTwin {
		e.received.Add(1)
		e.toTwinShared(client, topic, payload)
		return
	}
	select {
	case e.in <- inMsg{client, topic, payload}:
		e.received.Add(1)
	default:
		e.dropQueue.Add(1)
		e.warn("mqtt ingress queue full, message dropped", "topic", topic, "queueLen", e.cfg.QueueLen)
	}
}

// paceEvery is how many published messages pass between two yields of
// the client goroutines that hand them on (pace).
const paceEvery = 16

// pace lets the other goroutines run once every paceEvery messages.
// deliver runs on the publishing client's goroutine, and a client that
// publishes without pause never parks it: its socket always has data.
// Go preempts a goroutine only after 10 ms, and looks at the network only
// when nothing else is runnable or every 10 ms. With one thread for Go
// code, as on a single-core board, the twin worker back from each fsync
// and every other client then wait in 10 ms slices. On the host with
// GOMAXPROCS=1 and one client flooding twin updates from another process,
// a second client's twin/get (one at a time) took 15-16 ms at p99 with
// this against 92-170 ms without, and the flood itself went through
// faster; with two threads there was no difference (17 ms).
func (e *EventBus) pace() {
	if e.delivered.Add(1)%paceEvery == 0 {
		e.yield()
	}
}

// toTwinShared routes a message to DeviceTwin within its client's fair
// share (Config.TwinShare): a request over it waits up to shareWait for
// a place, then, like one the bus cannot take, is answered with an
// overload result. Both happen on the publishing client's own goroutine,
// so a flooding client pays for its flood and slows its own reading, and
// its requests never fill twin's queue.
func (e *EventBus) toTwinShared(client, topic string, payload []byte) {
	s := e.cfg.TwinShare
	if s == nil {
		e.route(client, topic, payload)
		return
	}
	if !s.TakeWait(client, shareWait) {
		e.overload(topic)
		return
	}
	if !e.route(client, topic, payload) {
		s.Release(client)
		e.overload(topic)
	}
}

// shareWait is how long a request over its client's share waits, on that
// client's own goroutine, for a place before it is answered 503: a
// flooding client is slowed to twin's pace first (it stops reading, so
// TCP pushes back), and only answered 503 when twin does not keep up.
const shareWait = 10 * time.Millisecond

// overload publishes DeviceTwin's error result for a request dropped for
// overload (code 503, in the shape and words of twin's error results) on
// the request's result topic. Only requests have one: topics ending in
// /update or /get.
func (e *EventBus) overload(topic string) {
	e.overloads.Add(1)
	if !strings.HasSuffix(topic, "/update") && !strings.HasSuffix(topic, "/get") {
		return
	}
	b := make([]byte, 0, 96)
	b = append(b, `{"timestamp":`...)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, `,"code":503,"reason":"`+overloadReason+`"}`...)
	_ = e.publish(topic+"/result", b)
}

// overloadReason is twin.ReasonOverload; keep them equal (the packages do
// not import each other).
const overloadReason = "twin: overloaded, retry later"

// ingressLoop routes queued messages to twin or the cloud (docs/protocol.md
// 4.2), in arrival order.
func (e *EventBus) ingressLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-e.in:
			e.route(m.client, m.topic, m.payload)
		}
	}
}

// route sends a message to twin or the cloud and reports whether the bus
// took it.
func (e *EventBus) route(client, topic string, payload []byte) bool {
	d, msg := Ingress(client, topic, payload, e.cfg.Era)
	var err error
	if d == DestTwin {
		err = e.b.Send2Group(bus.GroupTwin, msg)
	} else {
		err = e.b.Send(bus.ModuleHub, msg)
	}
	switch {
	case err != nil && d == DestHub && errors.Is(err, bus.ErrUnknownModule):
		// No cloud configured: a node on its own has nowhere to upload to.
		e.dropBus.Add(1)
		e.log.Debug("mqtt upload dropped: no cloud module", "topic", topic)
	case err != nil:
		e.dropBus.Add(1)
		e.warn("mqtt ingress not delivered to the bus", "topic", topic, "err", err)
	case d == DestTwin:
		e.toTwin.Add(1)
	default:
		e.toHub.Add(1)
	}
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		// Checked first: the arguments alone cost an allocation a message.
		e.log.Debug("mqtt ingress", "topic", topic, "dest", d, "bytes", len(payload))
	}
	return err == nil
}

// warn logs at most one warning per 10 s; the counters keep the totals.
func (e *EventBus) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := e.lastWarn.Load()
	if now-last < int64(10*time.Second) || !e.lastWarn.CompareAndSwap(last, now) {
		return
	}
	e.log.Warn(msg, args...)
}

// Stats returns the counters. It is safe to call at any time.
func (e *EventBus) Stats() Stats {
	s := Stats{
		Received: e.received.Load(), ToTwin: e.toTwin.Load(), ToHub: e.toHub.Load(),
		DropQueueFull: e.dropQueue.Load(), DropOversize: e.dropSize.Load(), DropBus: e.dropBus.Load(), Overloaded: e.overloads.Load(),
		Published: e.published.Load(), PublishErrors: e.pubErrs.Load(), BadRequests: e.badReqs.Load(),
	}
	e.mu.Lock()
	s.Subscribed = len(e.filters)
	e.mu.Unlock()
	if e.broker != nil {
		s.Listening = e.broker.listening.Load()
		s.ListenFailures = e.broker.listenErr.Load()
	}
	if e.broker != nil && e.broker.started.Load() {
		s.Clients = e.broker.clients()
		s.ClientDrops = e.broker.hook.dropped.Load()
		s.AuthRefused = e.broker.hook.refused.Load()
	}
	if e.remote != nil {
		s.External = e.remote.connected()
		s.ExternalSubs = e.remote.subscribed.Load()
	}
	return s
}

// egress handles a message sent to module eventbus (docs/protocol.md 4.3).
func (e *EventBus) egress(ctx context.Context, msg bus.Message) {
	var err error
	switch msg.Route.Operation {
	case bus.OpPublish:
		if msg.Route.Resource == bus.ResNodeConnection {
			return // v0.3.0 spelling of a node connection event (docs/protocol.md 8 item 6)
		}
		err = e.publish(msg.Route.Resource, bus.ContentBytes(msg.Content))
	case bus.OpMessage:
		err = e.message(msg.Content)
	case bus.OpGetResult:
		if msg.Route.Resource != bus.ResAuthInfo {
			e.log.Debug("mqtt get_result for other than auth_info skipped", "resource", msg.Route.Resource)
			return
		}
		err = e.publish(prefixNode+e.cfg.NodeName+"/authInfo/get/result", msg.Content)
	case bus.OpSubscribe:
		err = e.subscribe(ctx, msg.Route.Resource)
	case bus.OpUnsubscribe:
		err = e.unsubscribe(ctx, msg.Route.Resource)
	case bus.OpConnect: // node connection events: nothing to do
		return
	default:
		e.log.Debug("mqtt egress: operation not handled", "op", msg.Route.Operation, "resource", msg.Route.Resource)
		return
	}
	if err != nil {
		e.log.Warn("mqtt egress failed", "op", msg.Route.Operation, "resource", msg.Route.Resource, "err", err)
	}
}

// publish sends payload on topic through every broker of the mode.
func (e *EventBus) publish(topic string, payload []byte) error {
	if !ValidTopic(topic) {
		e.badReqs.Add(1)
		return fmt.Errorf("mqtt: publish %q: %w", topic, ErrBadTopic)
	}
	var errs []error
	for _, t := range e.transports {
		if err := t.publish(topic, payload); err != nil {
			e.pubErrs.Add(1)
			errs = append(errs, err)
			continue
		}
		e.published.Add(1)
	}
	return errors.Join(errs...)
}

// message publishes the inner object of {"message":{"topic":...}} to its
// topic (docs/protocol.md 4.3).
func (e *EventBus) message(content []byte) error {
	topic, payload, err := MessagePayload(content)
	if err != nil {
		e.badReqs.Add(1)
		return err
	}
	return e.publish(topic, payload)
}

// MessagePayload decodes the content of a "message" operation (docs/protocol.md
// 4.3), {"message":{"topic":"<t>",...}}, also when it arrives as a JSON string,
// and returns the topic and the inner object encoded as KubeEdge encodes it: a
// Go map, so keys sorted.
func MessagePayload(content []byte) (topic string, payload []byte, err error) {
	var body struct {
		Message map[string]any `json:"message"`
	}
	if err := json.Unmarshal(bus.ContentBytes(content), &body); err != nil || body.Message == nil {
		return "", nil, fmt.Errorf("mqtt: message: %w", ErrBadContent)
	}
	topic, ok := body.Message["topic"].(string)
	if !ok {
		return "", nil, fmt.Errorf("mqtt: message without topic: %w", ErrBadContent)
	}
	payload, err = json.Marshal(body.Message)
	if err != nil {
		return "", nil, fmt.Errorf("mqtt: message: %w (%w)", ErrBadContent, err)
	}
	return topic, payload, nil
}

// subscribe adds a dynamic filter: stored first, so it survives a restart
// even if a broker refuses it now.
func (e *EventBus) subscribe(ctx context.Context, filter string) error {
	if !ValidFilter(filter) {
		e.badReqs.Add(1)
		return fmt.Errorf("mqtt: subscribe %q: %w", filter, ErrBadTopic)
	}
	if err := e.store.AddSubTopic(ctx, filter); err != nil {
		return err
	}
	e.mu.Lock()
	if !slices.Contains(e.filters, filter) {
		e.filters = append(e.filters, filter)
	}
	e.mu.Unlock()
	var errs []error
	for _, t := range e.transports {
		errs = append(errs, t.subscribe(filter))
	}
	e.log.Info("mqtt subscribed", "topic", filter)
	return errors.Join(errs...)
}

// unsubscribe removes a dynamic filter. The static topics stay subscribed.
func (e *EventBus) unsubscribe(ctx context.Context, filter string) error {
	if err := e.store.DeleteSubTopic(ctx, filter); err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	if slices.Contains(StaticTopics(), filter) {
		return nil
	}
	e.mu.Lock()
	n := len(e.filters)
	e.filters = slices.DeleteFunc(e.filters, func(f string) bool { return f == filter })
	removed := len(e.filters) != n
	rest := slices.Clone(e.filters)
	e.mu.Unlock()
	if !removed {
		return nil
	}
	var errs []error
	for _, t := range e.transports {
		errs = append(errs, t.unsubscribe(filter))
	}
	if e.broker != nil {
		// "a/#" stands for "a" too on the embedded broker: subscribe again
		// any remaining filter that shared an inline filter with it.
		gone := inlineFilters(filter)
		for _, f := range rest {
			if slices.ContainsFunc(inlineFilters(f), func(x string) bool { return slices.Contains(gone, x) }) {
				errs = append(errs, e.broker.subscribe(f))
			}
		}
	}
	e.log.Info("mqtt unsubscribed", "topic", filter)
	return errors.Join(errs...)
}
