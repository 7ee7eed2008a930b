package pod

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
)

// getLogs asks the runner's kubelet handler for path.
func (h *harness) getLogs(path string) (int, string) {
	rec := httptest.NewRecorder()
	h.r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

// logRecords parses the current log file of a container.
func (h *harness) logRecords(uid, container string) []logRecord {
	return records(h.t, filepath.Join(PodsDir(h.cfg.DataDir), uid, "logs", container+".log"))
}

// TestContainerLogQueries runs real containers and reads their CRI logs
// with each of the kubelet's query options.
func TestContainerLogQueries(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("crilog",
		sh("main", `echo early; sleep 0.3; echo err1 >&2; sleep 2; head -c 20000 /dev/zero | tr '\0' x; echo; echo late; exec sleep 1000`),
		sh("again", `n=$(cat /v/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /v/n; echo run $n; [ $n -ge 2 ] && exec sleep 1000; exit 1`))
	p.Spec.Volumes = []Volume{{Name: "v", EmptyDir: &EmptyDirVolumeSource{}}}
	p.Spec.Containers[1].VolumeMounts = []VolumeMount{{Name: "v", MountPath: "/v"}}
	h.send(bus.OpInsert, bus.KindPod, "default", "crilog", p)
	h.waitStatus("crilog", 2*time.Minute, func(s PodStatus) bool {
		return running("main", "again")(s) && s.ContainerStatuses[0].RestartCount+s.ContainerStatuses[1].RestartCount == 1
	})
	h.waitLog("crilog", "main", "late\n")
	h.waitLog("crilog", "again", "run 2\n")

	// The file: CRI records, stderr tagged, the long line split at 16 KiB.
	var got []string
	var late time.Time
	for _, r := range h.logRecords("uid-crilog", "main") {
		got = append(got, fmt.Sprintf("%s %v %d", r.stream, r.partial, len(r.text)))
		if string(r.text) == "late" {
			late = r.time
		}
	}
	want := []string{"stdout false 5", "stderr false 4", "stdout true 16384", "stdout false 3616", "stdout false 4"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("main.log records (stream partial len) = %v, want %v", got, want)
	}

	long := strings.Repeat("x", 20000)
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z `
	since := strconv.Itoa(int(time.Since(late).Seconds()) + 1) // after early, before late
	tests := []struct {
		name, query string
		code        int
		want        string // exact body, or a regexp with re
		re          bool
	}{
		{"all", "", 200, "early\nerr1\n" + long + "\nlate\n", false},
		{"tailLines", "?tailLines=1", 200, "late\n", false},
		{"tailLines counts records", "?tailLines=2", 200, long[:3616] + "\nlate\n", false},
		{"limitBytes", "?limitBytes=8", 200, "early\ner", false},
		{"timestamps", "?timestamps=true&tailLines=1", 200, "^" + stamp + "late\n$", true},
		{"timestamps on a split line", "?timestamps=1&tailLines=3", 200, "^" + stamp + long + "\n" + stamp + "late\n$", true},
		{"sinceSeconds", "?sinceSeconds=" + since, 200, long + "\nlate\n", false},
		{"sinceTime", "?sinceTime=" + late.Truncate(time.Second).Format(time.RFC3339), 200, long + "\nlate\n", false},
		{"sinceTime in the future", "?sinceTime=2999-01-01T00:00:00Z", 200, "", false},
		{"bad sinceTime", "?sinceTime=today", 400, `{"message": "Unable to decode query."}` + "\n", false},
		{"both since", "?sinceTime=2999-01-01T00:00:00Z&sinceSeconds=1", 422, `{"message": "Invalid request."}` + "\n", false},
		{"no previous", "?previous=true", 400, `previous terminated container "main" in pod "crilog" not found` + "\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.getLogs("/containerLogs/default/crilog/main" + tt.query)
			ok := body == tt.want
			if tt.re {
				ok = regexp.MustCompile(tt.want).MatchString(body)
			}
			if code != tt.code || !ok {
				t.Errorf("GET %s = %d %.200q, want %d %.200q", tt.query, code, body, tt.code, tt.want)
			}
		})
	}
	t.Run("previous", func(t *testing.T) {
		if code, body := h.getLogs("/containerLogs/default/crilog/again?previous=true"); code != 200 || body != "run 1\n" {
			t.Errorf("previous = %d %q, want 200 \"run 1\\n\"", code, body)
		}
		if code, body := h.getLogs("/containerLogs/default/crilog/again"); code != 200 || body != "run 2\n" {
			t.Errorf("current = %d %q, want 200 \"run 2\\n\"", code, body)
		}
	})
	t.Run("edgenode logs", func(t *testing.T) {
		var b strings.Builder
		if err := WriteLogs(&b, h.cfg.DataDir, "crilog", "main", false); err != nil || b.String() != "early\nerr1\n"+long+"\nlate\n" {
			t.Errorf("WriteLogs() = %.100q, %v, want the text of every line", b.String(), err)
		}
	})
}

// TestFollowStreamsNewLines follows a ticking container over HTTP: lines
// written after the request arrive, and the request ends when the
// container exits.
func TestFollowStreamsNewLines(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("follow", sh("tick", `i=0; while [ $i -lt 30 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done`))
	p.Spec.RestartPolicy = RestartNever
	h.send(bus.OpInsert, bus.KindPod, "default", "follow", p)
	h.waitLog("follow", "tick", "tick 2\n")
	attached := make(chan []string, 1)
	w := h.r.worker("default", "follow")
	if w == nil {
		t.Fatal("no worker for pod default/follow")
	}
	go func() {
		var out, errOut bytes.Buffer
		w.followOutput(context.Background(), "tick", &out, &errOut, func() {})
		attached <- append(strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), strings.Split(errOut.String(), "\n")...)
	}()
	srv := httptest.NewServer(h.r.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/containerLogs/default/follow/tick?follow=true&tailLines=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// One tail line, then each new line to the last: the body ends with
	// the container.
	if len(lines) < 5 || lines[len(lines)-1] != "tick 29" {
		t.Fatalf("followed lines = %v, want the tail line and every later one up to tick 29", lines)
	}
	first, _ := strconv.Atoi(strings.TrimPrefix(lines[0], "tick "))
	for i, l := range lines {
		if l != "tick "+strconv.Itoa(first+i) {
			t.Fatalf("followed line %d = %q, want %q (in %v)", i, l, "tick "+strconv.Itoa(first+i), lines)
		}
	}
	// followOutput (attach) gets the lines from its start to the end, on
	// stdout, and nothing on stderr (the empty line after the split).
	got := <-attached
	if len(got) < 6 || got[len(got)-2] != "tick 29" || got[len(got)-1] != "" {
		t.Fatalf("followOutput lines = %q, want each from its start to tick 29 on stdout, none on stderr", got)
	}
	got = got[:len(got)-1]
	first, _ = strconv.Atoi(strings.TrimPrefix(got[0], "tick "))
	for i, g := range got {
		if want := "tick " + strconv.Itoa(first+i); g != want {
			t.Fatalf("followOutput line %d = %q, want %q", i, g, want)
		}
	}
}

// TestLogRotationKeepsEveryLine: a container writes numbered lines as
// fast as it can across several rotations; every number is in the files,
// in order, and a follower reading meanwhile gets them all too.
func TestLogRotationKeepsEveryLine(t *testing.T) {
	const n = 3000
	h := newHarness(t, "", func(c *Config) { c.LogMaxSize = 16 << 10; c.LogMaxFiles = 9 })
	p := testPod("numbers", sh("main", fmt.Sprintf(`sleep 1; i=0; while [ $i -lt %d ]; do echo "n $i"; i=$((i+1)); done; echo done; exec sleep 1000`, n)))
	h.send(bus.OpInsert, bus.KindPod, "default", "numbers", p)
	h.waitStatus("numbers", 2*time.Minute, running("main"))
	srv := httptest.NewServer(h.r.Handler())
	defer srv.Close()
	followed := make(chan string, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/containerLogs/default/numbers/main?follow=true")
		if err != nil {
			followed <- err.Error()
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && sc.Text() != "done" {
			b.WriteString(sc.Text() + "\n")
		}
		followed <- b.String()
	}()
	h.waitLog("numbers", "main", "done\n")
	var want strings.Builder
	for i := range n {
		fmt.Fprintf(&want, "n %d\n", i)
	}
	got := h.logs("numbers", "main")
	ents, _ := os.ReadDir(filepath.Join(PodsDir(h.cfg.DataDir), "uid-numbers", "logs"))
	if got != want.String()+"done\n" || len(ents) < 4 {
		t.Errorf("log over %d files has %d bytes, want every number in order (%d bytes) over at least 4 files", len(ents), len(got), want.Len()+5)
	}
	select {
	case f := <-followed:
		if f != want.String() {
			t.Errorf("follower got %d bytes, want every number in order (%d bytes); starts %.100q", len(f), want.Len(), f)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("follower did not reach done")
	}
}

// TestAdoptedContainerKeepsLogging: edgenode stops while a container
// writes; what it writes meanwhile waits in the pipe, and the next
// edgenode reads it and goes on: no number is missing.
func TestAdoptedContainerKeepsLogging(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("adopt", sh("main", `i=0; while true; do echo "tick $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.02; done`))
	h.send(bus.OpInsert, bus.KindPod, "default", "adopt", p)
	h.waitLog("adopt", "main", "tick 5\n")
	h.stop()
	stoppedAt := len(strings.Split(h.logs("adopt", "main"), "\n"))
	time.Sleep(500 * time.Millisecond) // the container writes into the pipe
	h2 := newHarness(t, h.cfg.DataDir, nil)
	h2.waitLog("adopt", "main", fmt.Sprintf("tick %d\n", stoppedAt+50))
	ticks := map[string]int{}
	pending := map[string]string{} // a line cut when edgenode stopped goes on in the next record
	for _, r := range h2.logRecords("uid-adopt", "main") {
		s := r.stream.String()
		if r.partial {
			pending[s] += string(r.text)
			continue
		}
		text := pending[s] + string(r.text)
		pending[s] = ""
		f := strings.Fields(text)
		want := strconv.Itoa(ticks[s])
		if len(f) != 2 || f[1] != want {
			t.Fatalf("%s line %q, want number %s: a line was lost across the restart", s, text, want)
		}
		ticks[s]++
	}
	if ticks["stdout"] < stoppedAt+50 || ticks["stderr"] < stoppedAt {
		t.Errorf("records per stream %v, want more than %d", ticks, stoppedAt+50)
	}
}

// BenchmarkContainerLogLines is the rate of lines from a real container
// writing as fast as it can (busybox yes, 40-byte lines, through its
// stdio buffer) through the relay into the log, from the times the relay
// stamped on the first and last record.
func BenchmarkContainerLogLines(b *testing.B) {
	const n = 300000
	h := newHarness(b, "", func(c *Config) { c.LogMaxSize = 1 << 30 })
	for i := 0; b.Loop(); i++ {
		name := "yes" + strconv.Itoa(i)
		p := testPod(name, sh("main", fmt.Sprintf(`sleep 0.5; yes %s | head -n %d; echo done`, strings.Repeat("y", 39), n)))
		p.Spec.RestartPolicy = RestartNever
		h.send(bus.OpInsert, bus.KindPod, "default", name, p)
		path := filepath.Join(PodsDir(h.cfg.DataDir), "uid-"+name, "logs", "main.log")
		waitFor(b, func() bool {
			fi, err := os.Stat(path)
			return err == nil && fi.Size() > int64(n)*40
		})
		var rs []logRecord
		waitFor(b, func() bool {
			rs = records(b, path)
			return len(rs) > 0 && string(rs[len(rs)-1].text) == "done"
		})
		if len(rs) != n+1 {
			b.Fatalf("%d records, want %d", len(rs), n+1)
		}
		d := rs[len(rs)-1].time.Sub(rs[0].time)
		b.ReportMetric(float64(n)/d.Seconds(), "lines/s")
		h.r.DeletePod("default", name)
		waitGone(b, h, "uid-"+name)
	}
}
