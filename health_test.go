package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
)

func TestSnake(t *testing.T) {
	tests := []struct{ in, want string }{
		{"MsgsIn", "msgs_in"},
		{"DBWriteLatency", "db_write_latency"},
		{"Connected", "connected"},
		{"PodsByPhase", "pods_by_phase"},
		{"TwinUpdates2", "twin_updates2"},
		{"QoS1", "qo_s1"},
	}
	for _, tt := range tests {
		if got := snake(tt.in); got != tt.want {
			t.Errorf("snake(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeStats has every field kind writeStats knows.
type fakeStats struct {
	Connected      bool
	MsgsIn         uint64
	Queue          int
	DBWriteLatency time.Duration
	PodsByPhase    map[string]int
	Nested         struct{ Retries uint64 }
	//lint:ignore U1000 writeStats must skip unexported fields
	ignored int
}

func TestWriteStats(t *testing.T) {
	var m metricWriter
	s := fakeStats{Connected: true, MsgsIn: 42, Queue: 3, DBWriteLatency: 1500 * time.Microsecond,
		PodsByPhase: map[string]int{"Running": 2, "Pending": 1}}
	s.Nested.Retries = 7
	writeStats(&m, "edgenode_hub", s)
	writeStats(&m, "edgenode_nil", (*fakeStats)(nil))
	got := string(m.buf)
	for _, want := range []string{
		"# TYPE edgenode_hub_connected gauge\nedgenode_hub_connected 1\n",
		"# TYPE edgenode_hub_msgs_in_total counter\nedgenode_hub_msgs_in_total 42\n",
		"edgenode_hub_queue 3\n",
		"edgenode_hub_db_write_latency_seconds 0.0015\n",
		"edgenode_hub_pods_by_phase{key=\"Pending\"} 1\nedgenode_hub_pods_by_phase{key=\"Running\"} 2\n",
		"edgenode_hub_nested_retries_total 7\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ignored") || strings.Contains(got, "edgenode_nil") {
		t.Errorf("metrics have unexported or nil stats:\n%s", got)
	}
	if n := strings.Count(got, "# TYPE edgenode_hub_pods_by_phase "); n != 1 {
		t.Errorf("TYPE line for pods_by_phase appears %d times, want 1", n)
	}
}

func TestLabelEscaping(t *testing.T) {
	var m metricWriter
	m.gauge("x", "help with \\ and\nnewline", 1, "l", "a\"b\\c\nd")
	want := "# HELP x help with \\\\ and\\nnewline\n# TYPE x gauge\nx{l=\"a\\\"b\\\\c\\nd\"} 1\n"
	if string(m.buf) != want {
		t.Errorf("escaped = %q, want %q", m.buf, want)
	}
}

func TestHealthValidate(t *testing.T) {
	for _, tt := range []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:10248", true}, {"[::1]:10248", true}, {"localhost:1", true}, {"off", true},
		{"0.0.0.0:10248", false}, {":10248", false}, {"192.168.1.2:80", false}, {"nonsense", false},
	} {
		if err := (HealthConfig{Listen: tt.listen}).validate(); (err == nil) != tt.ok {
			t.Errorf("validate(%q) = %v, want ok %v", tt.listen, err, tt.ok)
		}
	}
}

// stubModule is a runner that blocks until ctx ends, fails, or returns
// at once. started, if set, is closed when Run begins.
type stubModule struct {
	fail    error
	early   bool
	started chan struct{}
}

func (s stubModule) Run(ctx context.Context) error {
	if s.started != nil {
		close(s.started)
	}
	if s.fail != nil || s.early {
		return s.fail
	}
	<-ctx.Done()
	return nil
}

func TestHealthServer(t *testing.T) {
	b := bus.New(bus.Config{}, nil)
	if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
		t.Fatal(err)
	}
	_ = b.Send(bus.ModuleMeta, bus.NewMessage(bus.ModuleNodeStatus, bus.GroupMeta, bus.OpUpdate, "default/nodestatus/n", nil))
	reg := NewRegistry()
	// Port 0 and Addr: a port picked free beforehand could be taken by
	// another process before Run binds it.
	hs := newHealth(HealthConfig{Listen: "127.0.0.1:0"}, "n1", b, 128, reg, slog.New(slog.DiscardHandler))
	hs.stats("meta", func() any { return fakeStats{MsgsIn: 9} })
	hs.queues = []bus.Module{bus.ModuleMeta}
	hs.podPhases = func() map[string]int { return map[string]int{"Running": 2, "Pending": 1} }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- hs.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("health Run() = %v", err)
		}
	}()
	// Run records each module's state; meta is running, then fails.
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	started := make(chan struct{})
	go runTracked(mctx, reg, "meta", stubModule{started: started})

	<-hs.Listening() // Run has bound the port (or given up)
	addr := hs.Addr()
	if addr == "" {
		t.Fatal("health server bound no address")
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	<-started // runTracked marks a module without Ready running before Run
	code, body := get("/healthz")
	var doc healthz
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/healthz %q: %v", body, err)
	}
	if code != 200 || doc.Status != "ok" || !doc.Ready || doc.Node != "n1" || len(doc.Modules) != 1 || doc.Modules[0].State != StateRunning {
		t.Errorf("/healthz = %d %s, want 200 ok with meta running", code, body)
	}
	code, body = get("/metrics")
	for _, want := range []string{
		`edgenode_module_up{module="meta",state="running"} 1`,
		`edgenode_bus_queue_depth{module="metamanager"} 1`,
		"edgenode_bus_messages_sent_total 1",
		"edgenode_meta_msgs_in_total 9",
		`edgenode_pods{phase="Running"} 2`,
		`edgenode_pods{phase="Pending"} 1`,
		`edgenode_pods{phase="Failed"} 0`,
		"edgenode_cloud_connected 0",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, want, body)
		}
	}
	runTracked(ctx, reg, "meta", stubModule{fail: errors.New("db: corrupt")})
	code, body = get("/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"unhealthy"`) || !strings.Contains(body, "db: corrupt") {
		t.Errorf("/healthz after failure = %d %s, want 503 naming the error", code, body)
	}
}

func TestRunTrackedEarlyReturn(t *testing.T) {
	reg := NewRegistry()
	// A Run that returns nil while the node still runs broke its contract.
	if err := runTracked(t.Context(), reg, "hub", stubModule{fail: nil, early: true}); err != nil {
		t.Fatal(err)
	}
	m := reg.Modules()[0]
	if m.State != StateFailed || !strings.Contains(m.Detail, "before shutdown") {
		t.Errorf("after an early return: %+v, want failed", m)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = runTracked(ctx, reg, "hub", stubModule{})
	if m := reg.Modules()[0]; m.State != StateStopped {
		t.Errorf("after shutdown: %+v, want stopped", m)
	}
}

// readyModule is a runner with a Ready channel the test closes.
type readyModule struct{ ready chan struct{} }

func (r readyModule) Ready() <-chan struct{} { return r.ready }

func (r readyModule) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func TestRunTrackedReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry()
		m := readyModule{ready: make(chan struct{})}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- runTracked(ctx, reg, "mqtt", m) }()
		synctest.Wait()
		if got := reg.Modules()[0].State; got != StateStarting {
			t.Errorf("state before Ready = %s, want starting", got)
		}
		close(m.ready)
		synctest.Wait()
		if got := reg.Modules()[0].State; got != StateRunning {
			t.Errorf("state after Ready = %s, want running", got)
		}
		cancel()
		<-done
		if got := reg.Modules()[0].State; got != StateStopped {
			t.Errorf("state after shutdown = %s, want stopped", got)
		}
	})
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	cfgPath := dir + "/config.yaml"
	if err := os.WriteFile(cfgPath, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(args ...string) (int, []string, string) {
		var out, errb bytes.Buffer
		code := realMain(append([]string{"check", "--config", cfgPath}, args...), &out, &errb)
		return code, strings.Split(strings.TrimSpace(out.String()), "\n"), out.String() + errb.String()
	}
	code, _, text := check("--config", dir+"/absent.yaml")
	if code != 1 || !strings.Contains(text, "absent.yaml") {
		t.Errorf("check with a missing --config = %d, %q, want 1 naming the file", code, text)
	}

	code, lines, text := check("--data-dir", dir+"/data", "--broker", "off")
	if len(lines) != 8 {
		t.Fatalf("check printed %d lines, want 8 (no broker check):\n%s", len(lines), text)
	}
	fails := 0
	for _, l := range lines {
		status, rest, _ := strings.Cut(l, " ")
		if status != "PASS" && status != "WARN" && status != "FAIL" || !strings.Contains(rest, ": ") {
			t.Errorf("line %q is not 'STATUS name: detail'", l)
		}
		if status == "FAIL" {
			fails++
		}
	}
	if (fails > 0) != (code == 1) || code != 0 && code != 1 {
		t.Errorf("check exit %d with %d FAIL lines:\n%s", code, fails, text)
	}
	if !strings.Contains(text, "PASS data dir: "+dir+"/data is writable") {
		t.Errorf("check output lacks the data dir PASS:\n%s", text)
	}

	// A data dir that cannot be created and a taken broker port fail.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, lines, text = check("--data-dir", cfgPath+"/data", "--broker", l.Addr().String())
	if code != 1 || len(lines) != 9 {
		t.Errorf("check with bad data dir and taken port = %d, want 1 and 9 lines:\n%s", code, text)
	}
	for _, want := range []string{"FAIL data dir: ", "FAIL broker port: " + l.Addr().String() + " is in use"} {
		if !strings.Contains(text, want) {
			t.Errorf("check output lacks %q:\n%s", want, text)
		}
	}
}

// stuckModule is a module whose Healthy reports err.
type stuckModule struct{ err error }

func (m *stuckModule) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (m *stuckModule) Healthy() error                { return m.err }

// TestProbeHealthy: a module whose Healthy returns an error reads
// unhealthy (so /healthz and the watchdog act) until it returns nil.
func TestProbeHealthy(t *testing.T) {
	b := bus.New(bus.Config{QueueLen: 4}, slog.New(slog.DiscardHandler))
	if err := b.AddModule(bus.ModuleTwin, bus.GroupTwin); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	m := &stuckModule{err: errors.New("twin: worker stuck: twin")}
	probeQueue(reg, b, module{name: "twin", queue: bus.ModuleTwin, r: m}, 4)
	reg.Set("twin", StateRunning, "")
	if got := reg.Unhealthy(); len(got) != 1 || got[0] != "twin" {
		t.Errorf("Unhealthy() with a stuck worker = %q, want [twin]", got)
	}
	m.err = nil
	if got := reg.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy() after it recovered = %q, want none", got)
	}
}
