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
	conns map[uint64]*request // requests being served, by ConnectID
}

// request is one connection being served.
type request struct {
	cancel context.CancelFunc
	conn   *tunnelConn // exec and attach: the cloud's Data goes here
}

// write sends one frame as a Text message, as KubeEdge does: the cloud
// session drops the tunnel on any other opcode (KubeEdge v1.23.1
// cloud/pkg/cloudstream/session.go, Serve).
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
		case TypeLogs, TypeMetrics, TypeExec, TypeAttach:
			s.open(f, wg)
		case TypeData:
			// Bytes of an upgraded exec or attach connection; logs and
			// metrics read nothing from the cloud, and unknown ids are
			// dropped.
			s.mu.Lock()
			r := s.conns[f.ID]
			s.mu.Unlock()
			if r != nil && r.conn != nil && len(f.Data) > 0 {
				r.conn.deliver(f.Data) // f.Data is a fresh slice per message
			}
		case TypeRemove:
			// A request answers with its own RemoveConnect when it ends.
			// One for an id not served (any more) is dropped, as edgecore
			// v1.23.1 drops every message for an unknown id
			// (edge/pkg/edgestream/tunnel.go, WriteToLocalConnection):
			// once its client has closed its side, cloudstream's exec loop
			// sends RemoveConnect again at every read until the edge's
			// answer arrives (KubeEdge v1.23.1
			// cloud/pkg/cloudstream/containerexec_connection.go, Serve),
			// and each answer to one of those made cloudcore log "can not
			// find apiServer connection id": 1,281 lines for one
			// "echo x | kubectl exec -i".
			s.mu.Lock()
			r, ok := s.conns[f.ID]
			s.mu.Unlock()
			if ok {
				r.cancel()
			}
		default:
			// edgecore v1.23.1 panics here; answer and go on.
			if err := s.write(Frame{ID: f.ID, Type: TypeRemove}); err != nil {
				return err
			}
		}
	}
}

// open starts serving one request, or refuses it with text and
// RemoveConnect.
func (s *session) open(f Frame, wg *sync.WaitGroup) {
	var cn Connect
	err := json.Unmarshal(f.Data, &cn)
	s.mu.Lock()
	full := len(s.conns) >= s.c.cfg.MaxConns
	_, dup := s.conns[f.ID]
	var r *request
	var ctx context.Context
	if err == nil && !full && !dup {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(s.ctx)
		r = &request{cancel: cancel}
		if f.Type == TypeExec || f.Type == TypeAttach {
			r.conn = newTunnelConn(s, f.ID, ctx, cancel)
		}
		s.conns[f.ID] = r
	}
	s.mu.Unlock()
	if r == nil {
		s.c.refused.Add(1)
		msg := "edgenode: too many requests at once, try again\n"
		switch {
		case err != nil:
			msg = "edgenode: bad connect message: " + err.Error() + "\n"
		case dup:
			msg = "edgenode: connection id already in use\n"
		}
		if f.Type == TypeExec || f.Type == TypeAttach {
			// The API server reads an HTTP response here.
			msg = rawResponse(http.StatusServiceUnavailable, msg)
		}
		_ = s.write(Frame{ID: f.ID, Type: TypeData, Data: []byte(msg)})
		_ = s.write(Frame{ID: f.ID, Type: TypeRemove})
		return
	}
	s.c.requests.Add(1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.serve(ctx, f.ID, &cn, r.conn)
		r.cancel()
		if r.conn != nil {
			r.conn.Close()
		}
		s.mu.Lock()
		delete(s.conns, f.ID)
		s.mu.Unlock()
		_ = s.write(Frame{ID: f.ID, Type: TypeRemove})
	}()
}

// serve runs the handler on the request of cn with its body going to the
// tunnel, or for exec and attach (conn not nil) with conn to hijack. The
// cloud rewrote the URL to the edge's kubelet address
// (http://127.0.0.1:10350/..., KubeEdge v1.23.1 common/constants/default.go); only path and query count.
func (s *session) serve(ctx context.Context, id uint64, cn *Connect, conn *tunnelConn) {
	u := cn.URL
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	if u.Host == "" {
		u.Host = "127.0.0.1:10350"
	}
	method := http.MethodGet
	if conn != nil && cn.Method != "" {
		method = cn.Method // exec and attach come as GET or POST
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		msg := "edgenode: bad request URL: " + err.Error() + "\n"
		if conn != nil {
			msg = rawResponse(http.StatusBadRequest, msg)
		}
		_ = s.write(Frame{ID: id, Type: TypeData, Data: []byte(msg)})
		return
	}
	if cn.Header != nil {
		req.Header = cn.Header.Clone()
	}
	// The body goes through the tunnel as is: never compressed (edgecore
	// forces identity for metrics too, KubeEdge v1.23.1
	// pkg/stream/edgedmetricsconnection.go).
	req.Header.Set("Accept-Encoding", "identity")
	req.RequestURI = u.RequestURI()
	req.RemoteAddr = "cloudstream"
	var w http.ResponseWriter
	if conn != nil {
		uw := &upgradeWriter{conn: conn, h: http.Header{}}
		defer uw.finish()
		w = uw
	} else {
		w = &tunnelWriter{s: s, id: id, h: http.Header{}}
	}
	defer func() {
		if p := recover(); p != nil {
			s.c.log.Error("stream request handler panicked", "path", u.Path, "panic", p)
			msg := fmt.Sprintf("edgenode: internal error serving %s\n", u.Path)
			if conn == nil {
				_, _ = w.Write([]byte(msg))
			} else if uw := w.(*upgradeWriter); !uw.hijacked {
				uw.status, uw.h = http.StatusInternalServerError, http.Header{}
				uw.body.Reset()
				uw.body.WriteString(msg)
			}
		}
	}()
	s.c.h.ServeHTTP(w, req)
	if tw, ok := w.(*tunnelWriter); ok && tw.status >= 400 {
		s.c.log.Debug("stream request failed", "path", u.Path, "status", tw.status)
	}
}

// rawResponse is a whole HTTP/1.1 response with a text body, for a
// connection whose bytes go to the API server raw.
func rawResponse(code int, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// writeChunk is the most body bytes in one Data frame.
const writeChunk = 32 << 10

// tunnelWriter is the http.ResponseWriter of a tunnelled request: every
// Write goes out as Data frames at once (so Flush has nothing to do);
// status and headers do not travel (KubeEdge v1.23.1 pkg/stream/edgedlogconnection.go).
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
