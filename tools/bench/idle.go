package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/hub/hubtest"
)

// Idle CPU budgets (design "Budgets"), in clock ticks (USER_HZ, 1/100 s)
// per minute.
const (
	maxIdleTicks     = 3
	maxIdleTicksPods = 6
)

// node is an edgenode process run by the bench, joined to an in-process
// test cloud.
type node struct {
	cmd    *exec.Cmd
	cloud  *hubtest.Server
	dir    string
	health string // host:port of /metrics
	broker string // host:port of the embedded broker
	stderr bytes.Buffer
}

// deviceFile binds one device with one twin to the node (twin.devicesDir),
// so the twin burst's updates are accepted and committed.
const deviceFile = `{"event_id":"bench","added_devices":[{"id":"default/b1","name":"b1","state":"unknown",` +
	`"twin":{"temp":{"expected":{"value":"0"},"actual":{"value":"0"},"optional":false,"metadata":{"type":"int"}}}}]}`

// startNode runs bin (under prefix, an emulator) with extra appended to its
// config and waits until it is connected to the test cloud. Stop ends it.
func startNode(ctx context.Context, prefix []string, bin, extra string) (*node, error) {
	n := &node{}
	var err error
	if n.dir, err = os.MkdirTemp("", "edgenode-bench-data-"); err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(n.dir)
		return nil, err
	}
	n.health, n.broker = ports[0], ports[1]
	devices := filepath.Join(n.dir, "devices")
	if err := os.MkdirAll(devices, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(devices, "b1.json"), []byte(deviceFile), 0o600); err != nil {
		return nil, err
	}
	cfg := filepath.Join(n.dir, "config.yaml")
	conf := fmt.Sprintf("version: 1\nnodeName: bench\ndataDir: %s/data\nwatchdog:\n  device: off\nhealth:\n  listen: %s\n"+
		"twin:\n  devicesDir: %s\nmqtt:\n  internal:\n    listen: %s\n%s", n.dir, n.health, devices, n.broker, extra)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	// The node joins an in-process cloud, as a deployed node would.
	n.cloud = hubtest.NewServer(hubtest.Config{})
	argv := append(append([]string(nil), prefix...), bin, "run", "--config", cfg,
		"--cloud", n.cloud.Addr, "--cert-server", n.cloud.CertURL, "--token", n.cloud.Token("bench"))
	n.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	n.cmd.Stderr = &n.stderr
	if err := n.cmd.Start(); err != nil {
		n.cloud.Close()
		os.RemoveAll(n.dir)
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.health + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte("\nedgenode_cloud_connected 1\n")) {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			n.Stop()
			return nil, fmt.Errorf("not connected to the test cloud after 60 s: %s", lastLine(n.stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop interrupts the node, waits for it and removes its files.
func (n *node) Stop() {
	_ = n.cmd.Process.Signal(os.Interrupt)
	_ = n.cmd.Wait()
	n.cloud.Close()
	os.RemoveAll(n.dir)
}

// freePorts returns n loopback addresses free at the time of the call.
func freePorts(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// cpuTicks returns utime+stime of pid in clock ticks (/proc/PID/stat
// fields 14 and 15; the fields after the command name, which may hold
// spaces, counted from its closing parenthesis).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(b)
}

func parseStatTicks(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return u + s, nil
}

// runTime returns the time the threads of pid have run, summed from
// /proc/PID/task/*/schedstat (its first field, in nanoseconds): the
// kernel's exact figure, where utime and stime count whole ticks of 10
// ms. A thread that ends takes its share with it; the node's threads are
// the Go runtime's, which keeps them.
func runTime(pid int) (time.Duration, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("schedstat of %d: none found (%v)", pid, err)
	}
	var sum time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended meanwhile
		}
		d, err := parseSchedstat(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		sum += d
	}
	return sum, nil
}

// parseSchedstat returns the run time of a /proc/.../schedstat line
// ("<run ns> <wait ns> <timeslices>").
func parseSchedstat(b []byte) (time.Duration, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, fmt.Errorf("schedstat: %d fields, want 3", len(f))
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("schedstat: run time %q", f[0])
	}
	return time.Duration(ns), nil
}

// idleCPU is one idle CPU figure: ticks over a window, scaled to a minute,
// with the memory at its end.
type idleCPU struct {
	ticksPerMin float64
	// runPerMin is the threads' run time over the window, per minute
	// (runTime); 0 if the kernel does not keep it.
	runPerMin time.Duration
	mem       memory
	// mallocs and collections over the window, per minute, from the
	// node's /metrics (one scrape's own allocations included).
	mallocsPerMin, gcsPerMin float64
	// resent is what twin sent the cloud again over the window
	// (unconfirmed messages, docs/protocol.md 5.6).
	resent float64
}

// measureIdle lets the node settle, then counts its clock ticks over the
// window and reads its memory at the end.
func (n *node) measureIdle(settle, window time.Duration) (idleCPU, error) {
	pid := n.cmd.Process.Pid
	time.Sleep(settle)
	m0 := n.metrics()
	t0, err := cpuTicks(pid)
	if err != nil {
		return idleCPU{}, err
	}
	r0, rerr := runTime(pid)
	start := time.Now()
	time.Sleep(window)
	t1, err := cpuTicks(pid)
	if err != nil {
		return idleCPU{}, err
	}
	r1, rerr1 := runTime(pid)
	perMin := float64(time.Minute) / float64(time.Since(start))
	m, err := readMemory(pid)
	if err != nil {
		return idleCPU{}, err
	}
	m1 := n.metrics()
	c := idleCPU{ticksPerMin: float64(t1-t0) * perMin, mem: m}
	if rerr == nil && rerr1 == nil {
		c.runPerMin = time.Duration(float64(r1-r0) * perMin)
	}
	c.mallocsPerMin = (m1["edgenode_go_mallocs_total"] - m0["edgenode_go_mallocs_total"]) * perMin
	c.gcsPerMin = (m1["edgenode_go_gc_cycles_total"] - m0["edgenode_go_gc_cycles_total"]) * perMin
	c.resent = m1["edgenode_twin_resent_total"] - m0["edgenode_twin_resent_total"]
	return c, nil
}

// metrics reads the node's unlabelled metrics; none when it cannot.
func (n *node) metrics() map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + n.health + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(k, "#") || strings.Contains(k, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		}
	}
	return out
}

// twinBurst publishes n twin updates of the node's device through its
// broker, at most window in flight, and waits for their n results.
func twinBurst(broker string, n, window int) (int64, error) {
	const topic = "$hw/events/device/default/b1/twin/update"
	opts := paho.NewClientOptions().AddBroker("tcp://" + broker).SetClientID("bench-burst").SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, fmt.Errorf("burst: connect %s: %v", broker, t.Error())
	}
	defer c.Disconnect(100)
	var got atomic.Int64
	done := make(chan struct{}, n)
	if t := c.Subscribe(topic+"/result", 0, func(paho.Client, paho.Message) {
		got.Add(1)
		done <- struct{}{}
	}); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return 0, fmt.Errorf("burst: subscribe: %v", t.Error())
	}
	sem := make(chan struct{}, window)
	timeout := time.After(5 * time.Minute)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-done:
			<-sem
			sem <- struct{}{}
		case <-timeout:
			return got.Load(), fmt.Errorf("burst: %d of %d results after 5 min", got.Load(), n)
		}
		c.Publish(topic, 0, false, `{"event_id":"b","twin":{"temp":{"actual":{"value":"`+strconv.Itoa(i+1)+`"}}}}`)
	}
	for got.Load() < int64(n) {
		select {
		case <-done:
		case <-timeout:
			return got.Load(), fmt.Errorf("burst: %d of %d results after 5 min", got.Load(), n)
		case <-time.After(5 * time.Second):
			// QoS 0 results may be dropped under load; 5 s without one
			// means the burst has drained.
			return got.Load(), nil
		}
	}
	return got.Load(), nil
}

// fmtRunTime formats a run time a minute, or says it was not read.
func fmtRunTime(d time.Duration) string {
	if d <= 0 {
		return "run time not read"
	}
	return fmt.Sprintf("%.1f ms/min", float64(d)/float64(time.Millisecond))
}

// idleCPURows runs an idle node natively (no pods), measures its CPU over
// window after settle, sends a twin burst and measures again.
func idleCPURows(ctx context.Context, bin string, settle, window time.Duration, burst int) []row {
	const label = "idle node, host, 0 pods"
	n, err := startNode(ctx, nil, bin, "")
	if err != nil {
		return []row{{label + ": CPU", "failed: " + err.Error(), "-", "-"}}
	}
	defer n.Stop()
	var rows []row
	add := func(label string, c idleCPU) {
		rows = append(rows,
			row{label + ": CPU (its threads' run time)", fmt.Sprintf("%.1f ticks/min (%s)", c.ticksPerMin, fmtRunTime(c.runPerMin)), fmt.Sprintf("≤ %d ticks/min", maxIdleTicks), verdict(c.ticksPerMin <= maxIdleTicks)},
			row{label + ": VmRSS / RssAnon", mib(c.mem.rss) + " / " + mib(c.mem.anon), "≤ 20 / 6 MiB", verdict(c.mem.rss <= maxRSS && c.mem.anon <= maxRssAnon)},
			row{label + ": heap allocations / collections per min, twin messages resent to the cloud", fmt.Sprintf("%.0f / %.1f, %.0f", c.mallocsPerMin, c.gcsPerMin, c.resent), "-", "-"})
	}
	c, err := n.measureIdle(settle, window)
	if err != nil {
		return append(rows, row{label + ": CPU", "failed: " + err.Error(), "-", "-"})
	}
	add(label, c)
	if burst <= 0 {
		return rows
	}
	bstart := time.Now()
	t0, _ := cpuTicks(n.cmd.Process.Pid)
	got, err := twinBurst(n.broker, burst, 32)
	if err != nil {
		return append(rows, row{label + ", after a twin burst", "failed: " + err.Error(), "-", "-"})
	}
	t1, _ := cpuTicks(n.cmd.Process.Pid)
	// The node's CPU for the burst: what its work per update, and the
	// collections it makes (runtime.gcPercent), cost while it works.
	rows = append(rows, row{fmt.Sprintf("twin burst: results of %d updates, 32 in flight; node CPU", burst),
		fmt.Sprintf("%d in %.1f s; %d ticks", got, time.Since(bstart).Seconds(), t1-t0), "-", "-"})
	c, err = n.measureIdle(settle, window)
	if err != nil {
		return append(rows, row{label + ", after a twin burst", "failed: " + err.Error(), "-", "-"})
	}
	add(fmt.Sprintf("%s, after a %d-update twin burst", label, burst), c)
	return rows
}
