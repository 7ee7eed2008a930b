package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/hub/hubtest"
	"edgenode/stream"
)

// TestIdleAllocations runs the node in this process, joined to an
// in-process cloud, with its periodic work (keepalive, node status,
// lease, the test cloud's resends) set an hour apart and the idle trim
// off, and checks that once start-up is over it allocates nothing: no
// heap allocation (runtime.MemStats.Mallocs) in the whole process over a
// quiet period. A loop that polls or a broker ticker that allocates fails
// it.
func TestIdleAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for several seconds")
	}
	srv := hubtest.NewServer(hubtest.Config{Retransmit: time.Hour})
	defer srv.Close()
	_, stop := runInProcess(t, "n1", func(c *Config) {
		c.Hub.Server, c.Hub.Token, c.Hub.CertServer = srv.Addr, srv.Token("n1"), srv.CertURL
		c.Hub.Heartbeat = time.Hour
		c.NodeStatus.UpdateFrequency = time.Hour
		c.Runtime.IdleTrim = -1
		// Neither has a server here: their redials are timers of their
		// own (back-off up to a minute), not idling. DMI off also keeps
		// the test off the host's /etc/kubeedge.
		c.Stream.Server = stream.Off
	})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run() = %v, want nil", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer wcancel()
	if _, err := srv.WaitFor(wctx, func(m bus.Message) bool { return m.Route.Operation == bus.OpKeepalive }); err != nil {
		t.Fatalf("no keepalive from the node: %v", err)
	}
	// Start-up (status, lease, pod list, device load) ends on its own;
	// wait for a second without an allocation, for at most a minute.
	const quiet = 3 * time.Second
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	last, deadline := ms.Mallocs, time.Now().Add(time.Minute)
	for {
		time.Sleep(time.Second)
		runtime.ReadMemStats(&ms)
		if ms.Mallocs == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node still allocates a minute after joining: %d allocations in the last second", ms.Mallocs-last)
		}
		last = ms.Mallocs
	}
	time.Sleep(quiet)
	runtime.ReadMemStats(&ms)
	if d := ms.Mallocs - last; d != 0 {
		t.Errorf("heap allocations over %v of idling = %d, want 0", quiet, d)
	}
}
