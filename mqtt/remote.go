package mqtt

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// subQoS is the QoS of subscriptions to the external broker (spec 4.1).
const subQoS = 1

// pubQoS is the QoS of publishes to the external broker (spec 4.1).
const pubQoS = 1

// remote is EventBus's pair of paho clients to an external broker (spec
// 4.1): one subscribes, one publishes, as in KubeEdge. Both reconnect on
// their own; the subscriber subscribes again to every filter after each
// connect, since its sessions are clean.
type remote struct {
	cfg     ClientConfig
	log     *slog.Logger
	sub     paho.Client
	pub     paho.Client
	deliver func(topic string, payload []byte)

	mu      sync.Mutex
	filters []string // current filters, in subscription order

	subscribed atomic.Uint64 // connects after which every filter was subscribed
}

// newRemote prepares the clients. It connects nothing.
func newRemote(cfg ClientConfig, log *slog.Logger, deliver func(string, []byte)) (*remote, error) {
	r := &remote{cfg: cfg, log: log, deliver: deliver}
	tlsCfg, err := clientTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	// KubeEdge's default ids: hub-client-sub-<first 10 digits of the ms
	// time> (spec 4.1).
	stamp := strconv.FormatInt(time.Now().UnixMilli(), 10)[:10]
	subID, pubID := cfg.SubClientID, cfg.PubClientID
	if subID == "" {
		subID = "hub-client-sub-" + stamp
	}
	if pubID == "" {
		pubID = "hub-client-pub-" + stamp
	}
	r.sub = paho.NewClient(r.options(subID, tlsCfg).
		SetDefaultPublishHandler(r.onMessage).
		SetOnConnectHandler(r.onConnect))
	r.pub = paho.NewClient(r.options(pubID, tlsCfg).
		SetOnConnectHandler(func(paho.Client) { log.Info("mqtt external publisher connected", "server", cfg.Server) }))
	return r, nil
}

func (r *remote) options(id string, tlsCfg *tls.Config) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(r.cfg.Server).
		SetClientID(id).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(r.cfg.RetryInterval).
		SetMaxReconnectInterval(r.cfg.MaxReconnect).
		SetWriteTimeout(r.cfg.PublishTimeout).
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			r.log.Warn("mqtt external connection lost", "client", id, "err", err)
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

// start begins connecting both clients; they retry in the background.
func (r *remote) start() {
	r.sub.Connect()
	r.pub.Connect()
}

// stop disconnects both clients and waits for their goroutines.
func (r *remote) stop() {
	r.sub.Disconnect(250)
	r.pub.Disconnect(250)
}

// onConnect subscribes to every filter after each (re)connect. paho calls
// it on a goroutine of its own, so waiting for the SUBACK here is fine.
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

func (r *remote) onMessage(_ paho.Client, m paho.Message) {
	r.deliver(m.Topic(), m.Payload())
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

// publish sends with QoS 1, retain false (spec 4.1). It does not wait for
// the PUBACK, so a slow broker never holds up the bus; while the client is
// disconnected it fails at once instead of piling messages up in memory.
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
