package pod

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"edgenode/bus"
	"edgenode/stream"
	"edgenode/stream/streamtest"
)

func TestParseLogOptions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	since, _ := time.Parse(time.RFC3339, "2026-01-01T00:00:00Z")
	tests := []struct {
		name     string
		query    string
		want     logQuery
		wantCode int
		wantErr  string
	}{
		{"none", "", logQuery{tail: -1}, 0, ""},
		{"follow tail limit", "follow=true&tailLines=3&limitBytes=10", logQuery{follow: true, tail: 3, limit: 10}, 0, ""},
		{"old tail", "tail=4&follow=1", logQuery{follow: true, tail: 4}, 0, ""},
		{"tail all", "tail=all&tailLines=3", logQuery{tail: -1}, 0, ""},
		{"any bool is true", "follow=yes%20please&timestamps", logQuery{follow: true, timestamps: true, tail: -1}, 0, ""},
		{"false bools", "follow=FALSE&previous=0", logQuery{tail: -1}, 0, ""},
		{"previous", "previous=true", logQuery{previous: true, tail: -1}, 0, ""},
		{"since seconds", "sinceSeconds=10", logQuery{tail: -1, since: now.Add(-10 * time.Second)}, 0, ""},
		{"since time", "sinceTime=2026-01-01T00:00:00Z", logQuery{tail: -1, since: since}, 0, ""},
		{"stream all", "stream=All&tailLines=1", logQuery{tail: 1}, 0, ""},
		{"negative tail", "tailLines=-1", logQuery{}, 422, "Invalid request."},
		{"zero limit", "limitBytes=0", logQuery{}, 422, "Invalid request."},
		{"zero since", "sinceSeconds=0", logQuery{}, 422, "Invalid request."},
		{"both since", "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z", logQuery{}, 422, "Invalid request."},
		{"bad stream", "stream=Both", logQuery{}, 422, "Invalid request."},
		{"stream and tail", "stream=Stdout&tailLines=1", logQuery{}, 422, "Invalid request."},
		{"stream gated", "stream=Stderr", logQuery{}, 400, "PodLogsQuerySplitStreams"},
		{"tail not a number", "tailLines=x", logQuery{}, 400, "Unable to decode query."},
		{"empty tail", "tailLines=", logQuery{}, 400, "Unable to decode query."},
		{"since not a number", "sinceSeconds=1.5", logQuery{}, 400, "Unable to decode query."},
		{"since time not RFC 3339", "sinceTime=yesterday", logQuery{}, 400, "Unable to decode query."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, code, err := parseLogOptions(q, now)
			if tt.wantErr != "" {
				if err == nil || code != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseLogOptions(%s) = %d %v, want %d and an error with %q", tt.query, code, err, tt.wantCode, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseLogOptions(%s) = %+v, %v, want %+v", tt.query, got, err, tt.want)
			}
		})
	}
}

func TestWriteLog(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	rec := func(sec int, s logStream, partial bool, text string) string {
		return string(appendRecord(nil, t0.Add(time.Duration(sec)*time.Second), s, partial, []byte(text)))
	}
	abc := rec(0, stdout, false, "a") + rec(1, stderr, false, "b") + rec(2, stdout, false, "c")
	tests := []struct {
		name  string
		files []string // oldest rotated copy first, current log last
		q     logQuery
		want  string
	}{
		{"all", []string{abc}, logQuery{tail: -1}, "a\nb\nc\n"},
		{"tail 1", []string{abc}, logQuery{tail: 1}, "c\n"},
		{"tail 0", []string{abc}, logQuery{tail: 0}, ""},
		{"tail more than lines", []string{abc}, logQuery{tail: 9}, "a\nb\nc\n"},
		{"across rotation", []string{rec(0, stdout, false, "a") + rec(1, stdout, false, "b"), rec(2, stdout, false, "c")},
			logQuery{tail: 2}, "b\nc\n"},
		{"empty current", []string{abc, ""}, logQuery{tail: 1}, "c\n"},
		{"timestamps", []string{abc}, logQuery{tail: 1, timestamps: true}, "2026-01-02T03:04:07.000006000Z c\n"},
		{"since", []string{abc}, logQuery{tail: -1, since: t0.Add(time.Second)}, "b\nc\n"},
		{"limit", []string{abc}, logQuery{tail: -1, limit: 3}, "a\nb"},
		{"limit with timestamps", []string{abc}, logQuery{tail: -1, limit: 10, timestamps: true}, "2026-01-02"},
		{"partial joined", []string{rec(0, stdout, true, "lo") + rec(0, stdout, true, "ng ") + rec(1, stdout, false, "line")},
			logQuery{tail: -1, timestamps: true}, "2026-01-02T03:04:05.000006000Z long line\n"},
		{"plain lines", []string{"old one\nold two\n", abc}, logQuery{tail: 4}, "old two\na\nb\nc\n"},
		{"plain last line without newline", []string{"x\ny"}, logQuery{tail: -1}, "x\ny\n"},
		{"plain with timestamps", []string{"x\n" + rec(0, stdout, false, "a")}, logQuery{tail: -1, timestamps: true},
			"x\n2026-01-02T03:04:05.000006000Z a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			for i, content := range tt.files {
				p := path
				if n := len(tt.files) - 1 - i; n > 0 {
					p = path + "." + string(rune('0'+n))
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fs, sizes := openLog(logFiles(path))
			var b strings.Builder
			_, err := writeLog(newLogWriter(&b, tt.q), fs, sizes, tt.q.tail, true)
			if err != nil && err != errLogLimit || b.String() != tt.want {
				t.Errorf("writeLog(%+v) = %q, %v, want %q", tt.q, b.String(), err, tt.want)
			}
		})
	}
}

var procSeeds = []string{
	"cpu  100 2 30 9000 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
	"MemTotal:        1000 kB\nMemFree:  10 kB\nMemAvailable:     400 kB\n",
	"usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n",
	"anon 4096\ninactive_file 8192\n",
}

func TestProcParsers(t *testing.T) {
	if v, ok := procCPU([]byte(procSeeds[0])); !ok || v != uint64(100+2+30+6+7+8)*1e7 {
		t.Errorf("procCPU() = %d, %v, want %d", v, ok, uint64(100+2+30+6+7+8)*1e7)
	}
	if v, ok := memWorkingSet([]byte(procSeeds[1])); !ok || v != 600*1024 {
		t.Errorf("memWorkingSet() = %d, %v, want %d", v, ok, 600*1024)
	}
	if v, ok := statValue([]byte(procSeeds[2]), "usage_usec"); !ok || v != 1234 {
		t.Errorf("statValue(usage_usec) = %d, %v, want 1234", v, ok)
	}
	if _, ok := statValue([]byte(procSeeds[3]), "inactive"); ok {
		t.Errorf("statValue(inactive) found a value, want none (only whole keys)")
	}
}

func FuzzProcParsers(f *testing.F) {
	for _, s := range procSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		procCPU(b)
		memWorkingSet(b)
		statValue(b, "usage_usec")
	})
}

// TestKubeletPathsThroughTunnel runs real containers and asks for their
// logs and metrics the way cloudstream does, through a real tunnel.
func TestKubeletPathsThroughTunnel(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("tunnel-logs",
		sh("quiet", "for i in 1 2 3 4 5; do echo l$i; done; exec sleep 1000"),
		sh("ticker", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"))
	h.send(bus.OpInsert, bus.KindPod, "default", "tunnel-logs", p)
	h.waitStatus("tunnel-logs", 2*time.Minute, running("quiet", "ticker"))
	h.waitLog("default/tunnel-logs", "quiet", "l5\n")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := runTunnel(t, ctx, h.r.Handler())
	tun, err := srv.Tunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := func(typ stream.Type, path string) string {
		t.Helper()
		r, err := tun.Open(typ, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.ReadAll(ctx)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return string(b)
	}

	t.Run("logs", func(t *testing.T) {
		tests := []struct{ path, want string }{
			{"/containerLogs/default/tunnel-logs/quiet", "l1\nl2\nl3\nl4\nl5\n"},
			{"/containerLogs/default/tunnel-logs/quiet?tailLines=2", "l4\nl5\n"},
			{"/containerLogs/default/tunnel-logs/quiet?limitBytes=5", "l1\nl2"},
			{"/containerLogs/default/tunnel-logs/quiet?tailLines=2&limitBytes=4", "l4\nl"},
			{"/containerLogs/default/nope/quiet", "pod \"nope\" does not exist\n"},
			{"/containerLogs/default/tunnel-logs/nope", "container \"nope\" not found in pod \"tunnel-logs\"\n"},
			{"/containerLogs/other/tunnel-logs/quiet", "pod \"tunnel-logs\" does not exist\n"},
			{"/containerLogs/default/tunnel-logs/quiet?previous=true",
				"previous terminated container \"quiet\" in pod \"tunnel-logs\" not found\n"},
			{"/containerLogs/default/tunnel-logs/quiet?tailLines=-1", `{"message": "Invalid request."}` + "\n"},
		}
		for _, tt := range tests {
			if got := get(stream.TypeLogs, tt.path); got != tt.want {
				t.Errorf("logs %s = %q, want %q", tt.path, got, tt.want)
			}
		}
	})

	t.Run("follow", func(t *testing.T) {
		r, err := tun.Open(stream.TypeLogs, "/containerLogs/default/tunnel-logs/ticker?follow=true&tailLines=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		// The tail line, then lines the container writes after the
		// request: at least three in all.
		var got string
		for strings.Count(got, "\n") < 3 {
			d, ok, err := r.Next(ctx)
			if err != nil || !ok {
				t.Fatalf("follow: Next() = %q, %v, %v after %q", d, ok, err, got)
			}
			got += string(d)
		}
		if err := r.Cancel(ctx); err != nil {
			t.Fatal("follow: ", err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		body := get(stream.TypeMetrics, "/metrics/resource")
		var parser expfmt.TextParser
		fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics/resource does not parse: %v\n%s", err, body)
		}
		for _, name := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes"} {
			f := fams[name]
			if f == nil || len(f.Metric) != 1 || value(f.Metric[0]) <= 0 {
				t.Errorf("%s missing or not positive in\n%s", name, body)
			}
		}
		for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_start_time_seconds"} {
			found := map[string]bool{}
			for _, m := range fams[name].GetMetric() {
				l := map[string]string{}
				for _, lp := range m.Label {
					l[lp.GetName()] = lp.GetValue()
				}
				if l["pod"] == "tunnel-logs" && l["namespace"] == "default" && value(m) > 0 {
					found[l["container"]] = true
				}
			}
			if !found["quiet"] || !found["ticker"] {
				t.Errorf("%s: positive series for containers %v, want quiet and ticker of default/tunnel-logs\n%s", name, found, body)
			}
		}
	})

	t.Run("summary", func(t *testing.T) {
		var s summary
		body := get(stream.TypeMetrics, "/stats/summary")
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("/stats/summary: %v\n%s", err, body)
		}
		if s.Node.NodeName != "node1" || s.Node.CPU == nil || s.Node.CPU.UsageCoreNanoSeconds == 0 ||
			s.Node.Memory == nil || s.Node.Memory.WorkingSetBytes == 0 {
			t.Errorf("/stats/summary node = %+v, want node1 with cpu and memory", s.Node)
		}
		if len(s.Pods) != 1 || s.Pods[0].PodRef != (podRef{Name: "tunnel-logs", Namespace: "default", UID: "uid-tunnel-logs"}) ||
			len(s.Pods[0].Containers) != 2 || s.Pods[0].Containers[0].Memory.WorkingSetBytes == 0 {
			t.Errorf("/stats/summary pods = %s, want tunnel-logs with two containers", body)
		}
		// A second summary has a CPU rate.
		body = get(stream.TypeMetrics, "/stats/summary")
		if err := json.Unmarshal([]byte(body), &s); err != nil || s.Node.CPU.UsageNanoCores == nil {
			t.Errorf("second /stats/summary has no node usageNanoCores: %v\n%s", err, body)
		}
	})

	t.Run("follow ends when the container exits", func(t *testing.T) {
		p := testPod("tunnel-exit", sh("once", "echo a; sleep 2; echo b"))
		p.Spec.RestartPolicy = "Never"
		h.send(bus.OpInsert, bus.KindPod, "default", "tunnel-exit", p)
		h.waitStatus("tunnel-exit", 2*time.Minute, running("once"))
		r, err := tun.Open(stream.TypeLogs, "/containerLogs/default/tunnel-exit/once?follow=true", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadAll(ctx) // no Remove from the cloud: the edge ends it
		if err != nil || string(got) != "a\nb\n" {
			t.Errorf("follow of an exiting container = %q, %v, want \"a\\nb\\n\" and RemoveConnect", got, err)
		}
	})
}

// value is the value of a counter or gauge.
func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// runTunnel starts a stream tunnel server and the node's stream client
// serving h, until ctx ends or the test does; it returns the server.
func runTunnel(t testing.TB, ctx context.Context, h http.Handler) *streamtest.Server {
	t.Helper()
	srv, cfg := streamtest.Start(t, "node1")
	c, err := stream.New(cfg, h, testLog())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	return srv
}
