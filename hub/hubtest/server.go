// Package hubtest is an in-process CloudHub for tests, in the manner of
// net/http/httptest: NewServer starts a TLS websocket server on
// 127.0.0.1:0 with its own ECDSA CA, and the certificate endpoints of
// KubeEdge's port 10002 (/ca.crt, /edge.crt with token checks) on a
// second port.
//
// It is at least as strict as a real CloudHub, so that what a real cloud
// refuses fails our tests too. It upgrades with gorilla/websocket's
// Upgrader and its default CheckOrigin (a foreign Origin gets 403), and it
// writes each message as CloudHub's WriteJSON does, through gorilla's
// 4 KiB write buffer, so that longer messages arrive fragmented (KubeEdge
// v1.23.1 pkg/viaduct/pkg/server/ws.go, pkg/viaduct/pkg/lane/wsnopack.go).
//
// It behaves like the cloud of the configured era (docs/protocol.md 2.1, 2.4):
//   - v1.23: the upgrade must carry the node_id, project_id and
//     ConnectionUse: msg headers and a client certificate signed by the
//     CA; resource messages pushed with insert, update or delete are
//     resent every Config.Retransmit (5 s) until the node answers with
//     operation "response" and their id as parent; viaduct ping, pong and
//     config messages are answered with "ack".
//   - v0.3: the identity comes from the path /<project>/<node>/events, a
//     client certificate is asked for but not verified, nothing is resent
//     and nothing is answered.
//
// A test pushes messages (Push, PushFrame), reads what the node sent
// (Records, WaitFor), answers queries (Config.Answer), drops the link
// (Drop), makes it half-open (HalfOpen: TCP stays up, the server neither
// reads nor writes), takes the whole server away and back (Pause,
// Resume), and makes join tokens (Token). Close stops everything and
// waits for the server's goroutines.
package hubtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"edgenode/bus"
)

// Config configures a Server. The zero value is a v1.23 cloud.
type Config struct {
	Era bus.Era
	// Retransmit is the resend period of unacknowledged resource messages
	// (v1.23). Default 5 s (docs/protocol.md 2.4).
	Retransmit time.Duration
	// CertValidity is the lifetime of node certificates. Default 365 days.
	CertValidity time.Duration
	// Authorize requires the client certificate's CN to be
	// system:node:<node_id> (v1.23 CloudHub authorization).
	Authorize bool
	// Binary makes the server write binary frames (as v1.0 did) instead
	// of text frames.
	Binary bool
	// Answer, when set, is called for every message the node sends that
	// is not a keepalive or an answer; if it returns true its message is
	// written back, e.g. the response to a remote query. Otherwise a
	// v1.23 server's API side answers node, nodepatch, podpatch, lease
	// and pod delete requests (see api.go).
	Answer func(req bus.Message) (bus.Message, bool)
}

// Record is one message the server received.
type Record struct {
	Msg    bus.Message
	Node   string // node id of the connection
	Time   time.Time
	Binary bool // the frame was a binary frame (KubeEdge writes text)
}

// Server is an in-process CloudHub. Its methods are safe for concurrent
// use.
type Server struct {
	// Addr is the websocket address HOST:PORT (hub.Config.Server).
	Addr string
	// CertURL is the base URL of the certificate endpoints
	// (hub.Config.CertServer).
	CertURL string

	cfg    Config
	ca     *authority
	wsTLS  *tls.Config
	crtTLS *tls.Config
	wsSrv  *http.Server
	up     websocket.Upgrader
	crtSrv *http.Server
	// crtOpen counts the open connections to the certificate endpoints.
	crtOpen atomic.Int64

	mu        sync.Mutex
	wsL, crtL net.Listener
	conns     map[*conn]struct{}
	cur       *conn
	records   []Record
	badFrames int
	pending   map[bus.ID]*pend
	backlog   []bus.Message // pushed while no usable connection
	seq       int
	connects  int
	issued    int
	rejected  int
	api       api
	// closeCodes are the websocket close codes of the links that ended
	// (1006 when the node closed TCP without a close frame).
	closeCodes []int
	changed    chan struct{}
	closed     bool
	stop       chan struct{}
	wg         sync.WaitGroup
}

type pend struct {
	msg   bus.Message
	seq   int
	sends int
}

// conn is one node connection.
type conn struct {
	ws      *websocket.Conn
	node    string
	project string
	wmu     sync.Mutex
	half    chan struct{} // closed by HalfOpen
	done    chan struct{} // closed when the connection is dropped
	once    sync.Once
	halfOne sync.Once
}

func (c *conn) drop() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

func (c *conn) isHalf() bool {
	select {
	case <-c.half:
		return true
	default:
		return false
	}
}

// NewServer starts a server. It panics if it cannot listen, as
// httptest.NewServer does.
func NewServer(cfg Config) *Server {
	if cfg.Retransmit <= 0 {
		cfg.Retransmit = 5 * time.Second
	}
	if cfg.CertValidity <= 0 {
		cfg.CertValidity = 365 * 24 * time.Hour
	}
	ca, err := newAuthority()
	if err != nil {
		panic("hubtest: " + err.Error())
	}
	sc, err := ca.serverCert()
	if err != nil {
		panic("hubtest: " + err.Error())
	}
	s := &Server{
		cfg:     cfg,
		ca:      ca,
		conns:   make(map[*conn]struct{}),
		pending: make(map[bus.ID]*pend),
		api:     newAPI(),
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
	}
	s.wsTLS = &tls.Config{Certificates: []tls.Certificate{sc}, ClientCAs: ca.pool, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert}
	if cfg.Era == bus.EraV03 {
		s.wsTLS.ClientAuth = tls.RequestClientCert // docs/protocol.md 2.1: asked for, not verified
	}
	s.crtTLS = &tls.Config{Certificates: []tls.Certificate{sc}, ClientCAs: ca.pool, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven}
	// CloudHub's Upgrader: gorilla's defaults, CheckOrigin included
	// (KubeEdge v1.23.1 pkg/viaduct/pkg/server/ws.go): an Origin whose
	// host is not the Host header is refused with 403.
	s.up = websocket.Upgrader{HandshakeTimeout: 30 * time.Second}
	s.wsSrv = &http.Server{Handler: http.HandlerFunc(s.upgrade), ErrorLog: discardLog()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ca.crt", s.serveCA)
	mux.HandleFunc("GET /edge.crt", s.serveEdgeCert)
	s.crtSrv = &http.Server{Handler: mux, ErrorLog: discardLog(), ConnState: CountConns(&s.crtOpen)}
	// Ports below the ephemeral range: Pause releases them and Resume
	// binds them again, and in between no other process's port-0
	// listener or outgoing connection (the node's redials included) can
	// be handed one of them.
	err = errors.New("no attempt")
	for range 20 {
		if err = s.listen(stableAddr(), stableAddr()); err == nil {
			break
		}
	}
	if err != nil {
		panic("hubtest: " + err.Error())
	}
	s.Addr = s.wsL.Addr().String()
	s.CertURL = "https://" + s.crtL.Addr().String()
	if cfg.Era == bus.EraV123 {
		s.wg.Go(s.retransmitLoop)
	}
	return s
}

// stableAddr returns a loopback address with a random port below the
// kernel's ephemeral range (ip_local_port_range), in the upper half of
// that span (clear of fixed default ports), or port 0 where the range
// cannot be read or starts too low.
func stableAddr() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return "127.0.0.1:0"
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "127.0.0.1:0"
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo < 4096 {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(lo/2+rand.IntN(lo/2)))
}

func (s *Server) listen(wsAddr, crtAddr string) error {
	wl, err := net.Listen("tcp", wsAddr)
	if err != nil {
		return err
	}
	cl, err := net.Listen("tcp", crtAddr)
	if err != nil {
		wl.Close()
		return err
	}
	s.mu.Lock()
	s.wsL, s.crtL = wl, cl
	s.mu.Unlock()
	s.wg.Go(func() { s.wsSrv.Serve(tls.NewListener(wl, s.wsTLS)) })
	s.wg.Go(func() { s.crtSrv.Serve(tls.NewListener(cl, s.crtTLS)) })
	return nil
}

// CAPEM returns the CA certificate in PEM.
func (s *Server) CAPEM() []byte { return pemCert(s.ca.der) }

// CACert returns the CA certificate, which signs the nodes' certificates:
// a cloudstream stand-in trusts it, as cloudstream trusts CloudHub's CA.
func (s *Server) CACert() *x509.Certificate { return s.ca.cert }

// CAHash returns the sha256 hex of the CA's DER.
func (s *Server) CAHash() string { return s.ca.caHash() }

// Token returns a join token for node: <CA hash>.<JWT>, valid for a day
// (docs/protocol.md 2.4 step 3).
func (s *Server) Token(node string) string {
	return s.ca.caHash() + "." + jwt(s.ca.jwtKey, map[string]any{
		"exp": time.Now().Add(24 * time.Hour).Unix(), "node": node,
	})
}

// upgrade checks the identity of an upgrade (docs/protocol.md 2.1, 2.4) and
// serves the link. A refused upgrade counts in Rejected.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request) {
	node, project, err := s.identity(r)
	if err == nil && s.cfg.Authorize && s.cfg.Era == bus.EraV123 {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "system:node:"+node {
			err = fmt.Errorf("hubtest: certificate is not for node %q", node)
		}
	}
	if err != nil {
		s.reject()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.reject() // the Upgrader has answered (403 for a foreign Origin)
		return
	}
	s.serveConn(ws, node, project)
}

func (s *Server) reject() {
	s.mu.Lock()
	s.rejected++
	s.notify()
	s.mu.Unlock()
}

// identity reads node and project from the headers (v1.23) or the path
// (v0.3).
func (s *Server) identity(r *http.Request) (node, project string, err error) {
	if s.cfg.Era == bus.EraV123 {
		node, project = r.Header.Get("node_id"), r.Header.Get("project_id")
		if node == "" || project == "" || r.Header.Get("ConnectionUse") != "msg" {
			return "", "", fmt.Errorf("hubtest: missing node_id, project_id or ConnectionUse header")
		}
		return node, project, nil
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || parts[2] != "events" || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("hubtest: path %q is not /<project>/<node>/events", r.URL.Path)
	}
	return parts[1], parts[0], nil
}

func (s *Server) serveConn(ws *websocket.Conn, node, project string) {
	c := &conn{ws: ws, node: node, project: project, half: make(chan struct{}), done: make(chan struct{})}
	ws.SetReadLimit(32 << 20)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.cur != nil {
		s.cur.drop() // a node has one session; the new link replaces the old
	}
	s.conns[c] = struct{}{}
	s.cur = c
	s.connects++
	// Unacknowledged messages go first, in push order, then the rest.
	var out []*pend
	for _, p := range s.pending {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *pend) int { return a.seq - b.seq })
	var backlog []bus.Message
	for _, p := range out {
		p.sends++
		backlog = append(backlog, p.msg)
	}
	backlog = append(backlog, s.backlog...)
	s.backlog = nil
	s.notify()
	s.mu.Unlock()
	for _, m := range backlog {
		s.write(c, m)
	}
	s.readLoop(c)

	c.drop()
	s.mu.Lock()
	delete(s.conns, c)
	if s.cur == c {
		s.cur = nil
	}
	s.notify()
	s.mu.Unlock()
}

func (s *Server) readLoop(c *conn) {
	for {
		typ, data, err := c.ws.ReadMessage()
		if c.isHalf() {
			<-c.done // half-open: read nothing more, keep TCP up
			return
		}
		if err != nil {
			code := websocket.CloseAbnormalClosure
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
			}
			s.mu.Lock()
			s.closeCodes = append(s.closeCodes, code)
			s.notify()
			s.mu.Unlock()
			return
		}
		m, err := bus.Decode(data)
		if err != nil {
			s.mu.Lock()
			s.badFrames++
			s.mu.Unlock()
			continue
		}
		s.handle(c, m, typ == websocket.BinaryMessage)
	}
}

// handle records m and does what the cloud does with it.
func (s *Server) handle(c *conn, m bus.Message, binary bool) {
	s.mu.Lock()
	s.records = append(s.records, Record{Msg: m, Node: c.node, Time: time.Now(), Binary: binary})
	if m.Route.Operation == bus.OpResponse && s.cfg.Era == bus.EraV123 {
		delete(s.pending, m.Header.ParentID) // the ACK (docs/protocol.md 2.4)
	}
	s.notify()
	s.mu.Unlock()
	switch m.Route.Operation {
	case bus.OpPing, bus.OpPong, bus.OpConfig:
		if s.cfg.Era == bus.EraV123 {
			s.write(c, m.Resp(bus.JSONString("ack")))
		}
		return
	case bus.OpKeepalive, bus.OpResponse:
		return
	}
	if s.cfg.Answer != nil {
		if resp, ok := s.cfg.Answer(m); ok {
			s.write(c, resp)
			return
		}
	}
	if s.cfg.Era != bus.EraV123 {
		return
	}
	s.mu.Lock()
	resp, ok := s.apiRequest(m)
	follow := s.api.followUps
	s.api.followUps = nil
	s.notify()
	s.mu.Unlock()
	if ok {
		s.write(c, resp)
	}
	for _, f := range follow {
		s.Push(f)
	}
}

// needsAck reports whether the v1.23 cloud resends m until it is
// acknowledged (docs/protocol.md 2.4 "Reliable delivery", simplified to resource
// messages that change objects).
func needsAck(m bus.Message) bool {
	if m.Route.Group != bus.GroupResource {
		return false
	}
	switch m.Route.Operation {
	case bus.OpInsert, bus.OpUpdate, bus.OpDelete:
		return !strings.Contains(m.Route.Resource, string(bus.KindPodList))
	}
	return false
}

// Push sends m to the node. With no usable link (none yet, or
// half-open) it is kept and sent when the node connects. In v1.23 mode
// a resource insert, update or delete is resent every Retransmit until
// acknowledged.
func (s *Server) Push(m bus.Message) {
	s.mu.Lock()
	s.storePushed(m)
	if s.cfg.Era == bus.EraV123 && needsAck(m) {
		if _, ok := s.pending[m.Header.ID]; !ok {
			s.seq++
			s.pending[m.Header.ID] = &pend{msg: m, seq: s.seq}
		}
	}
	c := s.cur
	if c == nil || c.isHalf() {
		if _, ok := s.pending[m.Header.ID]; !ok {
			s.backlog = append(s.backlog, m)
		}
		s.mu.Unlock()
		return
	}
	if p, ok := s.pending[m.Header.ID]; ok {
		p.sends++
	}
	s.mu.Unlock()
	s.write(c, m)
}

// PushFrame writes raw bytes as one text message, e.g. a malformed
// message, the way CloudHub writes (see writeMessage). It reports whether
// there was a link to write to.
func (s *Server) PushFrame(frame []byte) bool {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil || c.isHalf() {
		return false
	}
	return c.writeMessage(websocket.TextMessage, frame) == nil
}

func (s *Server) write(c *conn, m bus.Message) {
	if c.isHalf() {
		return
	}
	b, err := bus.Encode(nil, m, s.cfg.Era)
	if err != nil {
		return
	}
	typ := websocket.TextMessage
	if s.cfg.Binary {
		typ = websocket.BinaryMessage
	}
	c.writeMessage(typ, append(b, '\n'))
}

// writeMessage writes data as CloudHub's WriteJSON does (KubeEdge v1.23.1
// pkg/viaduct/pkg/lane/wsnopack.go): through NextWriter and gorilla's
// 4 KiB write buffer, so that a message of 4-8 KiB goes out as a 4 KiB
// frame and a continuation, and a longer one as one long non-final frame
// and an empty final frame. json.Encoder, which WriteJSON uses, ends the
// document with a newline; write adds it.
func (c *conn) writeMessage(typ int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w, err := c.ws.NextWriter(typ)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// retransmitLoop resends unacknowledged messages (docs/protocol.md 2.4).
func (s *Server) retransmitLoop() {
	t := time.NewTicker(s.cfg.Retransmit)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		c := s.cur
		var resend []bus.Message
		if c != nil && !c.isHalf() {
			for _, p := range s.pending {
				if p.sends > 0 {
					p.sends++
					resend = append(resend, p.msg)
				}
			}
		}
		s.notify()
		s.mu.Unlock()
		for _, m := range resend {
			s.write(c, m)
		}
	}
}

// notify wakes the waiters; s.mu is held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait blocks until cond (called with s.mu held) is true or ctx ends.
func (s *Server) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("hubtest: wait: %w", ctx.Err())
		}
	}
}
