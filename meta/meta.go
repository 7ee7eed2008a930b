package meta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// Defaults and limits of Config.
const (
	// DefaultRemoteQueryTimeout is KubeEdge's remoteQueryTimeout
	// (docs/protocol.md 3.3).
	DefaultRemoteQueryTimeout = 60 * time.Second
	// MinPodStatusSyncInterval is the default and the minimum of the v0.3
	// podstatus resync interval (docs/protocol.md 3.2, DefaultSyncInterval).
	MinPodStatusSyncInterval = 60 * time.Second
	// DefaultMaxRemote bounds the remote operations in flight.
	DefaultMaxRemote = 16
)

// Config configures MetaManager. The zero value gives the defaults.
type Config struct {
	// Era picks era-specific behaviour (v0.3 insert keeps an existing row,
	// the periodic podstatus resync, which queries go to the cloud). Set by
	// main from the top-level era.
	Era bus.Era `yaml:"-"`
	// NodeName is this node's name, for logs. Set by main.
	NodeName string `yaml:"-"`
	// RemoteQueryTimeout is how long a remote operation waits for the
	// cloud. Default 60 s.
	RemoteQueryTimeout time.Duration `yaml:"remoteQueryTimeout"`
	// PodStatusSyncInterval is KubeEdge's meta.sync.podstatus.interval: the
	// period of the v0.3 podstatus resync. Default and minimum 60 s;
	// smaller values are raised to 60 s.
	PodStatusSyncInterval time.Duration `yaml:"podStatusSyncInterval"`
	// MaxRemote bounds the remote operations in flight. Default 16.
	MaxRemote int `yaml:"maxRemote"`
}

// Defaults returns c with zero fields filled in. It does not raise a small
// PodStatusSyncInterval; New does, with a log line.
func (c Config) Defaults() Config {
	if c.RemoteQueryTimeout == 0 {
		c.RemoteQueryTimeout = DefaultRemoteQueryTimeout
	}
	if c.PodStatusSyncInterval == 0 {
		c.PodStatusSyncInterval = MinPodStatusSyncInterval
	}
	if c.MaxRemote == 0 {
		c.MaxRemote = DefaultMaxRemote
	}
	return c
}

// Validate returns every problem of c, each naming its key under "meta.".
func (c Config) Validate() []error {
	var errs []error
	if c.RemoteQueryTimeout < 0 {
		errs = append(errs, fmt.Errorf("meta.remoteQueryTimeout: %v must not be negative", c.RemoteQueryTimeout))
	}
	if c.PodStatusSyncInterval < 0 {
		errs = append(errs, fmt.Errorf("meta.podStatusSyncInterval: %v must not be negative", c.PodStatusSyncInterval))
	}
	if c.MaxRemote < 0 {
		errs = append(errs, fmt.Errorf("meta.maxRemote: %d must not be negative", c.MaxRemote))
	}
	return errs
}

// Stats are MetaManager's counters, for metrics.
type Stats struct {
	// In counts messages received; Out messages sent (or handed to a
	// waiter); Errors error messages sent back and failed operations;
	// SendFailures sends the bus refused (full queue, unknown module).
	In, Out, Errors, SendFailures uint64
}

// Meta is MetaManager. Create it with New, then call Run.
type Meta struct {
	cfg Config
	b   *bus.Bus
	d   *db.DB
	log *slog.Logger

	connected atomic.Bool
	remoteSem chan struct{} // semaphore of remote operations
	wg        sync.WaitGroup

	fmu     sync.Mutex
	flights map[string][]bus.Message // remote queries in flight: who else waits

	in, out, errs, sendFails atomic.Uint64
	lastSendLog              atomic.Int64 // unix nanos of the last logged send failure
}

// New registers module metamanager in group meta on b and returns
// MetaManager. It starts nothing.
func New(cfg Config, b *bus.Bus, d *db.DB, log *slog.Logger) (*Meta, error) {
	if b == nil || d == nil {
		return nil, errors.New("meta: new: nil bus or db")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("meta: new: %w", errors.Join(errs...))
	}
	cfg = cfg.Defaults()
	if cfg.PodStatusSyncInterval < MinPodStatusSyncInterval {
		log.Info("podStatusSyncInterval raised to the minimum",
			"configured", cfg.PodStatusSyncInterval, "used", MinPodStatusSyncInterval)
		cfg.PodStatusSyncInterval = MinPodStatusSyncInterval
	}
	if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
		return nil, fmt.Errorf("meta: new: %w", err)
	}
	return &Meta{
		cfg:       cfg,
		b:         b,
		d:         d,
		log:       log,
		remoteSem: make(chan struct{}, cfg.MaxRemote),
	}, nil
}

// Run handles messages until ctx ends, then waits for the remote
// operations in flight and returns nil.
func (m *Meta) Run(ctx context.Context) error {
	defer m.wg.Wait()
	q := m.b.Queue(bus.ModuleMeta)
	var tick <-chan time.Time
	if m.cfg.Era == bus.EraV03 {
		// v0.3 resyncs podstatus periodically; v1.23 removed it
		// (docs/protocol.md 3.3).
		t := time.NewTicker(m.cfg.PodStatusSyncInterval)
		defer t.Stop()
		tick = t.C
	}
	m.log.Debug("running", "node", m.cfg.NodeName, "era", m.cfg.Era.String())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.Ready():
			if msg, ok := q.Next(); ok {
				m.in.Add(1)
				m.handle(ctx, msg)
			}
		case <-tick:
			if m.connected.Load() {
				m.syncPodStatus(ctx)
			}
		}
	}
}

// Connected reports whether the cloud is connected, as last told by the
// hub.
func (m *Meta) Connected() bool { return m.connected.Load() }

// Stats returns the counters.
func (m *Meta) Stats() Stats {
	return Stats{In: m.in.Load(), Out: m.out.Load(), Errors: m.errs.Load(), SendFailures: m.sendFails.Load()}
}

// send queues msg for module to without blocking; a failure is counted
// and logged at most every 10 s.
func (m *Meta) send(to bus.Module, msg bus.Message) {
	if err := m.b.Send(to, msg); err != nil {
		m.sendFailed(to, msg, err)
		return
	}
	m.out.Add(1)
}

func (m *Meta) sendFailed(to bus.Module, msg bus.Message, err error) {
	m.sendFails.Add(1)
	now := time.Now().UnixNano()
	last := m.lastSendLog.Load()
	if now-last < int64(10*time.Second) || !m.lastSendLog.CompareAndSwap(last, now) {
		return
	}
	m.log.Warn("send failed (logged at most every 10 s)", "to", string(to),
		"operation", string(msg.Route.Operation), "resource", msg.Route.Resource, "err", err,
		"failures", m.sendFails.Load())
}

// reply answers an edge request: a sync request through its waiting
// SendSync, an asynchronous query on the asker's queue. A sync request
// whose asker stopped waiting (its own timeout ran out before the cloud
// answered) gets no answer: putting it on the asker's queue would hand it
// a reply to a question it no longer asks. Nor does an asynchronous report
// (a status, patch, insert or delete sent with Send): its sender does not
// read answers (edged's periodic pod statuses), so an answer, error or
// not, would only be dropped from its queue.
func (m *Meta) reply(req, resp bus.Message) {
	if req.Header.Sync {
		if m.b.IsWaiting(req.Header.ID) && m.b.SendResp(resp) {
			m.out.Add(1)
		}
		return
	}
	if req.Route.Operation == bus.OpQuery {
		m.send(bus.Module(req.Route.Source), resp)
	}
}

// replyOK answers a successful edge request with "OK" if its asker waits
// for an answer (docs/protocol.md 3.2: OK to edged).
func (m *Meta) replyOK(req bus.Message) {
	if req.Header.Sync {
		m.reply(req, req.Resp(bus.OKContent))
	}
}

// fail answers req with an error message: to the hub for a cloud message,
// else to the sending module (docs/protocol.md 1.3, feedbackError).
func (m *Meta) fail(req bus.Message, reason string) {
	m.errs.Add(1)
	m.log.Debug("error reply", "operation", string(req.Route.Operation),
		"resource", req.Route.Resource, "source", string(req.Route.Source), "reason", reason)
	resp := req.ErrorResp(bus.ModuleMeta, reason)
	if isCloud(req.Route.Source) {
		m.send(bus.ModuleHub, resp)
		return
	}
	m.reply(req, resp)
}

// ack acknowledges a cloud message with "OK" (docs/protocol.md 2.5, 8 item 4,
// 9).
func (m *Meta) ack(req bus.Message) {
	m.send(bus.ModuleHub, req.Resp(bus.OKContent))
}

// isCloud reports whether src is a cloud module (docs/protocol.md 1.5): its
// messages came through the hub, and answers to them go back through it.
func isCloud(src bus.Module) bool {
	switch src {
	case bus.SourceController, bus.SourceEdgeController, bus.SourceDeviceController, bus.SourceEdgeMgr,
		bus.SourceCloudHub, bus.SourcePolicyController, bus.SourceDynamicController, bus.SourceSyncController,
		bus.SourceTaskManager, bus.SourceNodeUpgrade, bus.SourceRouterEventBus, bus.SourceRouterServiceBus,
		bus.SourceFuncMgr:
		return true
	}
	return false
}
