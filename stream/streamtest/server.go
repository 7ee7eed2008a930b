// Package streamtest is an in-process cloudstream tunnel server for tests,
// like net/http/httptest: it accepts the edge's websocket on
// /v1/kubeedge/connect over TLS with a client certificate from its own CA,
// and sends connect messages the way KubeEdge v1.23.1 cloudstream does
// (cloud/pkg/cloudstream/tunnelserver.go, session.go,
// containerlog_connection.go, containermetrics_connection.go). As an
// http.Handler a Tunnel is also cloudstream's stream server for exec and
// attach (exec.go), for a real client such as client-go's SPDY executor.
package streamtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"edgenode/stream"
)

// Server is the tunnel server. NewServer starts it; Close stops it.
type Server struct {
	ca      *authority
	ln      net.Listener
	srv     *http.Server
	tunnels chan *Tunnel
	nextID  atomic.Uint64 // ConnectIDs, one counter for all tunnels as in cloudstream
	dials   atomic.Int64
	refuse  atomic.Bool
}

// NewServer listens on 127.0.0.1:0 with TLS that requires a client
// certificate of its CA (cloudstream: RequireAndVerifyClientCert, KubeEdge
// v1.23.1 cloud/pkg/cloudstream/tunnelserver.go), or of one of trust:
// cloudstream trusts CloudHub's CA, which signs the nodes' certificates.
func NewServer(trust ...*x509.Certificate) (*Server, error) {
	ca, err := newAuthority()
	if err != nil {
		return nil, err
	}
	for _, c := range trust {
		ca.pool.AddCert(c)
	}
	sc, err := ca.serverCert()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ca: ca, ln: ln, tunnels: make(chan *Tunnel, 4)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kubeedge/connect", s.connect)
	s.srv = &http.Server{Handler: mux, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{sc}, ClientCAs: ca.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}}
	go s.srv.ServeTLS(ln, "", "")
	return s, nil
}

// Addr is the server's HOST:PORT, the edge's stream server setting.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Dials counts websocket upgrade attempts, refused ones included.
func (s *Server) Dials() int64 { return s.dials.Load() }

// Refuse makes the server answer 503 to every dial while on, as a cloud
// whose tunnel port forwards nowhere.
func (s *Server) Refuse(on bool) { s.refuse.Store(on) }

// Close stops the server and its tunnels.
func (s *Server) Close() { s.srv.Close() }

// Start is NewServer for a test: the server, closed when the test ends,
// and the stream config of a node that dials it with a certificate of its
// CA. It fails the test on any error.
func Start(t testing.TB, node string) (*Server, stream.Config) {
	t.Helper()
	srv, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cert, key, err := srv.WriteNodeCert(t.TempDir(), node)
	if err != nil {
		t.Fatal(err)
	}
	return srv, stream.Config{Server: srv.Addr(), NodeName: node, CertFile: cert, KeyFile: key}
}

// WriteNodeCert writes a node certificate and key signed by the server's
// CA into dir and returns their paths.
func (s *Server) WriteNodeCert(dir, node string) (certFile, keyFile string, err error) {
	c, k, err := s.ca.issue("system:node:"+node, 3, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, k, 0o600)
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	s.dials.Add(1)
	if s.refuse.Load() {
		http.Error(w, "refused", http.StatusServiceUnavailable)
		return
	}
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	t := &Tunnel{s: s, ws: ws, Header: r.Header.Clone(), reqs: map[uint64]*Request{},
		Unmatched: make(chan stream.Frame, 64), done: make(chan struct{})}
	go t.read()
	select {
	case s.tunnels <- t:
	default:
		ws.Close()
	}
}

// Tunnel waits for the next edge to connect.
func (s *Server) Tunnel(ctx context.Context) (*Tunnel, error) {
	select {
	case t := <-s.tunnels:
		return t, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Tunnel is one connected edge.
type Tunnel struct {
	s *Server
	// Header is the request header of the edge's dial.
	Header http.Header
	ws     *websocket.Conn
	wmu    sync.Mutex
	mu     sync.Mutex
	reqs   map[uint64]*Request
	// Unmatched receives frames for ids with no open Request (dropped
	// when full).
	Unmatched chan stream.Frame
	done      chan struct{}
	NonText   atomic.Int64 // messages that were not Text
	closeCode atomic.Int64
}

// CloseCode returns the code of the websocket close the tunnel ended
// with: the edge's, or 1006 (abnormal closure) when it ended without one.
// It is 0 while the tunnel is up.
func (t *Tunnel) CloseCode() int { return int(t.closeCode.Load()) }

// Done is closed when the tunnel has ended.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Close drops the tunnel.
func (t *Tunnel) Close() { t.ws.Close() }

func (t *Tunnel) read() {
	defer close(t.done)
	defer func() {
		t.mu.Lock()
		for _, r := range t.reqs {
			r.end()
		}
		t.mu.Unlock()
	}()
	for {
		mt, b, err := t.ws.ReadMessage()
		if err != nil {
			code := int64(websocket.CloseAbnormalClosure)
			if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
				code = int64(ce.Code)
			}
			t.closeCode.Store(code)
			return
		}
		if mt != websocket.TextMessage {
			t.NonText.Add(1)
		}
		f, err := stream.Decode(b)
		if err != nil {
			continue
		}
		t.mu.Lock()
		r := t.reqs[f.ID]
		if r != nil && f.Type == stream.TypeRemove {
			delete(t.reqs, f.ID)
		}
		t.mu.Unlock()
		switch {
		case r == nil:
			select {
			case t.Unmatched <- stream.Frame{ID: f.ID, Type: f.Type, Data: append([]byte(nil), f.Data...)}:
			default:
			}
		case f.Type == stream.TypeData:
			r.data <- append([]byte(nil), f.Data...)
		case f.Type == stream.TypeRemove:
			r.end()
		}
	}
}

// Send writes a raw frame.
func (t *Tunnel) Send(f stream.Frame) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.ws.WriteMessage(websocket.TextMessage, f.Append(nil))
}

// Open sends a connect message of type typ for path?query, with the URL
// rewritten to the edge's kubelet address as cloudstream does (KubeEdge
// v1.23.1 cloud/pkg/cloudstream/session.go), and returns the request to read the answer from.
func (t *Tunnel) Open(typ stream.Type, pathQuery string, h http.Header) (*Request, error) {
	return t.open(typ, "", pathQuery, h)
}

func (t *Tunnel) open(typ stream.Type, method, pathQuery string, h http.Header) (*Request, error) {
	u, err := url.Parse("http://127.0.0.1:10350" + pathQuery)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = http.Header{"Accept-Encoding": {"gzip"}, "Authorization": {"Bearer x"}}
	}
	id := t.s.nextID.Add(1)
	b, err := json.Marshal(stream.Connect{MessID: id, URL: *u, Header: h, Method: method})
	if err != nil {
		return nil, err
	}
	r := &Request{t: t, ID: id, data: make(chan []byte, 1024), removed: make(chan struct{})}
	t.mu.Lock()
	t.reqs[id] = r
	t.mu.Unlock()
	if err := t.Send(stream.Frame{ID: id, Type: typ, Data: b}); err != nil {
		return nil, err
	}
	return r, nil
}

// Request is one forwarded request.
type Request struct {
	t       *Tunnel
	ID      uint64
	data    chan []byte
	removed chan struct{}
	once    sync.Once
}

func (r *Request) end() { r.once.Do(func() { close(r.removed) }) }

// ErrNotRemoved: the edge did not end the request in time.
var ErrNotRemoved = errors.New("streamtest: no RemoveConnect from the edge")

// Next returns the next Data, or ok false after RemoveConnect.
func (r *Request) Next(ctx context.Context) (data []byte, ok bool, err error) {
	select {
	case d := <-r.data:
		return d, true, nil
	default:
	}
	select {
	case d := <-r.data:
		return d, true, nil
	case <-r.removed:
		select {
		case d := <-r.data:
			return d, true, nil
		default:
			return nil, false, nil
		}
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: %w", ErrNotRemoved, ctx.Err())
	}
}

// ReadAll returns all Data until the edge's RemoveConnect.
func (r *Request) ReadAll(ctx context.Context) ([]byte, error) {
	var out []byte
	for {
		d, ok, err := r.Next(ctx)
		if err != nil || !ok {
			return out, err
		}
		out = append(out, d...)
	}
}

// Write sends b as Data, as cloudstream forwards the API server's bytes
// of an exec or attach connection.
func (r *Request) Write(b []byte) error {
	return r.t.Send(stream.Frame{ID: r.ID, Type: stream.TypeData, Data: b})
}

// Remove sends RemoveConnect, as cloudstream does when the API server's
// side goes away.
func (r *Request) Remove() error {
	return r.t.Send(stream.Frame{ID: r.ID, Type: stream.TypeRemove})
}

// Removed is closed when the edge has sent RemoveConnect.
func (r *Request) Removed() <-chan struct{} { return r.removed }

// Cancel removes the request as cloudstream does when its client goes away
// and waits for the edge's RemoveConnect answer, or ctx.
func (r *Request) Cancel(ctx context.Context) error {
	if err := r.Remove(); err != nil {
		return err
	}
	select {
	case <-r.removed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no RemoveConnect after the cloud removed request %d: %w", r.ID, ctx.Err())
	}
}
