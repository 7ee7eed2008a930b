package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ClientConfig configures a Client. The zero value gives the defaults.
type ClientConfig struct {
	// MaxMessage limits a response message. Default DefaultMaxMessage.
	MaxMessage int
}

// Client calls unary gRPC methods on one server over unencrypted HTTP/2,
// reusing one connection. It is safe for concurrent use; Close releases
// its connections.
type Client struct {
	cfg ClientConfig
	tr  *http.Transport
	hc  *http.Client
}

// NewClient returns a client of the server that dial connects to, e.g.
// a unix socket. It connects on the first call.
func NewClient(cfg ClientConfig, dial func(ctx context.Context) (net.Conn, error)) *Client {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols:         &p,
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		ForceAttemptHTTP2: true,
		IdleConnTimeout:   time.Minute,
	}
	return &Client{cfg: cfg, tr: tr, hc: &http.Client{Transport: tr}}
}

// UnixClient returns a client of the server on the unix socket path.
func UnixClient(cfg ClientConfig, path string) *Client {
	return NewClient(cfg, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	})
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Call sends req to method ("/<package>.<Service>/<Method>") and returns
// the response message. It blocks until the answer or ctx's end; ctx's
// deadline is sent as grpc-timeout. A non-OK status is a *Status error; a
// failure to reach the server is an error with Unavailable's meaning
// (CodeOf gives Unavailable).
func (c *Client) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	body := appendFrame(make([]byte, 0, 5+len(req)), req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+method, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("rpc: call %s: %w", method, err)
	}
	hr.Header.Set("Content-Type", "application/grpc")
	hr.Header.Set("Te", "trailers")
	if dl, ok := ctx.Deadline(); ok {
		hr.Header.Set("Grpc-Timeout", formatTimeout(time.Until(dl)))
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Status{Code: DeadlineExceeded, Message: fmt.Sprintf("call %s: %v", method, err)}
		}
		return nil, &Status{Code: Unavailable, Message: fmt.Sprintf("call %s: %v", method, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &Status{Code: Unknown, Message: fmt.Sprintf("call %s: HTTP status %d", method, resp.StatusCode)}
	}
	if s := resp.Header.Get("Grpc-Status"); s != "" {
		// Trailers-only: the status is in the headers and no message follows.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
		return nil, parseStatus(s, resp.Header.Get("Grpc-Message"))
	}
	msg, rerr := readUnary(resp.Body, c.cfg.MaxMessage)
	if s := resp.Trailer.Get("Grpc-Status"); s != "" && s != "0" {
		return nil, parseStatus(s, resp.Trailer.Get("Grpc-Message"))
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, &Status{Code: DeadlineExceeded, Message: fmt.Sprintf("call %s: %v", method, rerr)}
		}
		code := Internal
		if errors.Is(rerr, ErrTooLarge) {
			code = ResourceExhausted
		}
		return nil, &Status{Code: code, Message: fmt.Sprintf("call %s: %v", method, rerr)}
	}
	if resp.Trailer.Get("Grpc-Status") == "" {
		return nil, &Status{Code: Internal, Message: "call " + method + ": no grpc-status"}
	}
	return msg, nil
}

func parseStatus(code, msg string) error {
	n, err := strconv.ParseUint(code, 10, 32)
	if err != nil {
		return &Status{Code: Unknown, Message: "bad grpc-status " + code}
	}
	if n == 0 {
		return &Status{Code: Internal, Message: "status OK without a message"}
	}
	return &Status{Code: Code(n), Message: decodeMessage(msg)}
}
