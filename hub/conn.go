package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"edgenode/bus"
)

// wsConn is one websocket link to the cloud.
type wsConn = websocket.Conn

// Link errors; they end a link and lead to a reconnect.
var (
	// ErrSilentLink means nothing arrived from the cloud for two
	// heartbeats although the probe asks it to answer every heartbeat:
	// the link is half-open or the cloud is hung.
	ErrSilentLink = errors.New("hub: no frame from the cloud within two heartbeats")
	errRenewed    = errors.New("hub: certificate renewed, reconnecting")
)

// Contents of the keepalive and of the viaduct control answer (docs/protocol.md
// 2.4).
const (
	pingContent = "ping"
	ackContent  = "ack"
)

// serve runs one link until it fails or ctx ends. It starts the reader and
// the keepalive goroutine, sends in the calling goroutine, and returns
// the cause of the end after both goroutines have exited.
func (c *Client) serve(ctx context.Context, ws *wsConn, cert *tls.Certificate) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.connects.Add(1)
	c.connected.Store(true)
	c.log.Info("connected to the cloud", "server", ws.RemoteAddr().String(), "era", c.cfg.Era.String())
	c.publish(bus.CloudConnected)

	var wg sync.WaitGroup
	wg.Go(func() { cancel(c.readLoop(ws)) })
	wg.Go(func() { cancel(c.keepalive(sctx, ws)) })
	cancel(c.sendLoop(sctx, ws, cert))
	if ctx.Err() != nil {
		c.goodbye(ws)
	}
	ws.Close() // unblocks the reader
	wg.Wait()

	c.connected.Store(false)
	c.publish(bus.CloudDisconnected)
	return context.Cause(sctx)
}

// goodbye tells the cloud that the node is stopping with a websocket close
// (1000, normal closure) before the TCP connection goes, so that CloudHub
// sees a clean end instead of an abnormal closure (1006). It waits at most
// a second for the write.
func (c *Client) goodbye(ws *wsConn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "node stopping")
	_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

// readLoop reads messages until the link fails. With the ping probe the
// read deadline is two heartbeats from the last message (see the package
// doc); without it there is none.
func (c *Client) readLoop(ws *wsConn) error {
	var timeout time.Duration
	if c.cfg.Probe == ProbePing {
		timeout = 2 * c.cfg.Heartbeat
	}
	for {
		if err := ws.SetReadDeadline(deadline(timeout)); err != nil {
			return fmt.Errorf("hub: read: %w", err)
		}
		data, err := c.readMessage(ws)
		var ne net.Error
		switch {
		case errors.Is(err, errMessageTooLarge):
			c.badFrames.Add(1)
			c.log.Debug("message too large, dropped", "max", c.cfg.MaxFrameBytes)
			continue
		case errors.As(err, &ne) && ne.Timeout():
			c.silent.Add(1)
			return fmt.Errorf("%w (%s)", ErrSilentLink, timeout)
		case err != nil:
			return fmt.Errorf("hub: read: %w", err)
		}
		if reply, ok := c.onFrame(data); ok {
			if err := c.write(ws, reply); err != nil {
				return err
			}
		}
	}
}

// errMessageTooLarge: a message longer than MaxFrameBytes; its bytes were
// read and thrown away, the link goes on.
var errMessageTooLarge = errors.New("hub: message too large")

// readMessage reads one whole message, text or binary alike (docs/protocol.md 8
// item 1), reassembled from its frames. At most MaxFrameBytes are kept; the
// rest of a longer message is read and dropped, so that one oversized message
// neither ends the link (the cloud would resend it forever) nor holds more
// memory than the limit. The returned bytes are valid until the next call.
func (c *Client) readMessage(ws *wsConn) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	c.rbuf.Reset()
	if cap(c.rbuf.Bytes()) > 64<<10 {
		c.rbuf = bytes.Buffer{} // keep a modest buffer between messages
	}
	n, err := c.rbuf.ReadFrom(io.LimitReader(r, int64(c.cfg.MaxFrameBytes)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(c.cfg.MaxFrameBytes) {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
		c.rbuf = bytes.Buffer{}
		return nil, errMessageTooLarge
	}
	return c.rbuf.Bytes(), nil
}

// keepalive writes the keepalive at once and then every heartbeat, bypassing
// the rate limit (docs/protocol.md 2.4 "Keepalive"). With the ping probe a
// viaduct ping follows each keepalive.
func (c *Client) keepalive(ctx context.Context, ws *wsConn) error {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		ka := bus.NewMessage(bus.ModuleHub, bus.GroupResource, bus.OpKeepalive, bus.ResNode, bus.JSONString(pingContent))
		if err := c.write(ws, ka); err != nil {
			return err
		}
		c.keepalives.Add(1)
		if c.cfg.Probe == ProbePing {
			p := bus.NewMessage(bus.ModuleHub, bus.GroupResource, bus.OpPing, bus.ResNode, bus.JSONString(pingContent))
			c.notePing(p.Header.ID)
			if err := c.write(ws, p); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) notePing(id bus.ID) {
	c.pmu.Lock()
	copy(c.pings[1:], c.pings[:len(c.pings)-1])
	c.pings[0] = id
	c.pmu.Unlock()
}

// isPingAck reports whether m answers one of our recent probes.
func (c *Client) isPingAck(m bus.Message) bool {
	if m.Header.ParentID.IsZero() {
		return false
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for _, id := range c.pings {
		if id == m.Header.ParentID {
			return true
		}
	}
	return false
}

// sendLoop moves the bus queue to the cloud through the outbox at the
// rate limit, and renews the certificate when it is due.
func (c *Client) sendLoop(ctx context.Context, ws *wsConn, cert *tls.Certificate) error {
	lim := newLimiter(c.cfg.MessageQPS, c.cfg.MessageBurst, time.Now())
	tokenT := time.NewTimer(time.Hour)
	tokenT.Stop()
	defer tokenT.Stop()
	var tokenC <-chan time.Time
	var renewC <-chan time.Time
	renewT := time.NewTimer(time.Hour)
	renewT.Stop()
	defer renewT.Stop()
	// Only certificates of KubeEdge's token scheme (CN system:node:<node>)
	// are renewed; v0.3 certificates come from outside.
	if cert != nil && cert.Leaf != nil && cert.Leaf.Subject.CommonName == nodeCN(c.cfg.NodeName) &&
		c.cfg.CertServer != "" && !c.cfg.InsecureSkipVerify {
		renewT.Reset(time.Until(renewAt(cert.Leaf)))
		renewC = renewT.C
	}
	for {
		for c.out.len() > 0 && tokenC == nil {
			ok, wait := lim.take(time.Now())
			if !ok {
				tokenT.Reset(wait)
				tokenC = tokenT.C
				break
			}
			m, _ := c.out.pop()
			if err := c.send(ws, m); err != nil {
				if isStatus(m) || isDeviceReport(m) {
					c.enqueue(m) // sent again on the next link
				}
				return err
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-c.q.Ready():
			if m, ok := c.q.Next(); ok {
				c.enqueue(m)
			}
		case <-tokenC:
			tokenC = nil
		case <-renewC:
			if err := c.renewCert(ctx, *cert); err == nil {
				return errRenewed
			}
			renewT.Reset(c.cfg.RenewRetry)
		}
	}
}

// renewCert renews the node certificate with the current one.
func (c *Client) renewCert(ctx context.Context, cur tls.Certificate) error {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	if err := renew(rctx, c.cfg, cur); err != nil {
		c.log.Warn("certificate renewal failed, will retry", "err", err, "retry_in", c.cfg.RenewRetry)
		return err
	}
	c.renewals.Add(1)
	c.log.Info("certificate renewed, reconnecting")
	return nil
}

// send writes a bus message to the cloud. A message that cannot be encoded
// is dropped (its waiter told); only a failed write is an error.
func (c *Client) send(ws *wsConn, m bus.Message) error {
	err := c.write(ws, m)
	if errors.Is(err, bus.ErrBadContent) {
		c.offDrops.Add(1)
		c.log.Debug("message with invalid content dropped", "resource", m.Route.Resource)
		c.failSync(m, err.Error())
		return nil
	}
	return err
}

// write encodes m in the configured era and writes it as one text message
// (docs/protocol.md 2.4 "Framing") within the write deadline.
func (c *Client) write(ws *wsConn, m bus.Message) error {
	if c.cfg.Era == bus.EraV123 {
		m.Header.Sync = false // the v1.23 websocket layer never sends sync (docs/protocol.md 1.3)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := bus.Encode(c.wbuf[:0], m, c.cfg.Era)
	if err != nil {
		return err
	}
	if cap(buf) <= 64<<10 {
		c.wbuf = buf // keep a modest buffer for the next frame
	}
	if err := ws.SetWriteDeadline(deadline(c.cfg.WriteDeadline)); err != nil {
		return fmt.Errorf("hub: write: %w", err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, buf); err != nil {
		return fmt.Errorf("hub: write: %w", err)
	}
	c.framesOut.Add(1)
	return nil
}
