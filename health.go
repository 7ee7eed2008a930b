package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"edgenode/board"
	"edgenode/bus"
)

// HealthConfig configures the loopback health and metrics server.
type HealthConfig struct {
	// Listen is the address of /healthz and /metrics; "off" disables the
	// server. Default 127.0.0.1:10248, the kubelet's healthz port: the pod
	// module's read-only ports 10255 (v0.3) and 10350 (v1.23) stay free for
	// KubeEdge's test suites, and no other edge component uses 10248 once
	// edgenode replaces the kubelet. Only loopback addresses are allowed:
	// the metrics describe the board and are not for the network.
	Listen string `yaml:"listen"`
}

// DefaultHealthListen is HealthConfig.Listen's default.
const DefaultHealthListen = "127.0.0.1:10248"

func (c *HealthConfig) defaults() {
	if c.Listen == "" {
		c.Listen = DefaultHealthListen
	}
}

func (c HealthConfig) validate() error {
	if c.Listen == "off" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("health.listen: %q: %w", c.Listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("health.listen: %q is not a loopback address", c.Listen)
	}
	return nil
}

// statsFunc returns a module's Stats() value: a struct whose exported
// fields become metrics (see writeStats).
type statsFunc func() any

// health serves /healthz and /metrics. Modules plug in with stats (one line
// per module where it is wired in run) and are tracked in reg around their
// Run.
type health struct {
	cfg  HealthConfig
	node string
	b    *bus.Bus
	qlen int
	reg  *Registry
	wd   *board.Watchdog
	// queues are the bus queues of the modules, for their depth.
	queues []bus.Module
	// connected reports the cloud link; nil when no cloud is configured.
	connected func() bool
	// podPhases counts pods by phase; nil without the pod module.
	podPhases func() map[string]int
	// readOnly reports that the store refuses writes (disk full); nil: never.
	readOnly func() bool
	// trims counts the runtime's idle trims; nil when they are off.
	trims func() int64
	log   *slog.Logger
	start time.Time

	mu      sync.Mutex
	sources []statsSource

	listening chan struct{} // closed once Run has bound its port or given up
	addr      string        // the bound address, set before listening closes
}

// Listening is closed once Run has bound its port (or found it taken or
// disabled), so tests and callers know when requests can be made.
func (h *health) Listening() <-chan struct{} { return h.listening }

// Addr is the address Run serves on ("" when off or the port was taken).
// It is valid once Listening is closed; with port 0 it names the port the
// system picked.
func (h *health) Addr() string { return h.addr }

type statsSource struct {
	module string
	fn     statsFunc
}

func newHealth(cfg HealthConfig, node string, b *bus.Bus, qlen int, reg *Registry, log *slog.Logger) *health {
	return &health{cfg: cfg, node: node, b: b, qlen: qlen, reg: reg, log: log, start: time.Now(), listening: make(chan struct{})}
}

// stats adds a module's counters to /metrics as edgenode_<module>_<field>.
func (h *health) stats(module string, fn statsFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sources = append(h.sources, statsSource{module, fn})
}

// Run serves until ctx ends, then shuts the server down and returns after
// its goroutine has exited.
func (h *health) Run(ctx context.Context) error {
	if h.cfg.Listen == "off" {
		close(h.listening)
		<-ctx.Done()
		return nil
	}
	l, err := net.Listen("tcp", h.cfg.Listen)
	if err == nil {
		h.addr = l.Addr().String()
	}
	close(h.listening)
	if err != nil {
		// Health and metrics are for people and probes; the node works
		// without them, so a taken port is logged, not fatal.
		h.log.Error("cannot listen, serving no /healthz or /metrics", "addr", h.cfg.Listen, "err", err)
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.serveHealthz)
	mux.HandleFunc("GET /metrics", h.serveMetrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	h.log.Info("serving /healthz and /metrics", "addr", l.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("health: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health: serve: %w", err)
	}
	return nil
}

// healthz is the /healthz document.
type healthz struct {
	Status  string         `json:"status"` // ok or unhealthy
	Ready   bool           `json:"ready"`  // every module is running (none starting)
	Node    string         `json:"node"`
	Version string         `json:"version"`
	Uptime  string         `json:"uptime"`
	Modules []ModuleHealth `json:"modules"`
	// ReadOnly says why the node serves from its store without writing
	// (a full disk); absent while it writes. It is no failure: the node
	// serves what it has, and the watchdog does not reboot for it.
	ReadOnly string `json:"readOnly,omitempty"`
}

func (h *health) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	doc := healthz{Status: "ok", Node: h.node, Version: version,
		Uptime: time.Since(h.start).Round(time.Second).String(), Modules: h.reg.Modules()}
	doc.Ready = !slices.ContainsFunc(doc.Modules, func(m ModuleHealth) bool { return m.State != StateRunning })
	if h.readOnly != nil && h.readOnly() {
		doc.ReadOnly = "disk full: serving stored pods, twins and membership; writes resume when space returns"
	}
	code := http.StatusOK
	if len(h.reg.Unhealthy()) > 0 {
		doc.Status, code = "unhealthy", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}

func (h *health) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var m metricWriter
	m.gauge("edgenode_build_info", "Build of this edgenode; the value is 1.", 1, "version", version, "goarch", runtime.GOARCH)
	m.gauge("edgenode_uptime_seconds", "Seconds since edgenode started.", time.Since(h.start).Seconds())
	for _, mod := range h.reg.Modules() {
		up := 0.0
		if mod.State == StateRunning {
			up = 1
		}
		m.gauge("edgenode_module_up", "1 while a module runs and its probes pass.", up, "module", mod.Name, "state", string(mod.State))
	}
	cloud := 0.0
	if h.connected != nil && h.connected() {
		cloud = 1
	}
	m.gauge("edgenode_cloud_connected", "1 while the websocket link to the cloud is up.", cloud)
	bs := h.b.Stats()
	m.counter("edgenode_bus_messages_sent_total", "Messages queued on the bus.", float64(bs.Sent))
	m.counter("edgenode_bus_messages_dropped_total", "Messages the bus refused: unknown module or full queue.", float64(bs.Dropped))
	m.counter("edgenode_bus_orphan_responses_total", "Responses nobody waited for.", float64(bs.OrphanResponses))
	for _, q := range h.queues {
		m.gauge("edgenode_bus_queue_depth", "Messages waiting in a module's queue.", float64(h.b.Depth(q)), "module", string(q))
	}
	m.gauge("edgenode_bus_queue_capacity", "Capacity of each module's queue.", float64(h.qlen))
	if h.wd != nil {
		m.gauge("edgenode_watchdog_armed", "1 while the hardware watchdog device is open.", boolf(h.wd.Armed()))
		m.counter("edgenode_watchdog_keepalives_total", "Keep-alives written to the watchdog.", float64(h.wd.Pings()))
	}
	if h.podPhases != nil {
		phases := h.podPhases()
		for _, ph := range []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"} {
			m.gauge("edgenode_pods", "Pods by phase.", float64(phases[ph]), "phase", ph)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.gauge("edgenode_go_goroutines", "Goroutines.", float64(runtime.NumGoroutine()))
	m.gauge("edgenode_go_heap_inuse_bytes", "Go heap in use.", float64(ms.HeapInuse))
	m.gauge("edgenode_go_sys_bytes", "Memory obtained from the system by the Go runtime.", float64(ms.Sys))
	m.counter("edgenode_go_gc_cycles_total", "Collections of the Go heap.", float64(ms.NumGC))
	m.counter("edgenode_go_mallocs_total", "Heap objects allocated.", float64(ms.Mallocs))
	if h.trims != nil {
		m.counter("edgenode_go_idle_trims_total", "Collections that returned memory to the kernel after a quiet period (runtime.idleTrim).", float64(h.trims()))
	}
	h.mu.Lock()
	sources := slices.Clone(h.sources)
	h.mu.Unlock()
	for _, s := range sources {
		writeStats(&m, "edgenode_"+s.module, s.fn())
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(m.buf)
}

// writeStats turns a Stats struct into metrics, one per exported field:
// unsigned integers are counters (<prefix>_<field>_total), other numbers,
// bools and durations (in seconds) are gauges, a map from string to a
// number is one gauge with a "key" label per entry (e.g. pods by phase),
// and a nested struct adds its name to the prefix.
func writeStats(m *metricWriter, prefix string, s any) {
	v := reflect.ValueOf(s)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix + "_" + snake(f.Name)
		fv := v.Field(i)
		help := fmt.Sprintf("%s.%s of the module's Stats.", t.Name(), f.Name)
		if fv.Type() == reflect.TypeFor[time.Duration]() {
			m.gauge(name+"_seconds", help, time.Duration(fv.Int()).Seconds())
			continue
		}
		switch fv.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			m.counter(strings.TrimSuffix(name, "_total")+"_total", help, float64(fv.Uint()))
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			m.gauge(name, help, float64(fv.Int()))
		case reflect.Float32, reflect.Float64:
			m.gauge(name, help, fv.Float())
		case reflect.Bool:
			m.gauge(name, help, boolf(fv.Bool()))
		case reflect.Struct:
			writeStats(m, name, fv.Interface())
		case reflect.Map:
			if fv.Type().Key().Kind() != reflect.String {
				continue
			}
			keys := fv.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				if x, ok := number(fv.MapIndex(k)); ok {
					m.gauge(name, help, x, "key", k.String())
				}
			}
		}
	}
}

func number(v reflect.Value) (float64, bool) {
	switch v.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	}
	return 0, false
}

// snake turns a Go field name into a metric name part: MsgsIn -> msgs_in,
// DBWriteLatency -> db_write_latency.
func snake(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		upper := c >= 'A' && c <= 'Z'
		if upper && i > 0 {
			prevLower := s[i-1] >= 'a' && s[i-1] <= 'z' || s[i-1] >= '0' && s[i-1] <= '9'
			nextLower := i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z'
			if prevLower || nextLower && s[i-1] >= 'A' && s[i-1] <= 'Z' {
				b.WriteByte('_')
			}
		}
		if upper {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricWriter writes the Prometheus text exposition format (version
// 0.0.4): a HELP and TYPE line before a metric's first sample, then
// `name{label="value",...} value` lines.
type metricWriter struct {
	buf  []byte
	seen map[string]bool
}

func (m *metricWriter) counter(name, help string, v float64, labels ...string) {
	m.sample(name, "counter", help, v, labels)
}

func (m *metricWriter) gauge(name, help string, v float64, labels ...string) {
	m.sample(name, "gauge", help, v, labels)
}

func (m *metricWriter) sample(name, typ, help string, v float64, labels []string) {
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if !m.seen[name] {
		m.seen[name] = true
		m.buf = fmt.Appendf(m.buf, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
	}
	m.buf = append(m.buf, name...)
	if len(labels) > 0 {
		m.buf = append(m.buf, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.buf = append(m.buf, ',')
			}
			m.buf = fmt.Appendf(m.buf, "%s=\"%s\"", labels[i], escapeLabel(labels[i+1]))
		}
		m.buf = append(m.buf, '}')
	}
	m.buf = fmt.Appendf(m.buf, " %v\n", v)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// runTracked runs m and records its state in reg: running (for a module
// with a Ready channel, starting until it closes), then stopped when ctx
// ended, or failed with the error.
func runTracked(ctx context.Context, reg *Registry, name string, m runner) error {
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	if r, ok := m.(interface{ Ready() <-chan struct{} }); ok {
		reg.Set(name, StateStarting, "")
		wg.Go(func() {
			select {
			case <-r.Ready():
				reg.Set(name, StateRunning, "")
			case <-rctx.Done():
			}
		})
	} else {
		reg.Set(name, StateRunning, "")
	}
	err := m.Run(ctx)
	// The final state is set after the ready watcher is gone, so it wins.
	cancel()
	wg.Wait()
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		reg.Set(name, StateStopped, "")
	case err == nil:
		// Run must block until ctx ends: a module that quit early no
		// longer serves, though nothing else stops.
		reg.Set(name, StateFailed, "Run returned before shutdown")
	default:
		reg.Set(name, StateFailed, err.Error())
	}
	return err
}

// probeQueue marks a module failed while its bus queue stays full for
// more than 30 s: it is alive but no longer serving. A module with a
// Healthy() error method (twin: a stuck worker) is also failed while that
// returns an error.
func probeQueue(reg *Registry, b *bus.Bus, m module, qlen int) {
	healthy, _ := m.r.(interface{ Healthy() error })
	var mu sync.Mutex
	var fullSince time.Time
	reg.Probe(m.name, func() error {
		if healthy != nil {
			if err := healthy.Healthy(); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if b.Depth(m.queue) < qlen {
			fullSince = time.Time{}
			return nil
		}
		if fullSince.IsZero() {
			fullSince = time.Now()
		}
		if d := time.Since(fullSince); d > 30*time.Second {
			return fmt.Errorf("queue of %s full for %v", m.queue, d.Round(time.Second))
		}
		return nil
	})
}
