package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Session headers of the tunnel dial (KubeEdge v1.23.1
// pkg/stream/constants.go; edge/pkg/edgestream/edgestream.go).
const (
	headerNodeName = "SessionHostNameOverride"
	headerNodeIP   = "SessionInternalIP"
)

// connectPath is cloudstream's websocket route (v1.23.1
// cloud/pkg/cloudstream/tunnelserver.go, installDefaultHandler).
const connectPath = "/v1/kubeedge/connect"

// ErrClosedByCloud: the cloud sent CloseConnect.
var ErrClosedByCloud = errors.New("stream: tunnel closed by the cloud")

// Client is the tunnel module. New starts nothing; Run keeps the tunnel up.
type Client struct {
	cfg Config
	h   http.Handler
	log *slog.Logger

	cert certCache // owned by Run's goroutine

	connected atomic.Bool
	dials     atomic.Int64
	requests  atomic.Int64
	refused   atomic.Int64
}

// New returns a client that serves requests with h. It starts nothing.
func New(cfg Config, h http.Handler, log *slog.Logger) (*Client, error) {
	cfg = cfg.Defaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if !cfg.Enabled() {
		return nil, errors.New("stream: config: server is off")
	}
	if h == nil {
		return nil, errors.New("stream: no handler")
	}
	return &Client{cfg: cfg, h: h, log: log}, nil
}

// Stats counts what the client did.
type Stats struct {
	Connected bool  `json:"connected"`
	Dials     int64 `json:"dials"`
	Requests  int64 `json:"requests"`
	Refused   int64 `json:"refused"`
}

// Stats returns current counts; safe for concurrent use.
func (c *Client) Stats() Stats {
	return Stats{Connected: c.connected.Load(), Dials: c.dials.Load(), Requests: c.requests.Load(), Refused: c.refused.Load()}
}

// Run dials the tunnel and serves it, redialling until ctx ends. It
// returns nil after ctx ends, once every goroutine it started has exited.
func (c *Client) Run(ctx context.Context) error {
	wait := c.cfg.BackoffMin
	quiet := false // the failure was logged: stay quiet until connected
	for {
		c.dials.Add(1)
		up, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up >= 2*c.cfg.Ping {
			wait, quiet = c.cfg.BackoffMin, false
		}
		if !quiet {
			c.log.Warn("stream tunnel down: kubectl logs and top will not reach this node until it is back; retrying quietly",
				"server", c.cfg.Server, "err", err)
			quiet = true
		} else {
			c.log.Debug("stream tunnel dial failed", "err", err)
		}
		// Full jitter over the upper half, so nodes do not dial in step.
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.BackoffMax)
	}
}

// dial opens the tunnel websocket as edgecore does (v1.23.1
// edge/pkg/edgestream/edgestream.go, TLSClientConnect): the node
// certificate, no server verification, HTTP/1.1 only.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	cert, err := c.cert.load(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("stream: node certificate: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		// cloudstream's tunnel certificate names the cloudcore host,
		// and edgecore does not check it either (KubeEdge v1.23.1
		// edge/pkg/edgestream/edgestream.go).
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
	}
	h := http.Header{}
	h.Set(headerNodeName, c.cfg.NodeName)
	if c.cfg.NodeIP != nil {
		h.Set(headerNodeIP, c.cfg.NodeIP())
	}
	d := websocket.Dialer{TLSClientConfig: tc, HandshakeTimeout: c.cfg.HandshakeTimeout}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	u := "wss://" + c.cfg.Server + connectPath
	ws, resp, err := d.DialContext(ctx, u, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			err = fmt.Errorf("%w: %s", err, resp.Status)
		}
		return nil, fmt.Errorf("stream: dial %s: %w", u, err)
	}
	return ws, nil
}

// session dials and serves one tunnel until it fails or ctx ends; up is
// how long it was connected.
func (c *Client) session(ctx context.Context) (up time.Duration, err error) {
	ws, err := c.dial(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	c.connected.Store(true)
	c.log.Info("stream tunnel connected", "server", c.cfg.Server)
	defer c.connected.Store(false)
	node := ctx
	ctx, cancel := context.WithCancel(ctx)
	s := &session{c: c, ws: ws, ctx: ctx, conns: map[uint64]*request{}}
	stop := context.AfterFunc(ctx, func() {
		// When the node stops, the tunnel ends with a websocket close
		// (1000, normal closure), as the hub's link does, so that
		// cloudstream reads a clean end instead of an abnormal closure
		// (1006).
		if node.Err() != nil {
			goodbye(ws, min(c.cfg.WriteDeadline, time.Second))
		}
		ws.Close()
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.ping()
	}()
	err = s.read(&wg)
	cancel()
	stop()
	ws.Close()
	wg.Wait()
	return time.Since(start), err
}

// goodbye writes a websocket close (1000) that says the node is stopping,
// waiting at most d for the write.
func goodbye(ws *websocket.Conn, d time.Duration) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "node stopping")
	_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(d))
}
