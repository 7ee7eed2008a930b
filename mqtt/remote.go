package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// subQoS is the QoS of subscriptions to the external broker (docs/protocol.md
// 4.1).
const subQoS = 1

// pubQoS is the QoS of publishes to the external broker (docs/protocol.md 4.1).
const pubQoS = 1

// remote is EventBus's pair of paho clients to an external broker (docs/protocol.md
// 4.1): one subscribes, one publishes, as in KubeEdge. run keeps both
// connected; the subscriber subscribes again to every filter after each
// connect, since its sessions are clean.
type remote struct {
	cfg     ClientConfig
	log     *slog.Logger
	sub     paho.Client
	pub     paho.Client
	deliver func(client, topic string, payload []byte)

	mu      sync.Mutex
	filters []string // current filters, in subscription order

	subscribed atomic.Uint64 // connects after which every filter was subscribed

	subLost, pubLost chan struct{} // a connection was lost (capacity 1)
}

// newRemote prepares the clients. It connects nothing.
func newRemote(cfg ClientConfig, log *slog.Logger, deliver func(string, string, []byte)) (*remote, error) {
	r := &remote{cfg: cfg, log: log, deliver: deliver,
		subLost: make(chan struct{}, 1), pubLost: make(chan struct{}, 1)}
	tlsCfg, err := clientTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	// KubeEdge's default ids: hub-client-sub-<first 10 digits of the ms
	// time> (docs/protocol.md 4.1).
	stamp := strconv.FormatInt(time.Now().UnixMilli(), 10)[:10]
	subID, pubID := cfg.SubClientID, cfg.PubClientID
	if subID == "" {
		subID = "hub-client-sub-" + stamp
	}
	if pubID == "" {
		pubID = "hub-client-pub-" + stamp
	}
	r.sub = paho.NewClient(r.options(subID, tlsCfg, r.subLost).SetDefaultPublishHandler(r.onMessage))
	r.pub = paho.NewClient(r.options(pubID, tlsCfg, r.pubLost))
	return r, nil
}

// options are paho's options for one client. paho's own reconnect is off:
// keep reconnects with a cancellable, jittered back-off instead.
func (r *remote) options(id string, tlsCfg *tls.Config, lost chan struct{}) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(r.cfg.Server).
		SetClientID(id).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetWriteTimeout(r.cfg.PublishTimeout).
		SetConnectTimeout(connectTimeout).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			r.log.Warn("mqtt external connection lost", "client", id, "err", err)
			select {
			case lost <- struct{}{}:
			default:
			}
		})
	if r.cfg.Username != "" {
		o.SetUsername(r.cfg.Username).SetPassword(string(r.cfg.Password))
	}
	if tlsCfg != nil {
		o.SetTLSConfig(tlsCfg)
	}
	return o
}

// clientTLS builds the TLS config for ssl://, tls:// and mqtts:// servers
// or when a CA or client certificate is configured. It verifies the broker
// against CAFile (or the system roots) unless InsecureSkipVerify is set.
func clientTLS(cfg ClientConfig, log *slog.Logger) (*tls.Config, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("mqtt: external server: %w", err)
	}
	secure := u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts"
	if !secure && cfg.CAFile == "" && cfg.CertFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.InsecureSkipVerify {
		log.Warn("mqtt external broker certificate is not verified (external.insecureSkipVerify)", "server", cfg.Server)
	}
	if cfg.CAFile != "" {
		if c.RootCAs, err = loadPool(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: external client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// connectTimeout bounds one connect attempt, and so also how long Run may
// take to return while an attempt is under way.
const connectTimeout = 5 * time.Second

// run keeps both clients connected until ctx ends, then disconnects them.
// It returns when both are down.
func (r *remote) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.keep(ctx, r.sub, r.subLost, r.onConnect) })
	wg.Go(func() {
		r.keep(ctx, r.pub, r.pubLost, func(paho.Client) { r.log.Info("mqtt external publisher connected", "server", r.cfg.Server) })
	})
	wg.Wait()
}

// keep connects c, and again after each lost connection, waiting Backoff(n)
// after the n-th failed attempt in a row (docs/protocol.md 4.1: KubeEdge
// retries every 5 s), and calls up after each connect. An attempt in progress
// is allowed to finish (at most connectTimeout) so that no connection outlives
// Run.
func (r *remote) keep(ctx context.Context, c paho.Client, lost <-chan struct{}, up func(paho.Client)) {
	defer c.Disconnect(250)
	for n := 0; ctx.Err() == nil; {
		t := c.Connect()
		<-t.Done()
		if err := t.Error(); err != nil {
			if n == 0 || n%10 == 0 {
				r.log.Warn("mqtt external connect failed", "server", r.cfg.Server, "attempts", n+1, "err", err)
			}
			timer := time.NewTimer(Backoff(n, r.cfg.RetryInterval, r.cfg.MaxReconnect, rand.Float64))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			n++
			continue
		}
		n = 0
		up(c)
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
	}
}

// Backoff is the wait after the n-th failed connect in a row (n from 0):
// base doubled n times, capped at max, less a random part of up to half of
// it (rnd returns [0, 1)) so that many nodes do not retry in step.
func Backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - time.Duration(rnd()*float64(d)/2)
}

// onConnect subscribes to every filter after each (re)connect of the
// subscriber. It runs on keep's goroutine, so it ends before Run returns.
func (r *remote) onConnect(c paho.Client) {
	r.mu.Lock()
	filters := make(map[string]byte, len(r.filters))
	for _, f := range r.filters {
		filters[f] = subQoS
	}
	r.mu.Unlock()
	r.log.Info("mqtt external subscriber connected", "server", r.cfg.Server, "filters", len(filters))
	if len(filters) > 0 {
		// nil handler: every message goes to the default handler, once,
		// however many filters match it.
		t := c.SubscribeMultiple(filters, nil)
		if !t.WaitTimeout(r.cfg.PublishTimeout) || t.Error() != nil {
			r.log.Warn("mqtt external subscribe failed", "err", t.Error())
			return
		}
	}
	r.subscribed.Add(1)
}

// externalClient stands for every client of the external broker, whose
// ids the subscriber cannot see: they share one fair share of the twin
// path.
const externalClient = "(external broker)"

func (r *remote) onMessage(_ paho.Client, m paho.Message) {
	r.deliver(externalClient, m.Topic(), m.Payload())
}

// subscribe adds a filter, subscribing now if connected; otherwise the next
// connect subscribes.
func (r *remote) subscribe(filter string) error {
	r.mu.Lock()
	if !slices.Contains(r.filters, filter) {
		r.filters = append(r.filters, filter)
	}
	r.mu.Unlock()
	if !r.sub.IsConnectionOpen() {
		return nil
	}
	t := r.sub.Subscribe(filter, subQoS, nil)
	if !t.WaitTimeout(r.cfg.PublishTimeout) {
		return fmt.Errorf("mqtt: external subscribe %q: %w", filter, ErrTimeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("mqtt: external subscribe %q: %w", filter, err)
	}
	return nil
}

func (r *remote) unsubscribe(filter string) error {
	r.mu.Lock()
	r.filters = slices.DeleteFunc(r.filters, func(f string) bool { return f == filter })
	r.mu.Unlock()
	if !r.sub.IsConnectionOpen() {
		return nil
	}
	t := r.sub.Unsubscribe(filter)
	if !t.WaitTimeout(r.cfg.PublishTimeout) {
		return fmt.Errorf("mqtt: external unsubscribe %q: %w", filter, ErrTimeout)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("mqtt: external unsubscribe %q: %w", filter, err)
	}
	return nil
}

// publish sends with QoS 1, retain false (docs/protocol.md 4.1). It does not
// wait for the PUBACK, so a slow broker never holds up the bus; while the
// client is disconnected it fails at once instead of piling messages up in
// memory.
func (r *remote) publish(topic string, payload []byte) error {
	if !r.pub.IsConnectionOpen() {
		return fmt.Errorf("mqtt: external publish %q: %w", topic, ErrNotConnected)
	}
	t := r.pub.Publish(topic, pubQoS, false, payload)
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt: external publish %q: %w", topic, err)
		}
	default:
	}
	return nil
}

// connected reports whether the subscriber is connected.
func (r *remote) connected() bool { return r.sub.IsConnectionOpen() }
