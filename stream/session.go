package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// session is one tunnel: the reader, the pinger and the requests.
type session struct {
	c   *Client
	ws  *websocket.Conn
	ctx context.Context

	wmu  sync.Mutex // one writer at a time (gorilla's rule)
	wbuf []byte

	mu    sync.Mutex
	conns map[uint64]context.CancelFunc // requests being served, by ConnectID
}

// write sends one frame as a Text message, as KubeEdge does: the cloud
// session drops the tunnel on any other opcode (spec section 3).
func (s *session) write(f Frame) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf = f.Append(s.wbuf[:0])
	_ = s.ws.SetWriteDeadline(time.Now().Add(s.c.cfg.WriteDeadline))
	if err := s.ws.WriteMessage(websocket.TextMessage, s.wbuf); err != nil {
		s.ws.Close() // a failed write leaves gorilla's writer unusable
		return fmt.Errorf("stream: write: %w", err)
	}
	if cap(s.wbuf) > 64<<10 {
		s.wbuf = nil // do not keep a large buffer between requests
	}
	return nil
}

// ping writes a websocket Ping every Ping interval (v1.23.1
// edge/pkg/edgestream/tunnel.go, startPing); a failure closes the tunnel.
func (s *session) ping() {
	t := time.NewTicker(s.c.cfg.Ping)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := s.ws.WriteControl(websocket.PingMessage, []byte("ping you"), time.Now().Add(s.c.cfg.WriteDeadline)); err != nil {
				s.ws.Close()
				return
			}
		}
	}
}

// read serves frames until the tunnel fails; request goroutines join wg.
func (s *session) read(wg *sync.WaitGroup) error {
	// Connect messages are small JSON and cloud Data is at most 256 bytes
	// a message; the limit bounds memory against a broken peer.
	s.ws.SetReadLimit(MaxData + 32)
	for {
		_, b, err := s.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("stream: read: %w", err)
		}
		f, err := Decode(b)
		if err != nil {
			s.c.log.Debug("stream frame dropped", "err", err)
			continue
		}
		switch f.Type {
		case TypeClose:
			return fmt.Errorf("%w: %s", ErrClosedByCloud, f.Data)
		case TypeLogs, TypeMetrics:
			s.open(f, wg)
		case TypeExec, TypeAttach:
			// The cloud has hijacked the API server's connection and passes
			// our bytes on raw (spec section 3, exec), so an HTTP response
			// is what the API server reads.
			s.c.refused.Add(1)
			_ = s.write(Frame{ID: f.ID, Type: TypeData, Data: []byte(notImplemented)})
			_ = s.write(Frame{ID: f.ID, Type: TypeRemove})
		case TypeData:
			// logs and metrics read nothing from the cloud: dropped.
		case TypeRemove:
			s.mu.Lock()
			cancel, ok := s.conns[f.ID]
			s.mu.Unlock()
			if ok {
				cancel() // the request answers with its RemoveConnect
			} else if err := s.write(Frame{ID: f.ID, Type: TypeRemove}); err != nil {
				return err
			}
		default:
			// edgecore v1.23.1 panics here; answer and go on.
			if err := s.write(Frame{ID: f.ID, Type: TypeRemove}); err != nil {
				return err
			}
		}
	}
}

const notImplemented = "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 46\r\nConnection: close\r\n\r\n" +
	"edgenode does not support exec and attach yet\n"

// open starts serving one request, or refuses it with text and
// RemoveConnect.
func (s *session) open(f Frame, wg *sync.WaitGroup) {
	var cn Connect
	err := json.Unmarshal(f.Data, &cn)
	s.mu.Lock()
	full := len(s.conns) >= s.c.cfg.MaxConns
	_, dup := s.conns[f.ID]
	var ctx context.Context
	var cancel context.CancelFunc
	if err == nil && !full && !dup {
		ctx, cancel = context.WithCancel(s.ctx)
		s.conns[f.ID] = cancel
	}
	s.mu.Unlock()
	if cancel == nil {
		s.c.refused.Add(1)
		msg := "edgenode: too many requests at once, try again\n"
		switch {
		case err != nil:
			msg = "edgenode: bad connect message: " + err.Error() + "\n"
		case dup:
			msg = "edgenode: connection id already in use\n"
		}
		_ = s.write(Frame{ID: f.ID, Type: TypeData, Data: []byte(msg)})
		_ = s.write(Frame{ID: f.ID, Type: TypeRemove})
		return
	}
	s.c.requests.Add(1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.serve(ctx, f.ID, &cn)
		cancel()
		s.mu.Lock()
		delete(s.conns, f.ID)
		s.mu.Unlock()
		_ = s.write(Frame{ID: f.ID, Type: TypeRemove})
	}()
}

// serve runs the handler on the request of cn with its body going to the
// tunnel. The cloud rewrote the URL to the edge's kubelet address
// (http://127.0.0.1:10350/..., spec section 1); only path and query count.
func (s *session) serve(ctx context.Context, id uint64, cn *Connect) {
	u := cn.URL
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	if u.Host == "" {
		u.Host = "127.0.0.1:10350"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		_ = s.write(Frame{ID: id, Type: TypeData, Data: []byte("edgenode: bad request URL: " + err.Error() + "\n")})
		return
	}
	if cn.Header != nil {
		req.Header = cn.Header.Clone()
	}
	// The body goes through the tunnel as is: never compressed (spec
	// section 3; edgecore forces identity for metrics too).
	req.Header.Set("Accept-Encoding", "identity")
	req.RequestURI = u.RequestURI()
	req.RemoteAddr = "cloudstream"
	w := &tunnelWriter{s: s, id: id, h: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			s.c.log.Error("stream request handler panicked", "path", u.Path, "panic", p)
			_, _ = w.Write([]byte(fmt.Sprintf("edgenode: internal error serving %s\n", u.Path)))
		}
	}()
	s.c.h.ServeHTTP(w, req)
	if w.status >= 400 {
		s.c.log.Debug("stream request failed", "path", u.Path, "status", w.status)
	}
}

// writeChunk is the most body bytes in one Data frame.
const writeChunk = 32 << 10

// tunnelWriter is the http.ResponseWriter of a tunnelled request: every
// Write goes out as Data frames at once (so Flush has nothing to do);
// status and headers do not travel (spec section 3).
type tunnelWriter struct {
	s      *session
	id     uint64
	h      http.Header
	status int
}

func (w *tunnelWriter) Header() http.Header { return w.h }

func (w *tunnelWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *tunnelWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), writeChunk)]
		if err := w.s.write(Frame{ID: w.id, Type: TypeData, Data: c}); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

// Flush makes the writer an http.Flusher, which streaming handlers ask
// for; writes are never buffered.
func (w *tunnelWriter) Flush() {}
