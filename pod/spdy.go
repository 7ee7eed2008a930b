package pod

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

// The remote command protocol the kubelet speaks to the API server for
// exec and attach: an HTTP upgrade to SPDY/3.1 in which the client opens
// one stream per channel (Kubernetes v1.32
// k8s.io/apimachinery/pkg/util/httpstream and .../httpstream/spdy,
// k8s.io/kubelet/pkg/cri/streaming/remotecommand/httpstream.go). Only the
// SPDY framing comes from a library (moby/spdystream, what apimachinery
// uses); negotiation and channels are here.

// Remote command protocol versions served, best first
// (k8s.io/apimachinery/pkg/util/remotecommand/constants.go). v4 carries
// the exit code as a JSON Status on the error stream; v3 adds resize to
// v2; v2 writes errors as text. v1 (channel.k8s.io) is not served.
const (
	protoV4 = "v4.channel.k8s.io"
	protoV3 = "v3.channel.k8s.io"
	protoV2 = "v2.channel.k8s.io"
)

var remoteProtocols = []string{protoV4, protoV3, protoV2}

// Header names and values of the upgrade.
const (
	hdrProtocol  = "X-Stream-Protocol-Version"
	hdrAccepted  = "X-Accepted-Stream-Protocol-Versions"
	spdyUpgrade  = "SPDY/3.1"
	hdrStreamTyp = "streamType" // on each SPDY stream: which channel it is
)

// Timeouts of a remote command connection: the client has this long to
// open its streams (the kubelet's streamCreationTimeout), and an idle
// connection ends after the kubelet's streamingConnectionIdleTimeout.
const (
	streamCreationTimeout = 30 * time.Second
	streamIdleTimeout     = 4 * time.Hour
)

// execOptions are the channels a client asked for.
type execOptions struct {
	stdin, stdout, stderr, tty bool
}

// remoteConn is an upgraded connection with its streams. A stream the
// client did not ask for is nil.
type remoteConn struct {
	conn   *spdystream.Connection
	raw    net.Conn
	served chan struct{} // closed when Serve has returned
	proto  string
	all    []*spdystream.Stream
	wg     sync.WaitGroup // goroutines of run

	stdin, stdout, stderr, errs, resize *spdystream.Stream
}

// negotiate picks the first protocol the client offers that we serve
// (httpstream.Handshake), or answers the request with the kubelet's error.
func negotiate(w http.ResponseWriter, req *http.Request) (string, bool) {
	var offered []string
	for _, h := range req.Header.Values(hdrProtocol) {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
	}
	if len(offered) == 0 {
		http.Error(w, "unable to upgrade: "+hdrProtocol+" is required", http.StatusBadRequest)
		return "", false
	}
	for _, p := range offered {
		for _, s := range remoteProtocols {
			if p == s {
				return p, true
			}
		}
	}
	for _, s := range remoteProtocols {
		w.Header().Add(hdrAccepted, s)
	}
	http.Error(w, fmt.Sprintf("unable to upgrade: unable to negotiate protocol: client supports %v, server accepts %v",
		offered, remoteProtocols), http.StatusForbidden)
	return "", false
}

// isSPDYUpgrade reports whether req asks for the SPDY/3.1 upgrade
// (spdy.responseUpgrader.UpgradeResponse).
func isSPDYUpgrade(req *http.Request) bool {
	return strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") &&
		strings.Contains(strings.ToLower(req.Header.Get("Upgrade")), strings.ToLower(spdyUpgrade))
}

// upgrade answers 101, starts SPDY on the hijacked connection and waits
// for the streams o asks for. The caller must Close the result. Errors
// before the 101 are answered on w; after it there is no one to tell.
func upgrade(w http.ResponseWriter, req *http.Request, proto string, o execOptions) (*remoteConn, error) {
	if !isSPDYUpgrade(req) {
		http.Error(w, "unable to upgrade: missing upgrade headers in request", http.StatusBadRequest)
		return nil, errors.New("not an upgrade")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "unable to upgrade: unable to hijack response", http.StatusInternalServerError)
		return nil, errors.New("cannot hijack")
	}
	raw, brw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack: %w", err)
	}
	raw = &bufConn{Conn: raw, r: brw.Reader}
	if _, err := io.WriteString(raw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+spdyUpgrade+
		"\r\n"+hdrProtocol+": "+proto+"\r\n\r\n"); err != nil {
		raw.Close()
		return nil, err
	}
	sc, err := spdystream.NewConnection(raw, true)
	if err != nil {
		raw.Close()
		return nil, err
	}
	rc := &remoteConn{conn: sc, raw: raw, proto: proto, served: make(chan struct{})}
	sc.SetIdleTimeout(streamIdleTimeout)
	incoming := make(chan *spdystream.Stream)
	collected := make(chan struct{})
	go func() {
		defer close(rc.served)
		sc.Serve(func(s *spdystream.Stream) {
			// Called by spdystream's frame workers. The reply goes out
			// before the stream is used, as apimachinery's replySent
			// ensures.
			_ = s.SendReply(http.Header{}, false)
			select {
			case incoming <- s:
			case <-collected:
				_ = s.Reset() // a stream past the ones expected
			}
		})
	}()
	err = rc.collect(incoming, o)
	close(collected)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return rc, nil
}

// collect takes the streams the options call for: error, each requested
// stdio stream and resize with a tty (v3 and v4).
func (rc *remoteConn) collect(incoming <-chan *spdystream.Stream, o execOptions) error {
	want := 1
	for _, b := range []bool{o.stdin, o.stdout, o.stderr, o.tty && rc.proto != protoV2} {
		if b {
			want++
		}
	}
	expired := time.NewTimer(streamCreationTimeout)
	defer expired.Stop()
	for len(rc.all) < want {
		select {
		case s := <-incoming:
			rc.all = append(rc.all, s)
			switch s.Headers().Get(hdrStreamTyp) {
			case "error":
				rc.errs = s
			case "stdin":
				rc.stdin = s
			case "stdout":
				rc.stdout = s
			case "stderr":
				rc.stderr = s
			case "resize":
				rc.resize = s
			}
		case <-rc.served:
			return errors.New("connection closed before the streams were opened")
		case <-expired.C:
			return errors.New("timed out waiting for client to create streams")
		}
	}
	if rc.errs == nil {
		return errors.New("client opened no error stream")
	}
	return nil
}

// Close resets every stream (so no graceful shutdown waits on them),
// closes the connection and waits for spdystream's reader to end.
func (rc *remoteConn) Close() {
	for _, s := range rc.all {
		_ = s.Reset()
	}
	_ = rc.conn.Close()
	_ = rc.raw.Close()
	<-rc.served
	rc.wg.Wait()
}

// run starts f in a goroutine that Close waits for; f must end when the
// streams are reset.
func (rc *remoteConn) run(f func()) {
	rc.wg.Add(1)
	go func() {
		defer rc.wg.Done()
		f()
	}()
}

// context returns a context that ends with parent or when the connection
// closes (the client went away).
func (rc *remoteConn) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	rc.run(func() {
		select {
		case <-rc.served:
			cancel()
		case <-ctx.Done():
		}
	})
	return ctx, cancel
}

// bufConn reads what the hijacking buffered before the connection itself.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// status is the metav1.Status the kubelet writes on the error stream
// (k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go, ServeExec;
// apimachinery api/errors NewInternalError), with the field names and
// omitempty rules of its JSON.
type status struct {
	Metadata struct{}       `json:"metadata"`
	Status   string         `json:"status,omitempty"`
	Message  string         `json:"message,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Details  *statusDetails `json:"details,omitempty"`
	Code     int32          `json:"code,omitempty"`
}

type statusDetails struct {
	Causes []statusCause `json:"causes,omitempty"`
}

type statusCause struct {
	Type    string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// exitStatus is the error stream's report of a command that ended with
// code (0: Success). A command that could not run gives err instead.
func exitStatus(code int, cmd []string, err error) status {
	switch {
	case err != nil:
		return status{Status: "Failure", Code: http.StatusInternalServerError, Reason: "InternalError",
			Message: "Internal error occurred: " + err.Error(),
			Details: &statusDetails{Causes: []statusCause{{Message: err.Error()}}}}
	case code != 0:
		return status{Status: "Failure", Reason: "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: error executing command %v, exit code %d", cmd, code),
			Details: &statusDetails{Causes: []statusCause{{Type: "ExitCode", Message: fmt.Sprint(code)}}}}
	}
	return status{Status: "Success"}
}

// writeStatus sends st on the error stream: v4 as JSON, v2 and v3 as the
// message text and only on failure (v1WriteStatusFunc).
func (rc *remoteConn) writeStatus(st status) error {
	if rc.proto != protoV4 {
		if st.Status == "Success" {
			return nil
		}
		_, err := rc.errs.Write([]byte(st.Message))
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = rc.errs.Write(b)
	return err
}

// termSize is one message of the resize stream
// (k8s.io/client-go/tools/remotecommand TerminalSize).
type termSize struct {
	Width  uint16
	Height uint16
}

// readResizes calls f for each size the client sends on r, until r ends
// or holds something that is not a size.
func readResizes(r io.Reader, f func(termSize)) {
	d := json.NewDecoder(r)
	for {
		var s termSize
		if err := d.Decode(&s); err != nil {
			return
		}
		f(s)
	}
}
