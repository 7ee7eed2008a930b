//go:build unix

package stream_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgenode/stream"
	"edgenode/stream/streamtest"
)

// idleWindow is how long BenchmarkIdleTunnel counts this process's CPU
// and allocations, once without the tunnel and once with it (make bench
// passes -idlewindow 60s).
var idleWindow = flag.Duration("idlewindow", 30*time.Second, "BenchmarkIdleTunnel: how long each of its two windows counts")

// serverDirEnv, when set, makes TestTunnelServerProcess the tunnel
// server of BenchmarkIdleTunnel: it writes the node certificate into that
// directory, prints its address and serves until its stdin closes.
const serverDirEnv = "STREAM_BENCH_SERVER_DIR"

// BenchmarkIdleTunnel measures what a connected, idle tunnel costs the
// node: CPU (utime+stime from getrusage, as clock ticks of 1/100 s) and
// heap allocations per minute of this process, first without the tunnel
// (the baseline: the Go runtime and the test binary idling), then with
// the client connected and pinging every 5 s, after a settle. The tunnel
// server runs in another process so that its side is not counted. b.N is
// irrelevant: each window runs once (use -benchtime 1x).
func BenchmarkIdleTunnel(b *testing.B) {
	const settle = 6 * time.Second // more than one ping interval
	addr, cert, key := startServerProcess(b)
	time.Sleep(settle) // the start-up's garbage collected, timers quiet
	base := measureIdle(*idleWindow)

	c, err := stream.New(stream.Config{Server: addr, NodeName: "node1", CertFile: cert, KeyFile: key},
		http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !c.Stats().Connected; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the tunnel did not connect within 10 s")
		}
	}
	time.Sleep(settle) // the dial's garbage collected, the first ping gone
	tun := measureIdle(*idleWindow)
	if s := c.Stats(); s.Dials != 1 || !s.Connected {
		b.Fatalf("the tunnel was not up all along: %+v", s)
	}

	b.ReportMetric(tun.ticks, "ticks/min")
	b.ReportMetric(tun.allocs, "allocs/min")
	b.ReportMetric(tun.bytes, "B/min")
	b.ReportMetric(base.ticks, "base_ticks/min")
	b.ReportMetric(base.allocs, "base_allocs/min")
	b.ReportMetric(base.bytes, "base_B/min")
}

// idle is what the process spent over a window, scaled to a minute.
type idle struct{ ticks, allocs, bytes float64 }

func measureIdle(window time.Duration) idle {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0, start := cpuTime(), time.Now()
	time.Sleep(window)
	t1 := cpuTime()
	runtime.ReadMemStats(&m1)
	perMin := float64(time.Minute) / float64(time.Since(start))
	return idle{
		ticks:  float64(t1-t0) / float64(10*time.Millisecond) * perMin,
		allocs: float64(m1.Mallocs-m0.Mallocs) * perMin,
		bytes:  float64(m1.TotalAlloc-m0.TotalAlloc) * perMin,
	}
}

// cpuTime is the user and system CPU time of this process (all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startServerProcess runs TestTunnelServerProcess in a child process of
// this test binary and returns its address and the node certificate.
func startServerProcess(b *testing.B) (addr, cert, key string) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cmd := exec.Command(exe, "-test.run=^TestTunnelServerProcess$")
	cmd.Env = append(os.Environ(), serverDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
	if err != nil || !ok {
		b.Fatalf("tunnel server process: %q, %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return addr, dir + "/edge.crt", dir + "/edge.key"
}

// TestTunnelServerProcess is the tunnel server of BenchmarkIdleTunnel
// when run as its child; otherwise it does nothing.
func TestTunnelServerProcess(t *testing.T) {
	dir := os.Getenv(serverDirEnv)
	if dir == "" {
		return
	}
	srv, err := streamtest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, _, err := srv.WriteNodeCert(dir, "node1"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("addr %s\n", srv.Addr())
	io.Copy(io.Discard, os.Stdin)
}
