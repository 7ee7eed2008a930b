package main

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/hub/hubtest"
	"edgenode/stream"
	"edgenode/stream/streamtest"
)

// TestRunServesStream runs the node joined to a test cloud and checks
// that the stream module dials the tunnel with the node certificate the
// hub got, once the cloud has the node's status (nodestatus.Known), and
// serves the pod module's kubelet paths through it.
func TestRunServesStream(t *testing.T) {
	hub := hubtest.NewServer(hubtest.Config{})
	defer hub.Close()
	srv, err := streamtest.NewServer(hub.CACert())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	early, stop := runInProcess(t, "n1", func(c *Config) {
		c.Hub.Server, c.Hub.Token, c.Hub.CertServer = hub.Addr, hub.Token("n1"), hub.CertURL
		c.Stream.Server = srv.Addr()
	})
	wctx, wcancel := context.WithTimeout(early, time.Minute)
	defer wcancel()
	tun, err := srv.Tunnel(wctx)
	if err != nil {
		t.Fatalf("no tunnel from the node: %v (run: %v)", err, stop())
	}
	// The status went first: cloudstream writes its port into the node
	// and fails with a conflict if a patch lands in between.
	if n, ok := hub.APINode("n1"); !ok || len(n.Status.Conditions) == 0 {
		t.Errorf("the tunnel came before the node's status: node %v, conditions %v", ok, n.Status.Conditions)
	}
	if got := tun.Header.Get("SessionHostNameOverride"); got != "n1" {
		t.Errorf("SessionHostNameOverride = %q, want n1", got)
	}
	// The node's InternalIP, as its status gives it.
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
