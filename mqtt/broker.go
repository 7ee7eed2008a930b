package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// inlineSubID is the one subscription identifier every inline subscription
// of EventBus uses. The broker collects the inline subscribers of a message
// in a map keyed by identifier, so a message that matches several of our
// filters reaches the handler once.
const inlineSubID = 1

// broker is the embedded MQTT broker (docs/protocol.md 4.1 internal mode).
// edgenode publishes and subscribes through the broker's inline client, with no
// socket.
type broker struct {
	cfg       BrokerConfig
	qos       byte
	retain    bool
	log       *slog.Logger
	srv       *mochi.Server
	hook      *authHook
	subsHook  subsHook
	subs      subsCache
	ln        *listeners.TCP
	deliver   func(client, topic string, payload []byte)
	started   atomic.Bool // serve succeeded
	listening atomic.Bool // listen succeeded
	listenErr atomic.Uint64
	loopback  bool

	pending      *pendingSet   // connections that have not sent CONNECT yet
	connTimeouts atomic.Uint64 // connections closed for not sending CONNECT in time
}

// newBroker checks the listen address and credentials and prepares the
// broker. It binds nothing.
func newBroker(cfg Config, log *slog.Logger, deliver func(string, string, []byte)) (*broker, error) {
	loopback, err := IsLoopback(cfg.Internal.Listen)
	if err != nil {
		return nil, err
	}
	users, err := loadCredentials(cfg.Internal)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(cfg.Internal.CredentialsFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("mqtt credentials file is readable by others; chmod 600 it", "file", cfg.Internal.CredentialsFile)
	}
	if len(users) == 0 {
		if !loopback {
			return nil, fmt.Errorf("mqtt: listen %s: %w", cfg.Internal.Listen, ErrNoCredentials)
		}
		users = nil // anonymous on loopback
	}
	var tlsCfg *tls.Config
	if cfg.Internal.CertFile != "" {
		if tlsCfg, err = serverTLS(cfg.Internal); err != nil {
			return nil, err
		}
	}
	if !loopback && tlsCfg == nil {
		if !cfg.Internal.AllowPlaintext {
			return nil, fmt.Errorf("mqtt: listen %s: %w", cfg.Internal.Listen, ErrPlaintext)
		}
		log.Warn("mqtt broker listens beyond loopback without TLS: passwords and messages cross the network in clear",
			"addr", cfg.Internal.Listen, "setting", "mqtt.internal.allowPlaintext")
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.Internal.MaxPacket)
	caps.MaximumClientWritesPending = int32(cfg.Internal.ClientQueue)
	caps.MaximumClients = int64(cfg.Internal.MaxClients)
	caps.MaximumInflight = uint16(cfg.Internal.MaxInflight)
	caps.TopicAliasMaximum = DefaultTopicAliases
	caps.MaximumSessionExpiryInterval = 3600
	caps.MaximumMessageExpiryInterval = 3600
	caps.ReceiveMaximum = 256
	srv := mochi.New(&mochi.Options{
		InlineClient: true,
		Logger:       slog.New(mochiHandler{log.Handler()}),
		Capabilities: caps,
	})
	if err := slowLoop(srv, cfg.Internal.SysInterval, cfg.Internal.Housekeeping); err != nil {
		return nil, err
	}
	b := &broker{
		cfg: cfg.Internal, qos: byte(cfg.QoS), retain: cfg.Retain, log: log, srv: srv,
		pending: &pendingSet{max: cfg.Internal.MaxPending},
		hook:    &authHook{users: users, acl: acl{devices: cfg.Internal.DeviceACL}}, deliver: deliver, loopback: loopback,
		ln: listeners.NewTCP(listeners.Config{ID: "edgenode", Address: cfg.Internal.Listen, TLSConfig: tlsCfg}),
	}
	return b, nil
}

// serverTLS builds the listener's TLS config.
func serverTLS(cfg BrokerConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker certificate: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.ClientCAFile != "" {
		pool, err := loadPool(cfg.ClientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("mqtt: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("mqtt: CA %s: %w", file, ErrNoCerts)
	}
	return pool, nil
}

// serve starts the broker's goroutines, with no listener yet: the inline
// client works at once, before and without a bound port.
func (b *broker) serve() error {
	b.hook.clients, b.hook.maxSessions = b.srv.Clients, 2*b.cfg.MaxClients
	if err := b.srv.AddHook(b.hook, nil); err != nil {
		return fmt.Errorf("mqtt: broker hook: %w", err)
	}
	if err := b.srv.AddHook(&b.subsHook, nil); err != nil {
		return fmt.Errorf("mqtt: broker hook: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("mqtt: serve: %w", err)
	}
	if b.cfg.SysInterval <= 0 {
		dropSysTopics(b.srv)
	}
	b.started.Store(true)
	return nil
}

// dropSysTopics deletes the $SYS topics that mochi-mqtt v2.7.9 publishes,
// retained, once when it starts (Server.Serve), whatever its interval.
// With sysInterval 0 the broker then publishes none, as configured,
// rather than a snapshot of its first instant that never changes. The
// broker's housekeeping also copies every retained message twice a
// minute (clearExpiredRetainedMessages): these 20 were 38 KiB of an idle
// node's 120 KiB of garbage a minute. No client can see them first: the
// listener is not bound yet.
func dropSysTopics(srv *mochi.Server) {
	for topic := range srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, mochi.SysPrefix+"/") {
			srv.Topics.RetainMessage(packets.Packet{TopicName: topic, FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}})
		}
	}
}

// listen binds the listener and accepts clients on it. It may be called
// again after a failure.
func (b *broker) listen() error {
	if err := b.srv.AddListener(b.ln); err != nil {
		return fmt.Errorf("mqtt: listen %s: %w", b.cfg.Listen, err)
	}
	b.srv.Listeners.Serve(b.ln.ID(), b.establish)
	b.listening.Store(true)
	b.log.Info("mqtt broker listening", "addr", b.ln.Address(), "tls", b.cfg.CertFile != "", "anonymous", b.hook.users == nil)
	return nil
}

// stop disconnects every client, closes the listener and waits for the
// client goroutines.
func (b *broker) stop() {
	if b.started.Load() {
		b.srv.Close()
	}
}

// addr is the bound address, or "" before listen succeeded.
func (b *broker) addr() string {
	if !b.listening.Load() {
		return ""
	}
	return b.ln.Address()
}

// onMessage is the inline subscription handler. It runs on the publishing
// client's goroutine, so it only hands the message on (deliver never
// blocks). Our own publishes are skipped: KubeEdge's internal mode injects
// edge publishes into the broker's backend, where its hook never sees them
// (docs/protocol.md 4.1).
func (b *broker) onMessage(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
	if pk.Origin == mochi.InlineClientId {
		return
	}
	b.deliver(pk.Origin, pk.TopicName, pk.Payload)
}

func (b *broker) subscribe(filter string) error {
	for _, f := range inlineFilters(filter) {
		if err := b.srv.Subscribe(f, inlineSubID, b.onMessage); err != nil {
			return fmt.Errorf("mqtt: internal subscribe %q: %w", filter, err)
		}
	}
	return nil
}

func (b *broker) unsubscribe(filter string) error {
	for _, f := range inlineFilters(filter) {
		if err := b.srv.Unsubscribe(f, inlineSubID); err != nil {
			return fmt.Errorf("mqtt: internal unsubscribe %q: %w", filter, err)
		}
	}
	return nil
}

// inlineFilters are the inline subscriptions that stand for filter. "a/#"
// also matches "a" (MQTT 3.1.1 4.7.1.2), which mochi-mqtt v2.7.9 honours
// for its clients but not for inline subscriptions, so such a filter gets
// its parent as a second inline filter. Both share inlineSubID, so a
// message is still delivered once.
func inlineFilters(filter string) []string {
	if parent, ok := strings.CutSuffix(filter, "/#"); ok {
		return []string{filter, parent}
	}
	return []string{filter}
}

func (b *broker) publish(topic string, payload []byte) error {
	if err := b.srv.Publish(topic, payload, b.retain, b.qos); err != nil {
		return fmt.Errorf("mqtt: internal publish %q: %w", topic, err)
	}
	return nil
}

// clients is the number of connected MQTT clients.
func (b *broker) clients() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// establish serves one accepted connection; the listener runs it on a
// goroutine of its own. It bounds what clients that never send CONNECT can
// hold: each waits at most ConnectTimeout, and when MaxPending wait, the
// oldest is closed to make room, so a client that sends CONNECT at once
// still gets in during a flood of silent sockets. mochi-mqtt v2.7.9
// (server.go attachClient) waits for CONNECT without a deadline, after it
// has allocated the client's buffers and write goroutine, and checks
// MaximumClients only after CONNECT. The deadline also covers the TLS
// handshake, which runs on the first read. Once CONNECT is read, mochi
// replaces the deadline by the keepalive's.
func (b *broker) establish(listener string, c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout)); err != nil {
		c.Close()
		return nil
	}
	p := b.pending.add(c)
	err := b.srv.EstablishConnection(listener, p)
	ok := b.pending.connected(p)
	b.pending.remove(p)
	if !ok {
		// It never got past CONNECT. The listener would log each of these
		// at Warn; a flood of silent sockets is counted instead.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.connTimeouts.Add(1)
		}
		b.log.Debug("mqtt connection closed before CONNECT", "remote", c.RemoteAddr().String(), "err", err)
		return nil
	}
	return err
}

// pendingConn is a connection whose CONNECT the broker has not read yet.
type pendingConn struct {
	net.Conn
	set        *pendingSet
	prev, next *pendingConn
	done       bool // out of the set; guarded by set.mu
	evicted    bool // closed to make room; guarded by set.mu
}

// pendingSet holds the pending connections, oldest first, at most max.
type pendingSet struct {
	max     int
	mu      sync.Mutex
	head    pendingConn // sentinel of a ring list
	n       int
	evicted atomic.Uint64
}

// add registers c, closing the oldest pending connection when max are
// pending already.
func (s *pendingSet) add(c net.Conn) *pendingConn {
	p := &pendingConn{Conn: c, set: s}
	var old *pendingConn
	s.mu.Lock()
	if s.head.next == nil {
		s.head.next, s.head.prev = &s.head, &s.head
	}
	if s.n >= s.max {
		old = s.head.next
		s.unlink(old)
		old.evicted = true
	}
	p.prev, p.next = s.head.prev, &s.head
	s.head.prev.next = p
	s.head.prev = p
	s.n++
	s.mu.Unlock()
	if old != nil {
		s.evicted.Add(1)
		old.Conn.Close()
	}
	return p
}

// remove takes p out of the set, once: its CONNECT was read
// (authHook.OnConnect) or it ended.
func (s *pendingSet) remove(p *pendingConn) {
	s.mu.Lock()
	if !p.done {
		s.unlink(p)
	}
	s.mu.Unlock()
}

func (s *pendingSet) unlink(p *pendingConn) {
	p.prev.next, p.next.prev = p.next, p.prev
	p.prev, p.next, p.done = nil, nil, true
	s.n--
}

// connected reports whether p's CONNECT was read.
func (s *pendingSet) connected(p *pendingConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.done && !p.evicted
}

func (s *pendingSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// BrokerStats are the embedded broker's connection counters.
type BrokerStats struct {
	Pending         int64  // connections that have not sent CONNECT yet
	PendingRefused  uint64 // connections closed before CONNECT to make room: MaxPending reached
	ConnectTimeouts uint64 // connections closed: no CONNECT within ConnectTimeout
	ACLRefused      uint64 // publishes, subscriptions and deliveries the topic ACL refused
}

// BrokerStats returns the embedded broker's connection counters; zero in
// external mode. It is safe to call at any time.
func (e *EventBus) BrokerStats() BrokerStats {
	if e.broker == nil {
		return BrokerStats{}
	}
	b := e.broker
	return BrokerStats{Pending: int64(b.pending.len()), PendingRefused: b.pending.evicted.Load(),
		ConnectTimeouts: b.connTimeouts.Load(), ACLRefused: b.hook.aclRefused.Load()}
}
