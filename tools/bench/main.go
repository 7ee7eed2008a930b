// Command bench measures edgenode against its budgets (design "Budgets")
// and prints one table with the machine it ran on. `make bench` runs it
// from the repository root after `make armv6`.
//
// It measures: the size of bin/edgenode-armv6; the memory of an idle node
// (embedded broker, connected to hubtest, no pods; VmRSS and RssAnon from
// /proc/PID/status) run natively and under qemu-arm-static; and the results of the packages' Go benchmarks (bus
// messages/s and allocations, twin updates/s and p99, pod start latency).
// A row whose benchmark does not exist yet says so.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"edgenode/board"
	"edgenode/hub/hubtest"
)

// Budgets (design "Budgets").
const (
	maxBinary  = 16 << 20
	maxRSS     = 20 << 20
	maxRssAnon = 6 << 20
)

func main() {
	armv6 := flag.String("armv6", "bin/edgenode-armv6", "the make armv6 binary")
	idle := flag.Duration("idle", 5*time.Second, "how long the node idles before its memory is read")
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	markdown := flag.Bool("markdown", false, "print the table as Markdown (for README)")
	flag.Parse()
	ctx := context.Background()

	var rows []row
	machine := describeMachine()

	if fi, err := os.Stat(*armv6); err == nil {
		rows = append(rows, row{"binary size, make armv6 (stripped)", mib(uint64(fi.Size())), "≤ 16 MiB", verdict(uint64(fi.Size()) <= maxBinary)})
	} else {
		rows = append(rows, row{"binary size, make armv6", "not built: " + err.Error(), "≤ 16 MiB", "-"})
	}

	host, err := buildHost()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(filepath.Dir(host))
	rows = append(rows, rssRows(ctx, "idle node, host ("+runtime.GOARCH+")", nil, host, *idle, true)...)
	if q, err := exec.LookPath("qemu-arm-static"); err == nil {
		if _, err := os.Stat(*armv6); err == nil {
			rows = append(rows, rssRows(ctx, "idle node, armv6 under qemu-arm-static (RSS includes the emulator)", []string{q}, *armv6, *idle, false)...)
		}
	} else {
		rows = append(rows, row{"idle node under qemu-arm-static", "qemu-arm-static missing (apt-get install qemu-user-static)", "-", "-"})
	}

	benches := runBenches(ctx, *benchtime, "./bus", "./twin", "./mqtt", "./pod")
	rows = append(rows, benchRows(benches)...)

	if *markdown {
		printMarkdown(os.Stdout, machine, rows)
		return
	}
	fmt.Println("machine:", machine)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\tlimit\tok")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.value, r.limit, r.ok)
	}
	tw.Flush()
}

type row struct{ name, value, limit, ok string }

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func mib(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

func printMarkdown(w io.Writer, machine string, rows []row) {
	fmt.Fprintf(w, "Machine: %s\n\n| measure | value | limit | ok |\n|---|---|---|---|\n", machine)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, r.value, r.limit, r.ok)
	}
}

// describeMachine reads the CPU model, cores and kernel with the board
// package, the same facts the node reports.
func describeMachine() string {
	u, _ := board.HostUname()
	f, err := board.Collect(os.DirFS("/"), u)
	if err != nil && f.CPUs == 0 {
		return runtime.GOOS + "/" + runtime.GOARCH
	}
	return fmt.Sprintf("%s, %d cores, %s RAM, kernel %s %s, %s", f.CPU.Describe(), f.CPUs, mib(f.Memory.Total),
		u.Release, u.Machine, runtime.Version())
}

// buildHost builds edgenode for this machine the way the Makefile builds
// releases (stripped, trimpath).
func buildHost() (string, error) {
	dir, err := os.MkdirTemp("", "edgenode-bench-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "edgenode")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// rssRows runs an idle node (embedded broker, connected to an in-process
// cloud, no pods), waits for the link, lets it idle, and reads its memory.
func rssRows(ctx context.Context, label string, prefix []string, bin string, idle time.Duration, budget bool) []row {
	m, err := idleMemory(ctx, prefix, bin, idle)
	if err != nil {
		return []row{{label, "failed: " + err.Error(), "-", "-"}}
	}
	lim1, lim2, ok1, ok2 := "≤ 20 MiB", "≤ 6 MiB", verdict(m.rss <= maxRSS), verdict(m.anon <= maxRssAnon)
	if !budget {
		lim1, lim2, ok1, ok2 = "(informative)", "(informative)", "-", "-"
	}
	return []row{
		{label + ": VmRSS", mib(m.rss), lim1, ok1},
		{label + ": RssAnon", mib(m.anon), lim2, ok2},
	}
}

type memory struct{ rss, anon uint64 }

func idleMemory(ctx context.Context, prefix []string, bin string, idle time.Duration) (memory, error) {
	dir, err := os.MkdirTemp("", "edgenode-bench-data-")
	if err != nil {
		return memory{}, err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return memory{}, err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "config.yaml")
	conf := fmt.Sprintf("version: 1\nnodeName: bench\ndataDir: %s/data\nwatchdog:\n  device: off\nhealth:\n  listen: %s\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\n", dir, addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return memory{}, err
	}
	// The node joins an in-process cloud, as a deployed node would.
	cloud := hubtest.NewServer(hubtest.Config{})
	defer cloud.Close()
	argv := append(append([]string(nil), prefix...), bin, "run", "--config", cfg,
		"--cloud", cloud.Addr, "--cert-server", cloud.CertURL, "--token", cloud.Token("bench"))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return memory{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte("\nedgenode_cloud_connected 1\n")) {
				break
			}
		}
		if time.Now().After(deadline) {
			return memory{}, fmt.Errorf("not connected to the test cloud after 60 s: %s", lastLine(stderr.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(idle)
	return readMemory(cmd.Process.Pid)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// readMemory reads VmRSS and RssAnon (kB) from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		if len(fs) < 1 {
			continue
		}
		n, _ := strconv.ParseUint(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n << 10
		case "RssAnon":
			m.anon = n << 10
		}
	}
	if m.rss == 0 {
		return m, errors.New("no VmRSS in /proc/PID/status")
	}
	return m, nil
}

// bench is one line of go test -bench output.
type bench struct {
	pkg, name string
	metrics   map[string]float64 // unit -> value: ns/op, allocs/op, updates/s, ...
}

// runBenches runs the benchmarks of the packages that exist.
func runBenches(ctx context.Context, benchtime string, pkgs ...string) []bench {
	var out []bench
	for _, p := range pkgs {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, p)
		b, err := cmd.Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: go test -bench %s: %v\n", p, err)
		}
		out = append(out, parseBench(p, b, runtime.GOMAXPROCS(0))...)
	}
	return out
}

// parseBench reads "BenchmarkX-8  N  v unit  v unit ..." lines.
func parseBench(pkg string, b []byte, procs int) []bench {
	var out []bench
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		// go test appends -GOMAXPROCS to the name unless it is 1.
		name := strings.TrimSuffix(f[0], "-"+strconv.Itoa(procs))
		bn := bench{pkg: pkg, name: name, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				bn.metrics[f[i+1]] = v
			}
		}
		out = append(out, bn)
	}
	return out
}

func find(bs []bench, pkg, nameHas, metric string) (bench, bool) {
	for _, b := range bs {
		if b.pkg == pkg && strings.Contains(b.name, nameHas) {
			if _, ok := b.metrics[metric]; ok {
				return b, true
			}
		}
	}
	return bench{}, false
}

func benchRows(bs []bench) []row {
	var rows []row
	if b, ok := find(bs, "./bus", "SendReceive", "ns/op"); ok {
		allocs := b.metrics["allocs/op"]
		rows = append(rows,
			row{"bus Send+Receive", fmt.Sprintf("%.0f msgs/s", 1e9/b.metrics["ns/op"]), "-", "-"},
			row{"bus Send+Receive allocations", fmt.Sprintf("%.0f allocs/msg", allocs), "0", verdict(allocs == 0)})
	} else {
		rows = append(rows, row{"bus msgs/s", "no benchmark", "0 allocs", "-"})
	}
	if b, ok := find(bs, "./bus", "SendSync", "ns/op"); ok {
		rows = append(rows, row{"bus SendSync round trip", fmt.Sprintf("%.0f /s, %.0f allocs", 1e9/b.metrics["ns/op"], b.metrics["allocs/op"]), "0 allocs", verdict(b.metrics["allocs/op"] == 0)})
	}
	rows = append(rows, twinRows(bs)...)
	if start, ok := find(bs, "./pod", "Start", "ns/op"); ok {
		v := start.metrics["ns/op"]
		limit, good := "≤ 1.5 × bare runc run", "-"
		if bare, ok := find(bs, "./pod", "Runc", "ns/op"); ok && bare.name != start.name {
			limit = fmt.Sprintf("≤ %.0f ms (1.5 × %.0f ms bare)", 1.5*bare.metrics["ns/op"]/1e6, bare.metrics["ns/op"]/1e6)
			good = verdict(v <= 1.5*bare.metrics["ns/op"])
		}
		rows = append(rows, row{"pod start latency (" + start.name + ")", fmt.Sprintf("%.0f ms", v/1e6), limit, good})
	} else {
		rows = append(rows, row{"pod start latency", "no benchmark yet", "≤ 1.5 × bare runc run", "-"})
	}
	return rows
}

func findExact(bs []bench, pkg, name, metric string) (bench, bool) {
	for _, b := range bs {
		if b.pkg == pkg && b.name == name {
			if _, ok := b.metrics[metric]; ok {
				return b, true
			}
		}
	}
	return bench{}, false
}

// twinRows compares a twin update end to end (MQTT publish -> committed ->
// result received) with a bare publish/receive through the same broker
// (design: at least half its rate), one request in flight and 32. The
// benchmark measures both in the same run and reports their ratio; with
// one in flight it also reports the fsync ceiling of a durable commit.
func twinRows(bs []bench) []row {
	var rows []row
	for _, n := range []string{"1", "32"} {
		tw, ok := findExact(bs, "./twin", "BenchmarkEndToEnd/"+n, "twin_updates/s")
		if !ok {
			continue
		}
		m := tw.metrics
		label := "twin update end to end, " + n + " in flight"
		limit, good := "≥ ½ bare MQTT round trip", "-"
		if r, ok := m["raw_msgs/s"]; ok {
			limit = fmt.Sprintf("≥ %.0f/s (½ of %.0f/s bare)", r/2, r)
			good = verdict(m["ratio"] >= 0.5)
		}
		rows = append(rows, row{label, fmt.Sprintf("%.0f /s (ratio %.2f)", m["twin_updates/s"], m["ratio"]), limit, good})
		if p99, ok := m["p99-µs"]; ok {
			rows = append(rows, row{label + ", p50/p99", fmt.Sprintf("%.2f/%.2f ms", m["p50-µs"]/1000, p99/1000), "-", "-"})
		}
		if f, ok := m["fsync_commits/s"]; ok {
			rows = append(rows, row{"durable commits (synchronous=FULL, no MQTT)", fmt.Sprintf("%.0f /s", f), "-", "-"})
		}
	}
	if len(rows) > 0 {
		return rows
	}
	if tw, ok := find(bs, "./twin", "", "updates/s"); ok {
		rows = append(rows, row{"twin updates (" + tw.name + ", no broker)", fmt.Sprintf("%.0f /s", tw.metrics["updates/s"]), "-", "-"})
		if p99, ok := tw.metrics["p99-µs"]; ok {
			rows = append(rows, row{"twin update p99", fmt.Sprintf("%.2f ms", p99/1000), "-", "-"})
		}
		return rows
	}
	return []row{{"twin updates/s and p99", "no benchmark yet", "≥ ½ bare MQTT round trip", "-"}}
}
