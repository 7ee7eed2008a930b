package pod

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newTestOutput is the output of one container with no pod around it:
// the relay alone, on real FIFOs and files.
func newTestOutput(t testing.TB, maxSize int64, maxFiles int) *output {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("FIFOs need linux")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs"), 0o700)
	r := &Runner{cfg: Config{LogMaxSize: maxSize, LogMaxFiles: maxFiles}, log: testLog()}
	return &output{r: r, path: filepath.Join(dir, "logs", "c.log"), fifo: filepath.Join(dir, "io", "c")}
}

// records reads the log files of o, oldest first, as raw lines.
func records(t testing.TB, path string) []logRecord {
	t.Helper()
	var out []logRecord
	for _, f := range logFiles(path) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			if l[len(l)-1] != '\n' {
				t.Fatalf("%s: record %q without its newline", f, l)
			}
			r := parseRecord(l[:len(l)-1])
			if r.time.IsZero() {
				t.Fatalf("%s: %q is not a CRI record", f, l)
			}
			out = append(out, r)
		}
	}
	return out
}

func TestRelayRecords(t *testing.T) {
	o := newTestOutput(t, 1<<20, 2)
	ctx := context.Background()
	out, errf, err := o.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pipeSize(out), min(pipeMax(), maxPipeBuffer); got < want {
		t.Errorf("pipe capacity %d, want %d (F_SETPIPE_SZ)", got, want)
	}
	long := strings.Repeat("x", maxLogLine+100)
	out.WriteString("a\n")
	errf.WriteString("b\n")
	out.WriteString(long + "\nlast without newline")
	out.Close()
	errf.Close()
	o.r.wg.Wait()
	var got []string
	for _, r := range records(t, o.path) {
		got = append(got, fmt.Sprintf("%s %v %d", r.stream, r.partial, len(r.text)))
	}
	// stdout and stderr are separate pipes: their order in the file is not
	// fixed. Per stream it is.
	want := map[string][]string{
		"stdout": {"stdout false 1", fmt.Sprintf("stdout true %d", maxLogLine), "stdout false 100", "stdout false 20"},
		"stderr": {"stderr false 1"},
	}
	for s, w := range want {
		var g []string
		for _, x := range got {
			if strings.HasPrefix(x, s) {
				g = append(g, x)
			}
		}
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s records = %v, want %v", s, g, w)
		}
	}
	var b strings.Builder
	if err := o.read(ctx, &b, logQuery{tail: -1}); err != nil {
		t.Fatal(err)
	}
	// The streams' order is not fixed; stdout's is.
	if s := b.String(); strings.Replace(s, "b\n", "", 1) != "a\n"+long+"\nlast without newline\n" {
		t.Errorf("read = %.100q...%q, want a, b, the long line whole and the last line", s, s[max(0, len(s)-40):])
	}
}

// TestRelayRotationKeepsEveryLine writes numbered lines fast across
// several rotations: the files and a follower that runs meanwhile both
// have every number, in order.
func TestRelayRotationKeepsEveryLine(t *testing.T) {
	const n = 1500 // about 70 KB of records: within 10 files of 8 KiB
	o := newTestOutput(t, 8192, 9)
	ctx := context.Background()
	out, errf, err := o.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errf.Close()
	followed := make(chan string, 1)
	go func() {
		var b strings.Builder
		if err := o.read(ctx, &b, logQuery{tail: -1, follow: true}); err != nil {
			t.Error(err)
		}
		followed <- b.String()
	}()
	var want strings.Builder
	for i := range n {
		fmt.Fprintf(&want, "n %d\n", i)
		fmt.Fprintf(out, "n %d\n", i)
	}
	out.Close()
	o.r.wg.Wait()
	rotated := 0
	for _, f := range logFiles(o.path) {
		if f != o.path {
			rotated++
		}
	}
	var files strings.Builder
	if _, err := writeLog(newLogWriter(&files, logQuery{tail: -1}), mustOpen(t, o.path), nil, -1, true); err != nil {
		t.Fatal(err)
	}
	if rotated < 5 || files.String() != want.String() {
		t.Errorf("%d rotated files hold %d bytes, want at least 5 files and every line in order:\n%.300s", rotated, files.Len(), files.String())
	}
	if got := <-followed; got != want.String() {
		t.Errorf("follower read %d bytes, want every line in order (%d bytes)", len(got), want.Len())
	}
}

// mustOpen opens a log's files.
func mustOpen(t testing.TB, path string) []*os.File {
	fs, _ := openLog(logFiles(path))
	t.Cleanup(func() {
		for _, f := range fs {
			f.Close()
		}
	})
	return fs
}

// TestRelayRestart: edgenode stops mid-line and the container writes on
// into the pipe; a new relay on the same FIFOs (adoption) reads the rest.
func TestRelayRestart(t *testing.T) {
	o := newTestOutput(t, 1<<20, 2)
	ctx, stop := context.WithCancel(context.Background())
	out, errf, err := o.begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	defer errf.Close()
	out.WriteString("one\ntw")
	waitFor(t, func() bool { return len(records(t, o.path)) == 1 })
	stop()
	o.r.wg.Wait()
	out.WriteString("o\nthree\n") // into the pipe: nobody reads
	errf.WriteString("err\n")
	if err := o.adopt(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(records(t, o.path)) == 5 })
	var b strings.Builder
	if err := o.read(context.Background(), &b, logQuery{tail: -1}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); strings.ReplaceAll(got, "err\n", "") != "one\ntwo\nthree\n" || !strings.Contains(got, "err\n") {
		t.Errorf("log after the relay restarted = %q, want one, two (split at the stop), three and err", got)
	}
	out.Close()
	errf.Close()
	o.r.wg.Wait()
}

// waitFor polls cond for up to a minute (files have no event to wait on).
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkRelay is the rate of lines through one relay: a writer as
// fast as it can, 40-byte lines, one write each, stamped and appended to the log.
func BenchmarkRelay(b *testing.B) {
	o := newTestOutput(b, 10<<20, 2)
	out, errf, err := o.begin(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	errf.Close()
	line := []byte(strings.Repeat("x", 39) + "\n")
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		out.Write(line) // one write per line, as an unbuffered stdout does
	}
	out.Close()
	o.r.wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkRelayIdle is the CPU time of this process with 0 and 20
// relays of silent containers: their goroutines sleep in the poller, so
// the two should be the same. It also reports the memory (heap objects
// and goroutine stacks, after two collections) that each stream of a
// container holds once it has relayed a line and gone quiet.
func BenchmarkRelayIdle(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("relays=%d", n), func(b *testing.B) {
			mem0 := heapAndStacks()
			var outs []*os.File
			for range n {
				o := newTestOutput(b, 1<<20, 2)
				out, errf, err := o.begin(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				outs = append(outs, out, errf)
				b.Cleanup(func() { o.r.wg.Wait() })
				for _, f := range []*os.File{out, errf} {
					f.Write([]byte("one line\n"))
				}
				for deadline := time.Now().Add(5 * time.Second); len(records(b, o.path)) < 2; {
					if time.Now().After(deadline) {
						b.Fatal("lines not relayed")
					}
					time.Sleep(time.Millisecond)
				}
			}
			defer func() {
				for _, f := range outs {
					f.Close()
				}
			}()
			perStream := (heapAndStacks() - mem0) / float64(max(2*n, 1))
			var before, after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			start := time.Now()
			for b.Loop() {
				time.Sleep(100 * time.Millisecond)
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/time.Since(start).Seconds(), "cpu-µs/s")
			if n > 0 {
				b.ReportMetric(perStream, "bytes/stream")
			}
		})
	}
}

// BenchmarkStallWhileDown measures what a container writing 1 MB/s (1 KB
// every millisecond) goes through while edgenode is down for
// EDGENODE_BENCH_DOWN (default 30s): how long its writes block in all,
// and that every line arrives once the relay is back (adoption).
func BenchmarkStallWhileDown(b *testing.B) {
	down := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("EDGENODE_BENCH_DOWN")); err == nil {
		down = d
	}
	for b.Loop() {
		o := newTestOutput(b, 1<<30, 2)
		ctx, stop := context.WithCancel(context.Background())
		out, errf, err := o.begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		errf.Close()
		line := []byte(strings.Repeat("x", 999) + "\n")
		total := int(down/time.Millisecond) + 2000
		var stalled time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			next := time.Now()
			for range total {
				t := time.Now()
				out.Write(line)
				if d := time.Since(t); d > time.Millisecond {
					stalled += d
				}
				next = next.Add(time.Millisecond)
				time.Sleep(time.Until(next))
			}
			out.Close()
		}()
		time.Sleep(time.Second)
		stop()
		o.r.wg.Wait()
		time.Sleep(down)
		if err := o.adopt(context.Background(), true); err != nil {
			b.Fatal(err)
		}
		<-done
		o.r.wg.Wait()
		if n := len(records(b, o.path)); n != total {
			b.Errorf("%d records, want %d: lines lost", n, total)
		}
		b.ReportMetric(stalled.Seconds(), "stalled-s")
		b.ReportMetric(down.Seconds(), "down-s")
	}
}

// heapAndStacks returns the bytes of live heap objects and goroutine
// stacks after two collections (the second frees what the first left to
// cleanups and pools' victim caches).
func heapAndStacks() float64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64() + s[1].Value.Uint64())
}
