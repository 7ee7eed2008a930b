package main

import (
	"context"
	"strings"
	"testing"
	"time"

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
		// CloudHub is unreachable; the tunnel does not depend on it.
		c.Hub.Server, c.Hub.CertFile, c.Hub.KeyFile = "127.0.0.1:1", cert, key
		c.Stream.Server = srv.Addr()
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
