package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"
)

// ErrNoNodeName is returned by New when Config.NodeName is empty.
var ErrNoNodeName = errors.New("hub: node name is empty")

// Stats are the client's counters.
type Stats struct {
	Connects      uint64 // links established
	DialFailures  uint64 // failed dials and certificate attempts
	FramesIn      uint64 // frames read from the cloud
	FramesOut     uint64 // frames written to the cloud, keepalives included
	Keepalives    uint64 // keepalives written
	BadFrames     uint64 // frames that were too large or not a message, dropped
	UnknownGroups uint64 // cloud messages with a group we do not route, dropped
	EdgeDrops     uint64 // cloud messages the bus refused (queue full)
	Coalesced     uint64 // statuses replaced by a newer one of the same resource
	OfflineDrops  uint64 // cloud-bound messages dropped while disconnected or queue full
	Renewals      uint64 // certificate renewals
	SilentLinks   uint64 // links ended because the cloud went silent (half-open)
}

// Client is EdgeHub: the websocket link to CloudHub. Create it with New and
// run it with Run.
type Client struct {
	cfg Config
	b   *bus.Bus
	log *slog.Logger
	q   bus.Inbox
	out *outbox

	wmu  sync.Mutex // serialises frame writes and guards wbuf
	wbuf []byte
	rbuf bytes.Buffer // the message being read (reader goroutine only)

	pmu   sync.Mutex // guards pings
	pings [4]bus.ID  // recent probe ids; their "ack" answers are not routed

	connected atomic.Bool
	errMu     sync.Mutex
	lastErr   error
	failLog   time.Time // last time a repeated failure was logged (Run goroutine only)
	rejoin    bool      // bootstrap again before the next dial (Run goroutine only)

	connects, dialFailures, framesIn, framesOut, keepalives  atomic.Uint64
	badFrames, unknownGroups, edgeDrops, coalesced, offDrops atomic.Uint64
	renewals, silent                                         atomic.Uint64

	// queued, when set (by tests), is called after each message the
	// offline path has handled.
	queued func()
	// dialConn, when set (by tests), replaces TCP and TLS: the websocket
	// handshake runs over the connection it returns.
	dialConn func(ctx context.Context) (net.Conn, error)
}

// New checks cfg, fills its defaults and registers the hub module
// (bus.ModuleHub in bus.GroupHub). It starts nothing. log may be nil.
func New(cfg Config, b *bus.Bus, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.NodeName == "" {
		return nil, ErrNoNodeName
	}
	cfg = cfg.Defaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Server == "" && cfg.PlacementURL == "" {
		return nil, errors.New("hub: no server and no placement URL")
	}
	if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
		return nil, fmt.Errorf("hub: register: %w", err)
	}
	return &Client{
		cfg: cfg,
		b:   b,
		log: log,
		q:   b.Queue(bus.ModuleHub),
		out: newOutbox(cfg.OfflineQueue),
	}, nil
}

// Config returns the effective config, defaults filled.
func (c *Client) Config() Config { return c.cfg }

// Connected reports whether the link is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Err returns the error that ended the last link or connection attempt,
// or nil.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.lastErr
}

func (c *Client) setErr(err error) {
	c.errMu.Lock()
	c.lastErr = err
	c.errMu.Unlock()
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Connects: c.connects.Load(), DialFailures: c.dialFailures.Load(),
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(), Keepalives: c.keepalives.Load(),
		BadFrames: c.badFrames.Load(), UnknownGroups: c.unknownGroups.Load(), EdgeDrops: c.edgeDrops.Load(),
		Coalesced: c.coalesced.Load(), OfflineDrops: c.offDrops.Load(), Renewals: c.renewals.Load(),
		SilentLinks: c.silent.Load(),
	}
}

// Run keeps the link up until ctx ends: it gets a certificate when needed,
// dials, serves the link, and after a failure waits a capped, jittered,
// exponential backoff that resets after a healthy link. While the link is
// down it keeps reading its bus queue (statuses are queued, the rest is
// answered or dropped; see the package doc). It returns nil when ctx
// ends, after its goroutines have exited.
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	for ctx.Err() == nil {
		cert, err := c.certificate(ctx)
		var ws *wsConn
		if err == nil {
			ws, err = c.dialQueueing(ctx, cert)
		}
		if ctx.Err() != nil {
			if ws != nil {
				ws.Close()
			}
			break
		}
		if err == nil {
			c.setErr(nil)
			start := time.Now()
			err = c.serve(ctx, ws, cert)
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, errRenewed) {
				attempt = 0
				continue // reconnect at once with the new certificate
			}
			lived := time.Since(start)
			if lived >= 2*c.cfg.Heartbeat {
				attempt = 0 // a healthy link: back off from the start again
			}
			c.log.Warn("cloud link lost", "err", err, "after", lived.Round(time.Millisecond))
		} else {
			c.dialFailures.Add(1)
			// With a token, a cloud that no longer trusts us or that we
			// no longer trust (reinstalled, new CA) gets a new join.
			c.rejoin = c.cfg.Token != "" && isTrustFailure(err)
		}
		c.setErr(err)
		attempt++
		d := c.backoff(attempt)
		if ws == nil {
			c.logFailure(err, d)
		}
		c.waitQueueing(ctx, d)
	}
	return nil
}

// backoff returns the wait before attempt n (1-based): BackoffMin doubled
// per attempt up to BackoffMax, then jittered to between half and all of
// it so that nodes restarted together do not reconnect in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffMin
	for i := 1; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

// logFailure logs a failed attempt: at most once a minute at Warn, the
// rest at Debug, so an outage does not flood the log.
func (c *Client) logFailure(err error, wait time.Duration) {
	if now := time.Now(); now.Sub(c.failLog) >= time.Minute {
		c.failLog = now
		c.log.Warn("cannot reach the cloud, retrying (logged once a minute)", "err", err, "retry_in", wait.Round(time.Millisecond))
		return
	}
	c.log.Debug("cannot reach the cloud", "err", err, "retry_in", wait)
}

// certificate returns the node certificate to present, getting one with
// the token when there is no valid one on disk. It returns nil (no
// client certificate) when there is neither a certificate file nor a
// token: a v0.3 cloud does not ask for one.
func (c *Client) certificate(ctx context.Context) (*tls.Certificate, error) {
	cert, err := c.loadCert()
	if err == nil && !c.rejoin {
		return &cert, nil
	}
	if err == nil {
		err = errors.New("the cloud and the node do not trust each other's certificates")
	}
	c.rejoin = false
	if c.cfg.Token == "" {
		if _, serr := os.Stat(c.cfg.CertFile); errors.Is(serr, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrNoCertificate, err)
	}
	c.log.Info("getting a node certificate with the token", "cert_server", c.cfg.CertServer, "reason", err)
	bctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	if err := bootstrap(bctx, c.cfg); err != nil {
		return nil, err
	}
	cert, err = c.loadCert()
	if err != nil {
		return nil, err
	}
	c.log.Info("node certificate saved", "file", c.cfg.CertFile, "not_after", cert.Leaf.NotAfter)
	return &cert, nil
}

func (c *Client) loadCert() (tls.Certificate, error) {
	cfg := c.cfg
	if cfg.Era == bus.EraV03 && cfg.Token == "" {
		// v0.3 certificates come from certgen.sh with a fixed CN
		// (docs/protocol.md 2.1): only validity is checked.
		cfg.NodeName = ""
	}
	return loadNodeCert(cfg, time.Now())
}

// dialQueueing dials while it keeps handling the bus queue.
func (c *Client) dialQueueing(ctx context.Context, cert *tls.Certificate) (*wsConn, error) {
	type result struct {
		ws  *wsConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		ws, err := c.dial(ctx, cert)
		done <- result{ws, err}
	}()
	for {
		select {
		case <-c.q.Ready():
			if m, ok := c.q.Next(); ok {
				c.offline(m)
			}
		case r := <-done:
			return r.ws, r.err
		}
	}
}

// waitQueueing waits d (or until ctx ends) while it handles the bus queue.
func (c *Client) waitQueueing(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-c.q.Ready():
			if m, ok := c.q.Next(); ok {
				c.offline(m)
			}
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// offline handles a cloud-bound message while the link is down: a status
// or device report is queued (statuses coalesced per resource; a sync one
// is also answered with an error at once); a sync request is answered at once
// with an error so that its sender does not wait for a timeout; anything
// else is dropped and counted: the cloud resends what it needs, e.g.
// unacknowledged objects (docs/protocol.md 2.4).
func (c *Client) offline(m bus.Message) {
	if c.queued != nil {
		defer c.queued()
	}
	if isStatus(m) || isDeviceReport(m) {
		c.enqueue(m)
		// The status goes out after the outage; its sender need not wait
		// for that.
		c.failSync(m, "cloud disconnected: queued for the cloud")
		return
	}
	c.offDrops.Add(1)
	if m.Header.Sync {
		c.failSync(m, "cloud disconnected")
	}
}

// enqueue puts m in the outbox, answering the waiter of a replaced or
// refused sync message.
func (c *Client) enqueue(m bus.Message) {
	old, replaced, ok := c.out.put(m)
	switch {
	case !ok:
		c.offDrops.Add(1)
		if m.Header.Sync {
			c.failSync(m, "cloud queue full")
		}
	case replaced:
		c.coalesced.Add(1)
		if old.Header.Sync {
			c.failSync(old, "superseded by a newer status")
		}
	}
}

// failSync answers a sync request with an error message (docs/protocol.md 1.3).
func (c *Client) failSync(m bus.Message, reason string) {
	if c.b.IsWaiting(m.Header.ID) {
		c.b.SendResp(m.ErrorResp(bus.ModuleHub, reason))
	}
}

// publish tells the meta, twin and bus groups that the cloud came or went
// (docs/protocol.md 2.4; KubeEdge v0.3.0 docs/modules/edge/edgehub.md,
// "Publish Client Info"), and then the node status module, which registers
// the node at once on a new link. Meta hears first: by the time its
// request reaches meta's queue,
// meta knows the cloud is there.
func (c *Client) publish(state string) {
	for _, g := range []bus.Group{bus.GroupMeta, bus.GroupTwin, bus.GroupBus} {
		msg := bus.NewMessage(bus.ModuleEdgeHub, g, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(state))
		if err := c.b.Send2Group(g, msg); err != nil && !errors.Is(err, bus.ErrUnknownGroup) {
			c.log.Warn("connection event not delivered", "group", g, "state", state, "err", err)
		}
	}
	if c.b.Has(bus.ModuleNodeStatus) {
		msg := bus.NewMessage(bus.ModuleEdgeHub, "", bus.OpConnect, bus.ResNodeConnection, bus.JSONString(state))
		if err := c.b.Send(bus.ModuleNodeStatus, msg); err != nil {
			c.log.Warn("connection event not delivered", "module", bus.ModuleNodeStatus, "state", state, "err", err)
		}
	}
}
