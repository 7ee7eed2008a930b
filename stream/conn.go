package stream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Exec and attach carry the raw bytes of an upgraded HTTP connection: the
// cloud hijacks the API server's connection without answering it and
// forwards what it reads as Data; what the edge sends back as Data goes to
// the API server unchanged (KubeEdge v1.23.1
// cloud/pkg/cloudstream/containerexec_connection.go and
// pkg/stream/edgedexecconnection.go). So the handler of
// such a request gets a ResponseWriter that is an http.Hijacker, and a
// response it writes without hijacking goes out as raw HTTP/1.1.

// Bounds of the bytes from the cloud that wait for the handler of one
// connection. The tunnel reader blocks while a connection's queue is full
// (flow control, as edgecore's blocking read channel gives), and gives
// the connection up when it stays full for queueStall, so one stuck
// handler cannot hold the whole tunnel.
const (
	maxQueued  = 256 << 10
	queueStall = 30 * time.Second
	maxErrBody = 64 << 10 // body of a response written without hijacking
)

// tunnelConn is the net.Conn of one exec or attach connection: Read
// returns the cloud's Data, Write sends Data. RemoveConnect from the cloud
// (ctx done) is io.EOF after the queued bytes.
type tunnelConn struct {
	s      *session
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	queue  [][]byte
	queued int
	closed bool

	ready   chan struct{} // cap 1: bytes were queued
	room    chan struct{} // cap 1: bytes were read
	closedc chan struct{}
	once    sync.Once
}

func newTunnelConn(s *session, id uint64, ctx context.Context, cancel context.CancelFunc) *tunnelConn {
	return &tunnelConn{s: s, id: id, ctx: ctx, cancel: cancel,
		ready: make(chan struct{}, 1), room: make(chan struct{}, 1), closedc: make(chan struct{})}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver queues Data from the cloud; the tunnel reader calls it. It
// blocks while the queue is full, at most queueStall.
func (c *tunnelConn) deliver(b []byte) {
	var stall *time.Timer
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.queued < maxQueued || len(c.queue) == 0 {
			c.queue = append(c.queue, b)
			c.queued += len(b)
			c.mu.Unlock()
			signal(c.ready)
			return
		}
		c.mu.Unlock()
		if stall == nil {
			stall = time.NewTimer(queueStall)
		}
		select {
		case <-c.room:
		case <-c.closedc:
			return
		case <-c.ctx.Done():
			return
		case <-stall.C:
			c.s.c.log.Warn("stream connection dropped: its handler stopped reading", "id", c.id)
			c.cancel()
			c.Close()
			return
		}
	}
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if len(c.queue) > 0 {
			n := copy(p, c.queue[0])
			if n == len(c.queue[0]) {
				c.queue[0] = nil
				c.queue = c.queue[1:]
			} else {
				c.queue[0] = c.queue[0][n:]
			}
			c.queued -= n
			c.mu.Unlock()
			signal(c.room)
			return n, nil
		}
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return 0, io.EOF
		}
		select {
		case <-c.ready:
		case <-c.closedc:
		case <-c.ctx.Done():
		}
	}
}

func (c *tunnelConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		select {
		case <-c.closedc:
			return n, net.ErrClosed
		case <-c.ctx.Done():
			return n, io.ErrClosedPipe
		default:
		}
		k := min(len(p), writeChunk)
		if err := c.s.write(Frame{ID: c.id, Type: TypeData, Data: p[:k]}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close ends the connection for the handler; the request's RemoveConnect
// goes out when the handler returns. It never fails.
func (c *tunnelConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.queue, c.queued = nil, 0
		c.mu.Unlock()
		close(c.closedc)
	})
	return nil
}

type tunnelAddr string

func (a tunnelAddr) Network() string { return "kubeedge-tunnel" }
func (a tunnelAddr) String() string  { return string(a) }

func (c *tunnelConn) LocalAddr() net.Addr { return tunnelAddr("edge") }
func (c *tunnelConn) RemoteAddr() net.Addr {
	return tunnelAddr("cloudstream/" + strconv.FormatUint(c.id, 10))
}

// Deadlines are not supported: the request's context ends the connection.
func (c *tunnelConn) SetDeadline(time.Time) error      { return os.ErrNoDeadline }
func (c *tunnelConn) SetReadDeadline(time.Time) error  { return os.ErrNoDeadline }
func (c *tunnelConn) SetWriteDeadline(time.Time) error { return os.ErrNoDeadline }

// upgradeWriter is the http.ResponseWriter of an exec or attach request.
// Hijack hands the handler the connection; a response written without
// hijacking is sent as raw HTTP/1.1 when the handler returns (finish).
type upgradeWriter struct {
	conn     *tunnelConn
	h        http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

// errHijacked: the response was written before Hijack, or Hijack was
// called twice.
var errHijacked = errors.New("stream: response already started or hijacked")

func (w *upgradeWriter) Header() http.Header { return w.h }

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *upgradeWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	if room := maxErrBody - w.body.Len(); room > 0 {
		w.body.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked || w.status != 0 {
		return nil, nil, errHijacked
	}
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// finish sends the response of a handler that did not hijack.
func (w *upgradeWriter) finish() {
	if w.hijacked {
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.h.Clone()
	h.Set("Connection", "close")
	resp := &http.Response{StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1, Header: h,
		ContentLength: int64(w.body.Len()), Body: io.NopCloser(&w.body)}
	_ = resp.Write(w.conn)
}
