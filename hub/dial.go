package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Headers of the v1.23 identity (docs/protocol.md 2.4 "Required request
// headers"). They are set in the map directly so that they go on the wire
// spelled exactly like this.
const (
	headerNodeID        = "node_id"
	headerProjectID     = "project_id"
	headerConnectionUse = "ConnectionUse"
	connectionUseMsg    = "msg"
)

// maxPlacementBody bounds the placement answer.
const maxPlacementBody = 4 << 10

// linkURL is the websocket URL for both eras at once: the v0.3 cloud reads the
// identity from the path, the v1.23 cloud ignores the path (docs/protocol.md
// 2.1, 2.4, 8 item 2).
func linkURL(base, project, node string) string {
	return strings.TrimRight(base, "/") + "/" + project + "/" + node + "/events"
}

// tlsConfig is the client TLS config of the link: the cloud is verified
// against the CA file unless InsecureSkipVerify, and the node certificate
// is presented when there is one.
func (c *Client) tlsConfig(cert *tls.Certificate) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	if c.cfg.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
		return tc, nil
	}
	caPEM, err := os.ReadFile(c.cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("hub: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("hub: CA: no certificate in %s", c.cfg.CAFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// placement asks the placement server for the CloudHub base URL
// (docs/protocol.md 2.1; KubeEdge v0.3.0 edge/pkg/edgehub/controller.go
// getCloudHubURL): HTTPS GET, the body of a 200 answer is the base URL.
func (c *Client) placement(ctx context.Context, tc *tls.Config) (string, error) {
	client := oneShotClient(tc, c.cfg.HandshakeTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.PlacementURL, nil)
	if err != nil {
		return "", fmt.Errorf("hub: placement: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("hub: placement: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPlacementBody))
	if err != nil {
		return "", fmt.Errorf("hub: placement: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("hub: placement: %s", resp.Status)
	}
	base := strings.TrimSpace(string(b))
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" {
		return "", fmt.Errorf("hub: placement: answer %q is not a ws(s):// URL", base)
	}
	return base, nil
}

// dial opens the websocket link. It returns after the upgrade or when
// HandshakeTimeout or ctx ends.
//
// The link uses gorilla/websocket, the library CloudHub itself upgrades and
// writes with (KubeEdge v1.23.1 pkg/viaduct/pkg/server/ws.go and
// pkg/viaduct/pkg/lane/wsnopack.go): CloudHub's WriteJSON goes through a
// 4 KiB write buffer, so a message of more than 4 KiB arrives as a first
// frame and continuation frames, which gorilla reassembles. Like
// gorilla's own client, the dial sends no Origin header: CloudHub's
// Upgrader keeps the default CheckOrigin, which refuses (403) an Origin
// whose host is not the Host header.
func (c *Client) dial(ctx context.Context, cert *tls.Certificate) (*wsConn, error) {
	tc, err := c.tlsConfig(cert)
	if err != nil {
		return nil, err
	}
	if c.cfg.InsecureSkipVerify {
		c.log.Warn("not verifying the cloud's certificate (insecureSkipVerify)")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	base := "wss://" + c.cfg.Server
	if c.cfg.PlacementURL != "" {
		if base, err = c.placement(ctx, tc); err != nil {
			return nil, err
		}
	}
	u := linkURL(base, c.cfg.ProjectID, c.cfg.NodeName)
	// The map is filled directly so that the headers go on the wire
	// spelled exactly like this (gorilla copies them as they are).
	h := http.Header{
		headerNodeID:        {c.cfg.NodeName},
		headerProjectID:     {c.cfg.ProjectID},
		headerConnectionUse: {connectionUseMsg},
	}
	nd := &net.Dialer{
		KeepAlive: c.cfg.Heartbeat,
		Control:   userTimeout(2 * c.cfg.Heartbeat),
	}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		TLSClientConfig:  tc,
		HandshakeTimeout: c.cfg.HandshakeTimeout,
		ReadBufferSize:   readBufferSize,
		WriteBufferSize:  writeBufferSize,
	}
	if c.dialConn != nil {
		d.NetDialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dialConn(ctx) }
		d.NetDialContext = d.NetDialTLSContext
	}
	ws, resp, err := d.DialContext(ctx, u, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			err = fmt.Errorf("%w: %s", err, resp.Status)
		}
		return nil, fmt.Errorf("hub: dial %s: %w", u, err)
	}
	return ws, nil
}

// Buffer sizes of the link: gorilla's defaults, the size CloudHub writes
// with. Messages are not limited by them: a longer one is read in parts.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
)

// deadline returns now+d, or the zero time (no deadline) for d <= 0.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}
