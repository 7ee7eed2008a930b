package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/db"

	"edgenode/stream"
	"edgenode/stream/streamtest"
)

// TestRunServesStream runs the node with a cloud configured and checks
// that the stream module dials the tunnel with the node certificate and
// serves the pod module's kubelet paths through it.
func TestRunServesStream(t *testing.T) {
	srv, err := streamtest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cert, key, err := srv.WriteNodeCert(t.TempDir(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	early, stop := runInProcess(t, "n1", func(c *Config) {
		// CloudHub is unreachable; the tunnel does not depend on it once
		// the node is known, here from an earlier run: meta kept the node
		// object the cloud returned.
		c.Hub.Server, c.Hub.CertFile, c.Hub.KeyFile = "127.0.0.1:1", cert, key
		c.Stream.Server = srv.Addr()
		storeNode(t, c.DataDir, "n1")
	})
	wctx, wcancel := context.WithTimeout(early, time.Minute)
	defer wcancel()
	tun, err := srv.Tunnel(wctx)
	if err != nil {
		t.Fatalf("no tunnel from the node: %v (run: %v)", err, stop())
	}
	if got := tun.Header.Get("SessionHostNameOverride"); got != "n1" {
		t.Errorf("SessionHostNameOverride = %q, want n1", got)
	}
	// The node's InternalIP: as its status gives it, or as the board
	// picks it when no status was made yet (the cloud is unreachable).
	if got, want := tun.Header.Get("SessionInternalIP"), pickAddress(""); got != want {
		t.Errorf("SessionInternalIP = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		typ        stream.Type
		path, want string
	}{
		{stream.TypeLogs, "/containerLogs/default/nope/c", "pod \"nope\" does not exist\n"},
		{stream.TypeMetrics, "/metrics/resource", "node_cpu_usage_seconds_total "},
	} {
		r, err := tun.Open(tt.typ, tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadAll(wctx)
		if err != nil || !strings.Contains(string(got), tt.want) {
			t.Errorf("%s = %q, %v, want it to contain %q", tt.path, got, err, tt.want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("run() = %v, want nil", err)
	}
}

// storeNode puts the node object into the store under dataDir as meta
// keeps it once the cloud has answered the node's insert.
func storeNode(t *testing.T, dataDir, node string) {
	t.Helper()
	d, err := db.Open(t.Context(), filepath.Join(dataDir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	obj := `{"kind":"Node","apiVersion":"v1","metadata":{"name":"` + node + `","uid":"uid-` + node + `"}}`
	if err := d.UpsertMeta(t.Context(), db.Meta{Key: "null/node/" + node, Type: "node", Value: obj}); err != nil {
		t.Fatal(err)
	}
}

// TestAfterNodeWaits: a module wrapped in afterNode starts only once the
// node is known, and not at all when the node stops first.
func TestAfterNodeWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		known := make(chan struct{})
		started := make(chan struct{})
		m := afterNode{known, runFunc(func(ctx context.Context) error { close(started); <-ctx.Done(); return nil })}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		select {
		case <-started:
			t.Fatal("the module started before the node was known")
		default:
		}
		close(known)
		synctest.Wait()
		select {
		case <-started:
		default:
			t.Fatal("the module did not start once the node was known")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}

		never := afterNode{make(chan struct{}), runFunc(func(context.Context) error { t.Error("started"); return nil })}
		ctx, cancel = context.WithCancel(t.Context())
		cancel()
		if err := never.Run(ctx); err != nil {
			t.Errorf("Run() after stop = %v, want nil", err)
		}
	})
}

type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }
