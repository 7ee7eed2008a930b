package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"edgenode/stream"
	"edgenode/stream/streamtest"
)

// countHandler counts log records at Warn and above.
type countHandler struct{ warns atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

type edge struct {
	srv    *streamtest.Server
	c      *stream.Client
	logs   *countHandler
	cancel context.CancelFunc
	done   chan error
}

func startEdge(t *testing.T, h http.Handler, mod func(*stream.Config, *streamtest.Server)) *edge {
	t.Helper()
	srv, cfg := streamtest.Start(t, "node1")
	cfg.NodeIP = func() string { return "192.0.2.7" }
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 40*time.Millisecond
	if mod != nil {
		mod(&cfg, srv)
	}
	logs := &countHandler{}
	c, err := stream.New(cfg, h, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &edge{srv: srv, c: c, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- c.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

func (e *edge) stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

// tunnel waits for the edge's tunnel, with ctxT's deadline.
func (e *edge) tunnel(t *testing.T) (context.Context, *streamtest.Tunnel) {
	t.Helper()
	ctx := ctxT(t)
	tun, err := e.srv.Tunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, tun
}

// openReq opens a request of typ for pathQuery on tun, as cloudstream
// does for a kubectl logs or exec.
func openReq(t *testing.T, tun *streamtest.Tunnel, typ stream.Type, pathQuery string) *streamtest.Request {
	t.Helper()
	r, err := tun.Open(typ, pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testHandler stands in for pod's kubelet paths.
func testHandler(seen chan<- *http.Request) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r:
		default:
		}
		fmt.Fprintf(w, "hello %s\n", r.URL.Query().Get("name"))
	})
	mux.HandleFunc("/follow", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; ; i++ {
			fmt.Fprintf(w, "line %d\n", i)
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100<<10)))
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	// /exec/echo upgrades and echoes what it reads until the cloud ends
	// the connection; /exec/once answers one read in upper case and ends.
	mux.HandleFunc("/exec/{what}", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\n\r\n")
		if r.PathValue("what") == "once" {
			b := make([]byte, 64)
			n, _ := brw.Read(b)
			conn.Write(bytes.ToUpper(b[:n]))
			return
		}
		io.Copy(conn, brw)
	})
	return mux
}

func TestTunnelServesRequests(t *testing.T) {
	seen := make(chan *http.Request, 1)
	e := startEdge(t, testHandler(seen), nil)
	ctx, tun := e.tunnel(t)
	if got := tun.Header.Get("SessionHostNameOverride"); got != "node1" {
		t.Errorf("SessionHostNameOverride = %q, want node1", got)
	}
	if got := tun.Header.Get("SessionInternalIP"); got != "192.0.2.7" {
		t.Errorf("SessionInternalIP = %q, want 192.0.2.7", got)
	}

	tests := []struct {
		name string
		typ  stream.Type
		path string
		want string
	}{
		{"logs", stream.TypeLogs, "/hello?name=a", "hello a\n"},
		{"metrics", stream.TypeMetrics, "/hello?name=b", "hello b\n"},
		{"not found", stream.TypeMetrics, "/nothing", "404 page not found\n"},
		{"big body", stream.TypeLogs, "/big", strings.Repeat("x", 100<<10)},
		{"handler panic", stream.TypeLogs, "/panic", "edgenode: internal error serving /panic\n"},
		{"exec not found", stream.TypeExec, "/exec/ns/p/c/d?command=ls", "HTTP/1.1 404 Not Found\r\n"},
		{"attach not found", stream.TypeAttach, "/attach/ns/p/c", "HTTP/1.1 404 Not Found\r\n"},
		{"exec handler panic", stream.TypeExec, "/panic", "HTTP/1.1 500 Internal Server Error\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openReq(t, tun, tt.typ, tt.path)
			got, err := r.ReadAll(ctx)
			if err != nil {
				t.Fatalf("ReadAll(%s) error %v", tt.path, err)
			}
			if !strings.HasPrefix(string(got), tt.want) {
				t.Errorf("ReadAll(%s) = %.80q, want prefix %.80q", tt.path, got, tt.want)
			}
		})
	}
	r := <-seen
	if got := r.Header.Get("Accept-Encoding"); got != "identity" {
		t.Errorf("Accept-Encoding = %q, want identity (never compressed through the tunnel)", got)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer x" {
		t.Errorf("Authorization = %q, want the forwarded header", got)
	}
	if n := tun.NonText.Load(); n != 0 {
		t.Errorf("%d non-Text messages, want 0 (cloudstream drops the tunnel)", n)
	}
}

// TestExecCarriesRawBytes: an exec connection is hijacked and carries
// bytes both ways until either side ends it.
func TestExecCarriesRawBytes(t *testing.T) {
	e := startEdge(t, testHandler(nil), nil)
	ctx, tun := e.tunnel(t)
	readUntil := func(r *streamtest.Request, want string) { readUntil(ctx, t, r, want) }

	t.Run("cloud ends", func(t *testing.T) {
		r := openReq(t, tun, stream.TypeExec, "/exec/echo")
		readUntil(r, "101 Switching Protocols\r\n\r\n")
		big := strings.Repeat("0123456789", 30<<10) // more than the edge queues
		go func() {
			for i := 0; i < len(big); i += 256 {
				if r.Write([]byte(big[i:min(i+256, len(big))])) != nil {
					return
				}
			}
			r.Write([]byte("ping"))
		}()
		readUntil(r, "ping")
		if err := r.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("edge ends", func(t *testing.T) {
		r := openReq(t, tun, stream.TypeExec, "/exec/once")
		readUntil(r, "\r\n\r\n")
		if err := r.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadAll(ctx)
		if err != nil || string(got) != "ABC" {
			t.Errorf("ReadAll() = %q, %v, want ABC then RemoveConnect", got, err)
		}
	})
}

// readUntil reads r's Data until it holds want, failing the test if the
// edge ends the request or ctx ends first.
func readUntil(ctx context.Context, t *testing.T, r *streamtest.Request, want string) {
	t.Helper()
	var got string
	for !strings.Contains(got, want) {
		d, ok, err := r.Next(ctx)
		if err != nil || !ok {
			t.Fatalf("Next() = %q, %v, %v after %q, want %q", d, ok, err, got, want)
		}
		got += string(d)
	}
}

func TestFollowEndsOnRemove(t *testing.T) {
	e := startEdge(t, testHandler(nil), nil)
	ctx, tun := e.tunnel(t)
	r := openReq(t, tun, stream.TypeLogs, "/follow")
	readUntil(ctx, t, r, "line 2\n")
	if err := r.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownIDsAndTypes(t *testing.T) {
	e := startEdge(t, testHandler(nil), nil)
	ctx, tun := e.tunnel(t)
	// Data and RemoveConnect for an unknown id: dropped, no answer, as
	// edgecore drops them. An unknown type and a connect message that
	// cannot be served: answered with RemoveConnect.
	for _, f := range []stream.Frame{
		{ID: 900, Type: stream.TypeData, Data: []byte("x")},
		{ID: 901, Type: stream.TypeRemove},
		{ID: 902, Type: 42},
		{ID: 903, Type: stream.TypeLogs, Data: []byte("{not json")},
	} {
		if err := tun.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	want := map[uint64]bool{902: true, 903: true}
	for len(want) > 0 {
		select {
		case f := <-tun.Unmatched:
			if f.ID == 900 || f.ID == 901 {
				t.Errorf("answer %v to a frame for an unknown id, want none", f.Type)
			}
			if f.Type == stream.TypeRemove {
				delete(want, f.ID)
			}
		case <-ctx.Done():
			t.Fatalf("no RemoveConnect for ids %v", want)
		}
	}
	noneUnmatched(ctx, t, tun) // and the tunnel is still up and serving
}

// noneUnmatched serves one logs request through tun, then fails for each
// frame the edge sent for an id the cloud does not serve, as cloudcore
// logs an error for each (KubeEdge v1.23.1
// cloud/pkg/cloudstream/session.go, ProxyTunnelMessageToApiserver).
// Frames come in order, so the answers to whatever was sent before the
// request have arrived once it has ended.
func noneUnmatched(ctx context.Context, t *testing.T, tun *streamtest.Tunnel) {
	t.Helper()
	r := openReq(t, tun, stream.TypeLogs, "/hello?name=z")
	if got, err := r.ReadAll(ctx); err != nil || string(got) != "hello z\n" {
		t.Errorf("ReadAll() = %q, %v, want hello z", got, err)
	}
	for {
		select {
		case f := <-tun.Unmatched:
			t.Errorf("frame %v for connection %d, which the cloud does not serve", f.Type, f.ID)
		default:
			return
		}
	}
}

// TestExecClosedByClient: once the client of an exec has closed its side,
// cloudstream sends RemoveConnect at every read until the edge answers
// (KubeEdge v1.23.1 cloud/pkg/cloudstream/containerexec_connection.go,
// Serve). The edge ends the connection once and sends one RemoveConnect;
// the ones that come after it are not answered.
func TestExecClosedByClient(t *testing.T) {
	e := startEdge(t, testHandler(nil), nil)
	ctx, tun := e.tunnel(t)
	r := openReq(t, tun, stream.TypeExec, "/exec/echo")
	readUntil(ctx, t, r, "\r\n\r\n") // the upgrade's answer
	for range 200 {
		if err := r.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-r.Removed():
	case <-ctx.Done():
		t.Fatal("no RemoveConnect from the edge")
	}
	noneUnmatched(ctx, t, tun)
}

func TestCloseConnectRedials(t *testing.T) {
	e := startEdge(t, testHandler(nil), nil)
	ctx, tun := e.tunnel(t)
	if err := tun.Send(stream.Frame{ID: 0, Type: stream.TypeClose, Data: []byte("node update failed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Tunnel(ctx); err != nil {
		t.Fatalf("no redial after CloseConnect: %v", err)
	}
}

func TestQuietWhileRefused(t *testing.T) {
	e := startEdge(t, testHandler(nil), func(c *stream.Config, srv *streamtest.Server) {
		c.BackoffMin, c.BackoffMax = time.Millisecond, 2*time.Millisecond
		srv.Refuse(true)
	})
	ctx := ctxT(t)
	for e.srv.Dials() < 8 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d dials", e.srv.Dials())
		case <-time.After(5 * time.Millisecond):
		}
	}
	e.stop()
	if n := e.logs.warns.Load(); n != 1 {
		t.Errorf("%d warnings for %d failed dials, want 1", n, e.srv.Dials()-1)
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	e := startEdge(t, testHandler(nil), nil)
	ctx, tun := e.tunnel(t)
	r := openReq(t, tun, stream.TypeLogs, "/follow")
	if _, _, err := r.Next(ctx); err != nil {
		t.Fatal(err)
	}
	e.cancel()
	select {
	case err := <-e.done:
		e.cancel = nil
		if err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return with a request in flight")
	}
	// The cloud read a clean end: cloudcore logs an abnormal closure
	// (1006) as a reader error.
	select {
	case <-tun.Done():
	case <-ctx.Done():
		t.Fatal("the tunnel is still up after Run returned")
	}
	if c := tun.CloseCode(); c != websocket.CloseNormalClosure {
		t.Errorf("tunnel closed with code %d, want %d (normal closure)", c, websocket.CloseNormalClosure)
	}
}
