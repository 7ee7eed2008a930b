// Command bench measures edgenode against its budgets (design "Budgets")
// and prints one table with the machine it ran on. `make bench` runs it
// from the repository root after `make armv6`.
//
// It measures: the size of bin/edgenode-armv6; the memory of an idle node
// (embedded broker, connected to hubtest, no pods; VmRSS and RssAnon from
// /proc/PID/status) run natively, and under qemu-arm-static both the
// emulator's process and the ARM process's own mappings; the idle node's
// CPU in clock ticks per minute (utime+stime of /proc/PID/stat over 60 s
// after a 10 s settle), again after a burst of 10,000 twin updates, with
// its memory, heap allocations and collections; the packages' Go
// benchmarks (bus messages/s and allocations, twin updates/s end to end
// beside the bare MQTT round trip with p50/p99 and beside the durable
// commit rate, a polite client's twin/get while another floods, pod start beside a bare
// runc run, the node's memory and its processes besides the containers
// with 0, 10 and 30 pods, the stream tunnel's idle CPU and allocations
// beside the same process without it, one scrape of the metrics paths
// through the tunnel with 10 pods); and the emulated Pi Zero's BENCH
// lines from the last make test-board. A row whose benchmark did not run
// says so.
package main

import (
	"bytes"
	"context"
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

	"edgenode/internal/testenv"
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
	benchtime := flag.String("benchtime", "1s", "go test -benchtime of the bus and twin benchmarks")
	podN := flag.Int("pod-starts", 40, "pod starts (and bare runc runs) timed by the pod benchmarks")
	rssN := flag.Int("rss-samples", 3, "samples of the node's memory and processes with 0, 10 and 30 pods")
	boardFile := flag.String("board", "bin/image/test-board/bench.txt", "BENCH lines of the last make test-board")
	markdown := flag.Bool("markdown", false, "print the table as Markdown (for README)")
	cpuWindow := flag.Duration("cpu-window", time.Minute, "how long the idle node's CPU is counted (0: not measured)")
	cpuSettle := flag.Duration("cpu-settle", 10*time.Second, "how long the idle node settles before its CPU is counted")
	burst := flag.Int("burst", 10000, "twin updates of the burst before the idle CPU is counted again (0: none)")
	only := flag.String("only", "", "run only these rows: idle-cpu, stream (the tunnel's idle cost and a scrape), board (the -board file's rows, nothing run)")
	flag.Parse()
	ctx := context.Background()

	var rows []row
	machine := describeMachine()
	started := time.Now().UTC()

	if fi, err := os.Stat(*armv6); err == nil {
		rows = append(rows, row{"binary size, make armv6 (stripped)", mib(uint64(fi.Size())), "≤ 16 MiB", verdict(uint64(fi.Size()) <= maxBinary)})
	} else {
		rows = append(rows, row{"binary size, make armv6", "not built: " + err.Error(), "≤ 16 MiB", "-"})
	}

	if *only == "board" {
		printRows(machine, started, *markdown, append(rows, boardRows(*boardFile)...))
		return
	}
	if *only == "stream" {
		rows = append(rows, streamRows(runBenches(ctx, streamRuns(*cpuWindow, *benchtime)))...)
		printRows(machine, started, *markdown, rows)
		return
	}

	host, err := buildHost()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(filepath.Dir(host))
	if *only == "idle-cpu" {
		rows = append(rows, idleCPURows(ctx, host, *cpuSettle, *cpuWindow, *burst)...)
		printRows(machine, started, *markdown, rows)
		return
	}
	rows = append(rows, rssRows(ctx, "idle node, host ("+runtime.GOARCH+")", host, *idle)...)
	if *cpuWindow > 0 {
		rows = append(rows, idleCPURows(ctx, host, *cpuSettle, *cpuWindow, *burst)...)
	}
	if q, err := exec.LookPath("qemu-arm-static"); err == nil {
		if _, err := os.Stat(*armv6); err == nil {
			rows = append(rows, qemuRows(ctx, q, *armv6, *idle)...)
		}
	} else {
		rows = append(rows, row{"idle node under qemu-arm-static", "qemu-arm-static missing (apt-get install qemu-user-static)", "-", "-"})
	}

	benches := runBenches(ctx, append([]benchRun{
		{pkg: "./bus", bench: ".", benchtime: *benchtime},
		{pkg: "./twin", bench: "EndToEnd|FairShare", benchtime: *benchtime},
		{pkg: "./pod", bench: "^(BenchmarkPodStart|BenchmarkRuncRun)$", benchtime: fmt.Sprintf("%dx", *podN), root: true},
		{pkg: ".", bench: "^BenchmarkNodeRSSWithPods$", benchtime: fmt.Sprintf("%dx", *rssN), root: true,
			args: []string{"-idlecpu", cpuWindow.String()}},
	}, streamRuns(*cpuWindow, *benchtime)...))
	rows = append(rows, benchRows(benches)...)
	rows = append(rows, boardRows(*boardFile)...)
	printRows(machine, started, *markdown, rows)
}

func printRows(machine string, started time.Time, markdown bool, rows []row) {
	head := fmt.Sprintf("%s (load average %s at the start; the machine is shared and was loaded by other work, so rates vary between runs)",
		started.Format("2006-01-02 15:04 UTC"), loadAverage())
	if markdown {
		printMarkdown(os.Stdout, machine, head, rows)
		return
	}
	fmt.Println("machine:", machine)
	fmt.Println("run:", head)
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

// mib shows three decimals, so a value a KiB over a limit does not read as
// equal to it.
func mib(b uint64) string { return fmt.Sprintf("%.3f MiB", float64(b)/(1<<20)) }

func printMarkdown(w io.Writer, machine, head string, rows []row) {
	fmt.Fprintf(w, "Machine: %s\n\nRun: %s\n\n| measure | value | limit | ok |\n|---|---|---|---|\n", machine, head)
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
	return fmt.Sprintf("%s, %d cores, %.1f GiB RAM, kernel %s %s, %s", f.CPU.Describe(), f.CPUs, float64(f.Memory.Total)/(1<<30),
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
func rssRows(ctx context.Context, label string, bin string, idle time.Duration) []row {
	m, err := idleMemory(ctx, nil, bin, idle, nil)
	if err != nil {
		return []row{{label, "failed: " + err.Error(), "-", "-"}}
	}
	return []row{
		{label + ": VmRSS", mib(m.rss), "≤ 20 MiB", verdict(m.rss <= maxRSS)},
		{label + ": RssAnon", mib(m.anon), "≤ 6 MiB", verdict(m.anon <= maxRssAnon)},
	}
}

type memory struct{ rss, anon uint64 }

// qemuRows runs the idle node for ARMv6 under qemu-arm-static. The
// emulator's process holds the node's memory and the emulator's own (its
// code cache, its heap); qemu-user keeps the ARM process in a 4 GiB guest
// region of its address space, so the node's own memory is the sum of
// the mappings in that region (/proc/PID/smaps), checked against the
// budget. The emulated Pi Zero rows (make test-board) measure it on an ARM
// kernel.
func qemuRows(ctx context.Context, qemu, armv6 string, idle time.Duration) []row {
	const label = "idle node, armv6 under qemu-arm-static"
	var guest memory
	node, err := idleMemory(ctx, []string{qemu}, armv6, idle, func(pid int) error {
		var err error
		guest, err = guestMemory(pid, armv6)
		return err
	})
	if err != nil {
		return []row{{label, "failed: " + err.Error(), "-", "-"}}
	}
	return []row{
		{label + ", emulator included: VmRSS / RssAnon", mib(node.rss) + " / " + mib(node.anon), "(informative)", "-"},
		{label + ", the ARM process's own mappings: Rss", mib(guest.rss), "≤ 20 MiB", verdict(guest.rss <= maxRSS)},
		{label + ", the ARM process's own mappings: Anonymous", mib(guest.anon), "≤ 6 MiB", verdict(guest.anon <= maxRssAnon)},
	}
}

// guestMemory sums Rss and Anonymous of the mappings in the guest region
// of a qemu-user process: the 4 GiB from just below the first mapping of
// the guest binary (a Go ARM binary is linked at 0x10000).
func guestMemory(pid int, bin string) (memory, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return memory{}, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return memory{}, err
	}
	return parseGuestSmaps(b, abs)
}

// parseGuestSmaps reads smaps text; see guestMemory.
func parseGuestSmaps(b []byte, bin string) (memory, error) {
	type vma struct {
		start uint64
		rss   uint64
		anon  uint64
	}
	var vmas []vma
	lo, found := uint64(0), false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if a, _, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 && !strings.HasSuffix(f[0], ":") {
			start, err := strconv.ParseUint(a, 16, 64)
			if err != nil {
				continue
			}
			vmas = append(vmas, vma{start: start})
			if len(f) >= 6 && f[5] == bin && (!found || start < lo) {
				lo, found = start, true
			}
			continue
		}
		if len(vmas) == 0 || len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			vmas[len(vmas)-1].rss = n << 10
		case "Anonymous:":
			vmas[len(vmas)-1].anon = n << 10
		}
	}
	if !found {
		return memory{}, fmt.Errorf("no mapping of %s in smaps", bin)
	}
	const text = 0x10000
	base := uint64(0)
	if lo > text {
		base = (lo - text) &^ 0xfff
	}
	var m memory
	for _, v := range vmas {
		if v.start >= base && v.start < base+1<<32 {
			m.rss += v.rss
			m.anon += v.anon
		}
	}
	return m, nil
}

// idleMemory runs bin (under prefix, an emulator) as an idle node and reads
// its memory; also, when not nil, reads more about the process.
func idleMemory(ctx context.Context, prefix []string, bin string, idle time.Duration, also func(pid int) error) (memory, error) {
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
	if also != nil {
		if err := also(cmd.Process.Pid); err != nil {
			return memory{}, err
		}
	}
	return readMemory(cmd.Process.Pid)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// readMemory reads VmRSS and RssAnon of process pid.
func readMemory(pid int) (memory, error) {
	rss, anon, err := testenv.Memory(pid)
	return memory{rss: rss, anon: anon}, err
}

// bench is one line of go test -bench output.
type bench struct {
	pkg, name string
	metrics   map[string]float64 // unit -> value: ns/op, allocs/op, updates/s, ...
}

// benchRun is one go test -bench call.
type benchRun struct {
	pkg, bench, benchtime string
	args                  []string // passed on to the test binary
	root                  bool     // the benchmarks run containers: root and runc
}

// runBenches runs the benchmarks of the packages that exist. A package
// whose benchmarks skip (no root, no runc) prints why on stderr and its
// rows say "not run".
func runBenches(ctx context.Context, runs []benchRun) []bench {
	var out []bench
	for _, r := range runs {
		if _, err := os.Stat(r.pkg); err != nil {
			continue
		}
		if r.root && os.Geteuid() != 0 {
			fmt.Fprintf(os.Stderr, "bench: %s %s: needs root to run containers, skipped\n", r.pkg, r.bench)
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: go test -bench '%s' -benchtime %s %s\n", r.bench, r.benchtime, r.pkg)
		cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-run", "^$", "-bench", r.bench, "-benchmem", "-benchtime", r.benchtime, "-timeout", "20m", r.pkg}, r.args...)...)
		b, err := cmd.Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: go test -bench %s: %v\n%s", r.pkg, err, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "SKIP") || strings.Contains(l, "_test.go:") {
				fmt.Fprintf(os.Stderr, "bench: %s: %s\n", r.pkg, strings.TrimSpace(l))
			}
		}
		out = append(out, parseBench(r.pkg, b, runtime.GOMAXPROCS(0))...)
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
	rows = append(rows, podRows(bs)...)
	rows = append(rows, streamRows(bs)...)
	return rows
}

// notRun is the value of a row whose benchmark did not report.
const notRun = "not run (needs root and runc; see stderr)"

// podRows compares a pod start (pod message to container running, image
// present) with a bare runc run of the same bundle (design: at most 1.5x),
// and shows the node's memory and processes with 0, 10 and 30 pods.
func podRows(bs []bench) []row {
	var rows []row
	if start, ok := findExact(bs, "./pod", "BenchmarkPodStart", "ns/op"); ok {
		v := start.metrics["ns/op"]
		limit, good := "≤ 1.5 × bare runc run", "-"
		if bare, ok := findExact(bs, "./pod", "BenchmarkRuncRun", "ns/op"); ok {
			limit = fmt.Sprintf("≤ %.0f ms (1.5 × %.0f ms bare runc run)", 1.5*bare.metrics["ns/op"]/1e6, bare.metrics["ns/op"]/1e6)
			good = verdict(v <= 1.5*bare.metrics["ns/op"])
		}
		rows = append(rows, row{"pod start, image present", fmt.Sprintf("%.0f ms (ratio %s)", v/1e6, ratioOf(bs, v)), limit, good})
	} else {
		rows = append(rows, row{"pod start, image present", notRun, "≤ 1.5 × bare runc run", "-"})
	}
	for _, n := range []string{"0", "10", "30"} {
		b, ok := findExact(bs, ".", "BenchmarkNodeRSSWithPods/pods="+n, "VmRSS-MiB")
		if !ok {
			rows = append(rows, row{"node memory, " + n + " running pods", notRun, "(informative)", "-"})
			continue
		}
		m := b.metrics
		rows = append(rows, row{"node memory, " + n + " running pods: VmRSS / RssAnon",
			fmt.Sprintf("%.2f / %.2f MiB", m["VmRSS-MiB"], m["RssAnon-MiB"]), "(informative)", "-"})
		if t, ok := m["idle_ticks/min"]; ok {
			limit := maxIdleTicks
			if n != "0" {
				limit = maxIdleTicksPods
			}
			rows = append(rows, row{"idle node CPU, " + n + " running pods (60 s after a 10 s settle) / RssAnon",
				fmt.Sprintf("%.1f ticks/min / %.2f MiB", t, m["idle_RssAnon-MiB"]), fmt.Sprintf("≤ %d ticks/min, ≤ 6 MiB", limit),
				verdict(t <= float64(limit) && m["idle_RssAnon-MiB"] <= 6)})
		}
		if other, ok := m["other_procs"]; ok {
			rows = append(rows, row{"resident processes besides the containers, " + n + " pods",
				fmt.Sprintf("%.0f (%.0f containers, %.0f processes in them)", other, m["containers"], m["container_procs"]),
				"0", verdict(other == 0)})
		}
	}
	return rows
}

func ratioOf(bs []bench, start float64) string {
	if bare, ok := findExact(bs, "./pod", "BenchmarkRuncRun", "ns/op"); ok && bare.metrics["ns/op"] > 0 {
		return fmt.Sprintf("%.2f", start/bare.metrics["ns/op"])
	}
	return "-"
}

// boardRows reads the BENCH lines the emulated Pi Zero wrote in its last
// make test-board (one per boot): "BENCH board_boot_ready_ms=.. ...".
// Its memory is edgenode's own on an ARMv6 kernel (no emulator inside the
// guest), so the idle budget applies.
func boardRows(file string) []row {
	b, err := os.ReadFile(file)
	if err != nil {
		return []row{{"emulated Pi Zero (make test-board)", "no numbers: run make test-board", "-", "-"}}
	}
	fi, _ := os.Stat(file)
	when := fi.ModTime().UTC().Format("2006-01-02")
	var rows []row
	boot := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "BENCH" {
			continue
		}
		boot++
		kv := map[string]float64{}
		for _, x := range f[1:] {
			k, v, _ := strings.Cut(x, "=")
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				kv[k] = n
			}
		}
		label := fmt.Sprintf("emulated Pi Zero (raspi0, %s), boot %d: ", when, boot)
		rss, anon := uint64(kv["board_rss_kb"])<<10, uint64(kv["board_rss_anon_kb"])<<10
		rows = append(rows,
			row{label + "boot to edgenode ready / edgenode start to ready", fmt.Sprintf("%.1f s / %.1f s", kv["board_boot_ready_ms"]/1000, kv["board_start_ms"]/1000), "(informative)", "-"},
			row{label + "VmRSS, one static pod running", mib(rss), "≤ 20 MiB", verdict(rss > 0 && rss <= maxRSS)},
			row{label + "RssAnon, one static pod running", mib(anon), "≤ 6 MiB", verdict(anon > 0 && anon <= maxRssAnon)},
			row{label + "static pod's container started, from edgenode's start", fmt.Sprintf("%.1f s", kv["board_pod_start_ms"]/1000), "(informative)", "-"})
		if t, ok := kv["board_idle_ticks_per_min"]; ok {
			rows = append(rows, row{label + "idle CPU, one static pod running (60 s after a 10 s settle)", fmt.Sprintf("%.0f ticks/min", t), "(informative)", "-"})
		}
	}
	if boot == 0 {
		return []row{{"emulated Pi Zero (make test-board)", "no BENCH line in " + file, "-", "-"}}
	}
	return rows
}

// loadAverage is the 1-minute load average from /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
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
		if r, ok := m["raw_msgs/s"]; ok && n == "1" {
			// One in flight waits for its fsync: its budget is the
			// durable-commit rate (the row below); the bare round trip is
			// shown beside it.
			limit = fmt.Sprintf("(bare %.0f/s)", r)
		} else if ok {
			limit = fmt.Sprintf("≥ %.0f/s (½ of %.0f/s bare)", r/2, r)
			good = verdict(m["ratio"] >= 0.5)
		}
		v := fmt.Sprintf("%.0f /s (ratio %.2f", m["twin_updates/s"], m["ratio"])
		if u, ok := m["updates_per_commit"]; ok && n != "1" {
			v += fmt.Sprintf("; %.1f updates a commit", u)
		}
		rows = append(rows, row{label, v + ")", limit, good})
		if p99, ok := m["p99-µs"]; ok {
			v := fmt.Sprintf("%.2f/%.2f ms", m["p50-µs"]/1000, p99/1000)
			if r, ok := m["raw_p50-µs"]; ok {
				v += fmt.Sprintf(" (bare p50 %.2f ms)", r/1000)
			}
			rows = append(rows, row{label + ", p50/p99", v, "-", "-"})
		}
		if f, ok := m["fsync_commits/s"]; ok && f > 0 {
			// With one in flight each update waits for its own fsync: the
			// budget is 0.9 of the durable-commit rate of the same run.
			tw := m["twin_updates/s"]
			r := tw / f
			rows = append(rows,
				row{"durable commits (synchronous=FULL, no MQTT)", fmt.Sprintf("%.0f /s", f), "-", "-"},
				row{label + ", beside the durable commits", fmt.Sprintf("ratio %.2f", r), fmt.Sprintf("≥ %.0f/s (0.9 × %.0f/s)", 0.9*f, f), verdict(r >= 0.9)})
			if raw := m["raw_msgs/s"]; raw > 0 && tw > 0 {
				// An update with one in flight is at least a bare round
				// trip and a durable commit, one after the other: the
				// best ratio any twin could reach in this run, and the
				// time twin itself added to each update.
				own := max(0, 1e6*(1/tw-1/f-1/raw))
				rows = append(rows,
					row{label + ", the most a bare round trip then a durable commit allow", fmt.Sprintf("ratio %.2f", raw/(raw+f)), "-", "-"},
					row{label + ", twin's own time besides both", fmt.Sprintf("%.0f µs an update", own), "-", "-"})
			}
		}
	}
	if fs, ok := findExact(bs, "./twin", "BenchmarkFairShare", "get_p99-ms"); ok {
		m := fs.metrics
		rows = append(rows,
			row{"twin/get of a polite client while another floods updates: p50/p99", fmt.Sprintf("%.2f/%.2f ms, %.0f unanswered", m["get_p50-ms"], m["get_p99-ms"], m["gets_lost"]), "p99 ≤ 50 ms", verdict(m["get_p99-ms"] <= 50 && m["gets_lost"] == 0)},
			// A flood twin keeps up with is slowed, not refused: a request
			// waits up to 10 ms for a place in its client's share before it
			// gets a 503 (README "MQTT", Fair share), so 503s come only
			// while twin cannot take one for that long. mqtt's TestTwinShare
			// and twin's TestFairShare check the 503 itself.
			row{"the flooding client: sent / done / overload (503) results", fmt.Sprintf("%.0f / %.0f / %.1f per s", m["flood_sent/s"], m["flood_done/s"], m["flood_503/s"]), "(503 only while twin cannot take a request for 10 ms)", "-"})
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
