package hubtest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"edgenode/bus"
)

// Records returns a copy of every message received so far, keepalives
// included, in arrival order.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Received returns the messages received so far.
func (s *Server) Received() []bus.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bus.Message, len(s.records))
	for i, r := range s.records {
		out[i] = r.Msg
	}
	return out
}

// WaitFor blocks until a received message (earlier ones included)
// satisfies match, and returns it; or until ctx ends.
func (s *Server) WaitFor(ctx context.Context, match func(bus.Message) bool) (bus.Message, error) {
	var found bus.Message
	err := s.wait(ctx, func() bool {
		for _, r := range s.records {
			if match(r.Msg) {
				found = r.Msg
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitCount blocks until at least n received messages satisfy match.
func (s *Server) WaitCount(ctx context.Context, n int, match func(bus.Message) bool) error {
	return s.wait(ctx, func() bool {
		k := 0
		for _, r := range s.records {
			if match(r.Msg) {
				k++
			}
		}
		return k >= n
	})
}

// WaitConnects blocks until the server has accepted at least n links.
func (s *Server) WaitConnects(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return s.connects >= n })
}

// WaitDisconnected blocks until no link is up.
func (s *Server) WaitDisconnected(ctx context.Context) error {
	return s.wait(ctx, func() bool { return len(s.conns) == 0 })
}

// WaitAcked blocks until the message id pushed earlier is acknowledged.
func (s *Server) WaitAcked(ctx context.Context, id bus.ID) error {
	return s.wait(ctx, func() bool { _, ok := s.pending[id]; return !ok })
}

// Sends returns how often a message still waiting for its ACK has been
// written (first send included); 0 once acknowledged or if unknown.
func (s *Server) Sends(id bus.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pending[id]; ok {
		return p.sends
	}
	return 0
}

// Pending returns the number of messages waiting for their ACK.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Connects returns the number of links accepted so far.
func (s *Server) Connects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connects
}

// Rejected returns the number of upgrades refused for their identity.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// CertConns returns how many connections to the certificate endpoints
// are open: a node that keeps none open after its requests leaves 0.
func (s *Server) CertConns() int { return int(s.crtOpen.Load()) }

// CountConns is an http.Server ConnState hook that keeps open, the
// connections the server has open.
func CountConns(open *atomic.Int64) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
}

// Issued returns the number of node certificates signed.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// BadFrames returns the number of frames that were not messages.
func (s *Server) BadFrames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badFrames
}

// Node returns the node id of the current link, or "".
func (s *Server) Node() (node, project string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return "", ""
	}
	return s.cur.node, s.cur.project
}

// Drop closes the current link (TCP close).
func (s *Server) Drop() {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil {
		c.drop()
	}
}

// HalfOpen makes the current link half-open: TCP stays up but the server
// reads nothing more and writes nothing more on it, like a hung cloud or
// a path that lost its return direction. New links are served normally.
// It reports whether there was a link.
func (s *Server) HalfOpen() bool {
	s.mu.Lock()
	c := s.cur
	if c != nil {
		s.cur = nil
	}
	s.notify()
	s.mu.Unlock()
	if c == nil {
		return false
	}
	c.halfOne.Do(func() { close(c.half) })
	return true
}

// Pause closes the listeners and every link: the cloud is unreachable
// until Resume.
func (s *Server) Pause() {
	s.mu.Lock()
	wl, cl := s.wsL, s.crtL
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	wl.Close()
	cl.Close()
	for _, c := range conns {
		c.drop()
	}
}

// Resume listens again on the same addresses.
func (s *Server) Resume() error {
	return s.listen(s.Addr, strings.TrimPrefix(s.CertURL, "https://"))
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.Pause()
	s.wsSrv.Close()
	s.crtSrv.Close()
	s.wg.Wait()
}

// serveCA answers /ca.crt with the CA's DER (docs/protocol.md 2.4 step 2).
func (s *Server) serveCA(w http.ResponseWriter, _ *http.Request) {
	w.Write(s.ca.der)
}

// serveEdgeCert signs the DER CSR in the body of a GET (docs/protocol.md 2.4
// step 6). It accepts a valid token (Authorization: Bearer <JWT>) or a client
// certificate of the CA (renewal, step 8).
func (s *Server) serveEdgeCert(w http.ResponseWriter, r *http.Request) {
	node := r.Header.Get("NodeName")
	renewal := r.TLS != nil && len(r.TLS.VerifiedChains) > 0
	if renewal {
		if r.TLS.PeerCertificates[0].Subject.CommonName != "system:node:"+node {
			http.Error(w, "certificate is not for this node", http.StatusUnauthorized)
			return
		}
	} else {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if err := verifyJWT(s.ca.jwtKey, tok, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	csr, err := x509.ParseCertificateRequest(body)
	if err != nil || csr.CheckSignature() != nil {
		http.Error(w, "bad CSR", http.StatusBadRequest)
		return
	}
	if node == "" || csr.Subject.CommonName != "system:node:"+node {
		http.Error(w, "CSR is not for node "+node, http.StatusBadRequest)
		return
	}
	der, err := s.ca.sign(csr, s.cfg.CertValidity)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.issued++
	s.notify()
	s.mu.Unlock()
	w.Write(der)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// CloseCodes returns the websocket close code of each link that ended, in
// order: 1000 for a node that said goodbye, 1006 for one that only closed
// TCP (CloudHub logs both as read errors; 1006 as an abnormal closure).
func (s *Server) CloseCodes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.closeCodes...)
}
