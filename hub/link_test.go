package hub

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"edgenode/bus"
	"edgenode/hub/hubtest"
)

func TestBootstrapThenReuseCertificate(t *testing.T) {
	srv := newServer(t, hubtest.Config{Authorize: true})
	cfg := testConfig(t, srv, bus.EraV123)
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("first connection event = %q, want %q", got, bus.CloudConnected)
	}
	if err := srv.WaitConnects(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if got := srv.Issued(); got != 1 {
		t.Errorf("certificates issued = %d, want 1", got)
	}
	// No connection to the certificate server is kept open: nothing asks
	// it again until the next renewal.
	waitConnsClosed(t, "the certificate server", func() int64 { return int64(srv.CertConns()) })
	full := n.c.Config()
	pemBytes, err := os.ReadFile(full.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := leaf.Subject.CommonName, "system:node:"+testNode; got != want {
		t.Errorf("certificate CN = %q, want %q", got, want)
	}
	if fi, err := os.Stat(full.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	keyPEM, _ := os.ReadFile(full.KeyFile)
	if blk, _ := pem.Decode(keyPEM); blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Errorf("key file is not an EC PRIVATE KEY PEM")
	}
	if node, project := srv.Node(); node != testNode || project != DefaultProjectID {
		t.Errorf("server sees node %q project %q, want %q %q", node, project, testNode, DefaultProjectID)
	}
	n.stop()

	// Restart on the same data dir without a token: the saved certificate
	// is used and none is issued.
	cfg.Token = ""
	n2 := startNode(t, cfg)
	if got := n2.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("after restart: event = %q, want %q", got, bus.CloudConnected)
	}
	if got := srv.Issued(); got != 1 {
		t.Errorf("certificates issued after restart = %d, want 1", got)
	}
	if err := srv.WaitConnects(ctxT(t), 2); err != nil {
		t.Errorf("server connects: %v", err)
	}
}

func TestEraIdentity(t *testing.T) {
	for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
		t.Run(era.String(), func(t *testing.T) {
			srv := newServer(t, hubtest.Config{Era: era})
			cfg := testConfig(t, srv, era)
			cfg.ProjectID = "proj-1"
			n := startNode(t, cfg)
			if got := n.recvConn(fakeTwin); got != bus.CloudConnected {
				t.Fatalf("twin event = %q, want %q", got, bus.CloudConnected)
			}
			if err := srv.WaitConnects(ctxT(t), 1); err != nil {
				t.Fatal(err)
			}
			if node, project := srv.Node(); node != testNode || project != "proj-1" {
				t.Errorf("server sees node %q project %q, want %q proj-1", node, project, testNode)
			}
			ka, err := srv.WaitFor(ctxT(t), isOp(bus.OpKeepalive))
			if err != nil {
				t.Fatal(err)
			}
			if ka.Route.Source != bus.ModuleHub || ka.Route.Group != bus.GroupResource || ka.Route.Resource != bus.ResNode || string(ka.Content) != `"ping"` {
				t.Errorf("keepalive = %+v %s, want websocket/resource/keepalive node \"ping\"", ka.Route, ka.Content)
			}
		})
	}
}

func TestServerRejectsMissingHeaders(t *testing.T) {
	// The v1.23 cloud needs node_id, project_id and ConnectionUse (docs/protocol.md
	// 2.4); an upgrade that lacks one is refused, and the client's own
	// upgrade, which carries all three, is accepted.
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	cert, err := n.c.loadCert()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := n.c.tlsConfig(&cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc2 := range []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"no headers", http.Header{}, http.StatusBadRequest},
		{"no ConnectionUse", http.Header{"node_id": {testNode}, "project_id": {"p"}}, http.StatusBadRequest},
		{"no node_id", http.Header{"project_id": {"p"}, "ConnectionUse": {"msg"}}, http.StatusBadRequest},
		// CloudHub keeps gorilla's default CheckOrigin: an Origin whose
		// host is not the Host header is refused (what a real v1.23.1
		// cloud did to an Origin of https://<node>).
		{"foreign Origin", http.Header{"node_id": {testNode}, "project_id": {"p"}, "ConnectionUse": {"msg"},
			"Origin": {"https://" + testNode}}, http.StatusForbidden},
	} {
		t.Run(tc2.name, func(t *testing.T) {
			d := websocket.Dialer{TLSClientConfig: tc}
			ws, resp, err := d.DialContext(ctxT(t), linkURL("wss://"+srv.Addr, "p", testNode), tc2.hdr)
			if err == nil {
				ws.Close()
				t.Fatalf("DialContext(%v) = nil error, want refused", tc2.hdr)
			}
			if resp == nil || resp.StatusCode != tc2.status {
				t.Errorf("DialContext(%v) answer = %v, want status %d", tc2.hdr, resp, tc2.status)
			}
		})
	}
	if got := srv.Rejected(); got != 4 {
		t.Errorf("rejected upgrades = %d, want 4", got)
	}
}

func TestKeepaliveCadence(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	// The probe makes two silent heartbeats end the link: 500 ms leaves a
	// loaded machine a second to answer; at 100 ms a 200 ms stall ended
	// the link, and the new link's keepalive at connect shortened the span.
	cfg.Heartbeat = 500 * time.Millisecond
	startNode(t, cfg)
	const want = 6
	if err := srv.WaitCount(ctxT(t), want, isOp(bus.OpKeepalive)); err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, r := range srv.Records() {
		if r.Msg.Route.Operation == bus.OpKeepalive {
			times = append(times, r.Time)
		}
	}
	// A keepalive at connect, then one per heartbeat: n keepalives span at
	// least n-1 heartbeats (a lower bound only; a slow machine stretches
	// it).
	span := times[want-1].Sub(times[0])
	if min := time.Duration(want-1) * cfg.Heartbeat * 9 / 10; span < min {
		t.Errorf("%d keepalives within %v, want at least %v apart in total", want, span, min)
	}
	// Each keepalive is followed by a probe that the cloud answers.
	if err := srv.WaitCount(ctxT(t), want-1, isOp(bus.OpPing)); err != nil {
		t.Fatal(err)
	}
}

func TestHalfOpenDetectedWithinTwoHeartbeats(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	// Short enough for a quick test, long enough that a slow machine
	// (ARMv6 under qemu) does not leave a healthy link silent for two
	// heartbeats; exact timing is checked on fake time in
	// TestLinkTimingSynctest.
	cfg.Heartbeat = time.Second
	// The reconnect waits 3-6 s (backoff jitters to between half and all
	// of BackoffMin): the keepalives counted below are then all from the
	// dead link, even when this goroutine reads them late on a loaded
	// machine; with the usual 10 ms backoff the new link's first keepalive
	// could be counted too.
	cfg.BackoffMin, cfg.BackoffMax = 6*time.Second, 6*time.Second
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q", got)
	}
	if err := srv.WaitConnects(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	// A healthy but otherwise silent cloud keeps the link: the probes'
	// answers are enough.
	if err := srv.WaitCount(ctxT(t), 5, isOp(bus.OpKeepalive)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Connects(); got != 1 {
		t.Fatalf("connects on a healthy silent link = %d, want 1", got)
	}
	before := n.c.Stats().Keepalives
	if !srv.HalfOpen() {
		t.Fatal("HalfOpen: no link")
	}
	if got := n.recvConn(fakeMeta); got != bus.CloudDisconnected {
		t.Fatalf("event after half-open = %q, want disconnected", got)
	}
	// The read deadline is two heartbeats after the last frame: at most
	// two more keepalives go into the dead link.
	if got := n.c.Stats().Keepalives - before; got > 2 {
		t.Errorf("keepalives written into the half-open link = %d, want at most 2", got)
	}
	if got := n.c.Stats().SilentLinks; got != 1 {
		t.Errorf("Stats().SilentLinks = %d, want 1", got)
	}
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event after reconnect = %q, want connected", got)
	}
	if err := srv.WaitConnects(ctxT(t), 2); err != nil {
		t.Error(err)
	}
}

func TestSeedCloudSilenceIsNotDeath(t *testing.T) {
	// A v0.3 cloud answers nothing; without the probe there is no read
	// deadline and the link stays up.
	srv := newServer(t, hubtest.Config{Era: bus.EraV03})
	cfg := testConfig(t, srv, bus.EraV03)
	cfg.Heartbeat = 50 * time.Millisecond
	n := startNode(t, cfg)
	if err := srv.WaitCount(ctxT(t), 8, isOp(bus.OpKeepalive)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Connects(); got != 1 {
		t.Errorf("connects = %d, want 1", got)
	}
	if n.c.Config().Probe != ProbeNone {
		t.Errorf("probe for v0.3 = %q, want none", n.c.Config().Probe)
	}
	for _, m := range srv.Received() {
		if m.Route.Operation == bus.OpPing {
			t.Fatalf("v0.3 link got a viaduct ping: %+v", m.Route)
		}
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	n := startNode(t, testConfig(t, srv, bus.EraV123))
	for _, want := range []string{bus.CloudConnected} {
		for _, m := range []bus.Module{fakeMeta, fakeTwin, fakeBus} {
			if got := n.recvConn(m); got != want {
				t.Fatalf("%s event = %q, want %q", m, got, want)
			}
		}
	}
	for i := 2; i <= 4; i++ {
		// The client may see the upgrade before the server registers the
		// link; drop only a link the server has.
		if err := srv.WaitConnects(ctxT(t), i-1); err != nil {
			t.Fatal(err)
		}
		srv.Drop()
		for _, want := range []string{bus.CloudDisconnected, bus.CloudConnected} {
			for _, m := range []bus.Module{fakeMeta, fakeTwin, fakeBus} {
				if got := n.recvConn(m); got != want {
					t.Fatalf("drop %d: %s event = %q, want %q", i, m, got, want)
				}
			}
		}
	}
	if got := n.c.Stats().Connects; got != 4 {
		t.Errorf("Stats().Connects = %d, want 4", got)
	}
}

func TestPlacementURL(t *testing.T) {
	// The v0.3-era way to find CloudHub: GET the placement URL, whose body is
	// the base URL; the link goes to <base>/<project>/<node>/events
	// (docs/protocol.md 2.1). The v0.3 cloud does not ask for a verified
	// certificate, and v0.3 edges did not verify the cloud.
	srv := newServer(t, hubtest.Config{Era: bus.EraV03})
	place := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/placement_external/message_queue" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "wss://"+srv.Addr+"\n")
	}))
	var open atomic.Int64 // connections to the placement server
	place.Config.ConnState = hubtest.CountConns(&open)
	place.StartTLS()
	defer place.Close()
	cfg := Config{PlacementURL: place.URL + "/v1/placement_external/message_queue", InsecureSkipVerify: true,
		NodeName: testNode, DataDir: t.TempDir(), Era: bus.EraV03, ProjectID: "proj",
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	if err := srv.WaitConnects(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if node, project := srv.Node(); node != testNode || project != "proj" {
		t.Errorf("cloud sees node %q project %q, want %q proj", node, project, testNode)
	}
	waitConnsClosed(t, "the placement server", open.Load)
}

// waitConnsClosed fails t unless the node has closed its connections to a
// server (open counts them) within 10 s of its requests.
func waitConnsClosed(t *testing.T, server string, open func() int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); open() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to %s still open 10 s after the requests", open(), server)
		}
	}
}

func TestStopSaysGoodbye(t *testing.T) {
	// A node that stops closes the link with a websocket close (1000), not
	// a bare TCP close that CloudHub logs as an abnormal closure (1006).
	srv := newServer(t, hubtest.Config{})
	n := startNode(t, testConfig(t, srv, bus.EraV123))
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	// The server serves the link a moment after the node sees it up.
	if err := srv.WaitConnects(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	n.stop()
	if err := srv.WaitDisconnected(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := srv.CloseCodes(); len(got) != 1 || got[0] != websocket.CloseNormalClosure {
		t.Errorf("close codes = %v, want [1000]", got)
	}
}
