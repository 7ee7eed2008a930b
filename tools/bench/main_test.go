package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkSendReceive-2   	 9615385	       124.6 ns/op	       0 B/op	       0 allocs/op
BenchmarkTwinUpdateBus-2 	    2000	    512345 ns/op	      1950 updates/s	       480.0 p50-µs	      2100 p99-µs
BenchmarkEndToEnd/1-2 	    3000	    400000 ns/op	      2000 fsync_commits/s	       380.0 p50-µs	      1500 p99-µs	         0.15 ratio	     10000 raw_msgs/s	        18.00 raw_p50-µs	      1500 twin_updates/s
BenchmarkEndToEnd/32-2         	   30000	     30000 ns/op	      2000 p50-µs	      9000 p99-µs	         0.6 ratio	     50000 raw_msgs/s	       500.0 raw_p50-µs	     30000 twin_updates/s	        31.50 updates_per_commit
PASS
`
	got := parseBench("./bus", []byte(out), 2)
	want := []bench{
		{"./bus", "BenchmarkSendReceive", map[string]float64{"ns/op": 124.6, "B/op": 0, "allocs/op": 0}},
		{"./bus", "BenchmarkTwinUpdateBus", map[string]float64{"ns/op": 512345, "updates/s": 1950, "p50-µs": 480, "p99-µs": 2100}},
		{"./bus", "BenchmarkEndToEnd/1", map[string]float64{"ns/op": 400000, "fsync_commits/s": 2000, "p50-µs": 380, "p99-µs": 1500,
			"ratio": 0.15, "raw_msgs/s": 10000, "raw_p50-µs": 18, "twin_updates/s": 1500}},
		{"./bus", "BenchmarkEndToEnd/32", map[string]float64{"ns/op": 30000, "p50-µs": 2000, "p99-µs": 9000,
			"ratio": 0.6, "raw_msgs/s": 50000, "raw_p50-µs": 500, "twin_updates/s": 30000, "updates_per_commit": 31.5}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(bench{})); diff != "" {
		t.Errorf("parseBench mismatch (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		got[i].pkg = "./twin"
	}
	rows := benchRows(got)
	want2 := []row{
		{"bus Send+Receive", "8025682 msgs/s", "-", "-"},
		{"bus Send+Receive allocations", "0 allocs/msg", "0", "yes"},
		{"twin update end to end, 1 in flight", "1500 /s (ratio 0.15)", "(bare 10000/s)", "-"},
		{"twin update end to end, 1 in flight, p50/p99", "0.38/1.50 ms (bare p50 0.02 ms)", "-", "-"},
		{"durable commits (synchronous=FULL, no MQTT)", "2000 /s", "-", "-"},
		{"twin update end to end, 1 in flight, beside the durable commits", "ratio 0.75", "≥ 1800/s (0.9 × 2000/s)", "NO"},
		// 10000/(10000+2000); 1e6 × (1/1500 - 1/2000 - 1/10000)
		{"twin update end to end, 1 in flight, the most a bare round trip then a durable commit allow", "ratio 0.83", "-", "-"},
		{"twin update end to end, 1 in flight, twin's own time besides both", "67 µs an update", "-", "-"},
		{"twin update end to end, 32 in flight", "30000 /s (ratio 0.60; 31.5 updates a commit)", "≥ 25000/s (½ of 50000/s bare)", "yes"},
		{"twin update end to end, 32 in flight, p50/p99", "2.00/9.00 ms (bare p50 0.50 ms)", "-", "-"},
		{"pod start, image present", notRun, "≤ 1.5 × bare runc run", "-"},
		{"node memory, 0 running pods", notRun, "(informative)", "-"},
		{"node memory, 10 running pods", notRun, "(informative)", "-"},
		{"node memory, 30 running pods", notRun, "(informative)", "-"},
		{"stream tunnel connected and idle (ping every 5 s)", "not run (see stderr)", "-", "-"},
		{"one scrape of /metrics/resource through the tunnel, 10 running pods", notRun, "-", "-"},
		{"one scrape of /stats/summary through the tunnel, 10 running pods", notRun, "-", "-"},
	}
	if diff := cmp.Diff(want2, rows, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("benchRows mismatch (-want +got):\n%s", diff)
	}
}

func TestReadMemory(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	if m.rss == 0 || m.anon == 0 || m.anon > m.rss {
		t.Errorf("readMemory(self) = %+v, want 0 < RssAnon <= VmRSS", m)
	}
}

func TestPodRows(t *testing.T) {
	out := `BenchmarkPodStart-2   	      20	 120000000 ns/op	   10 B/op	       1 allocs/op
BenchmarkRuncRun-2    	      20	 100000000 ns/op	   10 B/op	       1 allocs/op
BenchmarkNodeRSSWithPods/pods=0-2   3   100 ns/op   0 container_procs   0 containers   0 other_procs   15.50 RssAnon-MiB   19.00 VmRSS-MiB
BenchmarkNodeRSSWithPods/pods=10-2  3   100 ns/op   10 container_procs   10 containers   1 other_procs   16.00 RssAnon-MiB   20.25 VmRSS-MiB
`
	bs := append(parseBench("./pod", []byte(out), 2)[:2], parseBench(".", []byte(out), 2)[2:]...)
	got := podRows(bs)
	want := []row{
		{"pod start, image present", "120 ms (ratio 1.20)", "≤ 150 ms (1.5 × 100 ms bare runc run)", "yes"},
		{"node memory, 0 running pods: VmRSS / RssAnon", "19.00 / 15.50 MiB", "(informative)", "-"},
		{"resident processes besides the containers, 0 pods", "0 (0 containers, 0 processes in them)", "0", "yes"},
		{"node memory, 10 running pods: VmRSS / RssAnon", "20.25 / 16.00 MiB", "(informative)", "-"},
		{"resident processes besides the containers, 10 pods", "1 (10 containers, 10 processes in them)", "0", "NO"},
		{"node memory, 30 running pods", notRun, "(informative)", "-"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("podRows mismatch (-want +got):\n%s", diff)
	}
}

func TestStreamRows(t *testing.T) {
	idle := `BenchmarkIdleTunnel-2   	       1	32074368461 ns/op	      5760 B/min	        95.99 allocs/min	        95.93 base_B/min	         5.995 base_allocs/min	         0.7458 base_ticks/min	         1.725 ticks/min	  147928 B/op	    1084 allocs/op
`
	scrape := `BenchmarkScrape/resource/tunnel-2         	     495	   2302500 ns/op	      4238 body-B	  795896 B/op	    1812 allocs/op
BenchmarkScrape/resource/handler-2        	     675	   1730763 ns/op	      4238 body-B	  728863 B/op	    1723 allocs/op
BenchmarkScrape/summary/tunnel-2          	     778	   2269756 ns/op	      8279 body-B	  202814 B/op	    1061 allocs/op
`
	bs := append(parseBench("./stream", []byte(idle), 2), parseBench("./pod", []byte(scrape), 2)...)
	want := []row{
		{"stream tunnel connected and idle (ping every 5 s): CPU", "1.73 ticks/min (0.75 without the tunnel: +0.98)", "-", "-"},
		{"stream tunnel connected and idle (ping every 5 s): heap allocations", "96 /min, 5.6 KiB/min (6 /min without the tunnel: +90)", "-", "-"},
		{"one scrape of /metrics/resource through the tunnel, 10 running pods",
			"2.30 ms, 1812 allocs, 777 KiB, 4.1 KiB answer (handler alone 1.73 ms, 1723 allocs, 712 KiB)", "-", "-"},
		{"one scrape of /stats/summary through the tunnel, 10 running pods", "2.27 ms, 1061 allocs, 198 KiB, 8.1 KiB answer", "-", "-"},
	}
	if diff := cmp.Diff(want, streamRows(bs), cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("streamRows mismatch (-want +got):\n%s", diff)
	}
	// Runs: the idle window follows -cpu-window; 0 leaves only the scrape.
	runs := streamRuns(time.Minute, "1s")
	if len(runs) != 2 || runs[0].pkg != "./stream" || runs[0].benchtime != "1x" ||
		!cmp.Equal(runs[0].args, []string{"-idlewindow", "1m0s"}) || runs[1].pkg != "./pod" || !runs[1].root {
		t.Errorf("streamRuns(1m) = %+v", runs)
	}
	if runs := streamRuns(0, "1s"); len(runs) != 1 || runs[0].bench != "^BenchmarkScrape$" {
		t.Errorf("streamRuns(0) = %+v, want the scrape only", runs)
	}
}

func TestBoardRows(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // values of the rows
		oks        []string
	}{
		{"missing", "", []string{"no numbers: run make test-board"}, []string{"-"}},
		{"no line", "garbage\n", nil, []string{"-"}},
		{"two boots", "BENCH board_boot_ready_ms=61000 board_start_ms=9500 board_rss_kb=14336 board_rss_anon_kb=5120 board_pod_start_ms=4200 board_idle_ticks_per_min=42\n" +
			"BENCH board_boot_ready_ms=58000 board_start_ms=9000 board_rss_kb=22528 board_rss_anon_kb=7168 board_pod_start_ms=0\n",
			[]string{"61.0 s / 9.5 s", "14.000 MiB", "5.000 MiB", "4.2 s", "42 ticks/min", "58.0 s / 9.0 s", "22.000 MiB", "7.000 MiB", "0.0 s"},
			[]string{"-", "yes", "yes", "-", "-", "-", "NO", "NO", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "bench.txt")
			if tt.file != "" {
				if err := os.WriteFile(file, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var vals, oks []string
			for _, r := range boardRows(file) {
				vals = append(vals, r.value)
				oks = append(oks, r.ok)
			}
			if tt.want == nil {
				vals = nil
			}
			if diff := cmp.Diff(tt.want, vals); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.oks, oks); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseGuestSmaps(t *testing.T) {
	// Shortened smaps of qemu-arm-static running /b/node: the guest's
	// mappings lie below 4 GiB (guest base 0), the emulator's above.
	const smaps = `00011000-0015a000 r-xp 00000000 fd:01 42  /b/node
Rss:                1316 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00167000-00189000 rw-p 00000000 00:00 0
Rss:                  56 kB
Anonymous:            56 kB
3ffbd000-40000000 rw-p 00000000 00:00 0
Rss:                  36 kB
Anonymous:            36 kB
555573a66000-555573f1b000 rw-p 00000000 00:00 0   [heap]
Rss:                4772 kB
Anonymous:          4772 kB
7f9133400000-7f9133607000 r--p 00000000 fd:01 7  /usr/bin/qemu-arm-static
Rss:                2076 kB
Anonymous:             0 kB
`
	got, err := parseGuestSmaps([]byte(smaps), "/b/node")
	if err != nil {
		t.Fatal(err)
	}
	if want := (memory{rss: (1316 + 56 + 36) << 10, anon: (56 + 36) << 10}); got != want {
		t.Errorf("parseGuestSmaps = %+v, want %+v", got, want)
	}
	// A guest base above the emulator's low mappings moves the region.
	shifted := strings.NewReplacer("00011000-", "7f0000011000-", "00167000-", "7f0000167000-", "3ffbd000-", "7f003ffbd000-").Replace(smaps)
	got, err = parseGuestSmaps([]byte(shifted), "/b/node")
	if err != nil {
		t.Fatal(err)
	}
	if want := (memory{rss: (1316 + 56 + 36) << 10, anon: (56 + 36) << 10}); got != want {
		t.Errorf("parseGuestSmaps(shifted) = %+v, want %+v", got, want)
	}
	if _, err := parseGuestSmaps([]byte(smaps), "/other"); err == nil {
		t.Error("parseGuestSmaps without the binary's mapping: no error")
	}
}

func TestParseStatTicks(t *testing.T) {
	// /proc/PID/stat with a command name holding spaces and a parenthesis;
	// utime 1234 and stime 56 are fields 14 and 15.
	stat := "4242 (edge node) x) S 1 4242 4242 0 -1 4194560 1077 0 0 0 1234 56 0 0 20 0 10 0 123 1276368 5480 18446744073709551615\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil || got != 1290 {
		t.Errorf("parseStatTicks = %d, %v; want 1290, nil", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("parseStatTicks(short) = nil error, want one")
	}
}

func TestParseSchedstat(t *testing.T) {
	got, err := parseSchedstat([]byte("15236870 2211431 97\n"))
	if err != nil || got != 15236870*time.Nanosecond {
		t.Errorf("parseSchedstat = %v, %v; want 15.23687ms, nil", got, err)
	}
	for _, bad := range []string{"", "12 34", "x 1 2", "-5 1 2"} {
		if _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("parseSchedstat(%q) = nil error, want one", bad)
		}
	}
	// The bench's own threads, read as the node's are.
	if d, err := runTime(os.Getpid()); err != nil || d <= 0 {
		t.Errorf("runTime(self) = %v, %v; want > 0", d, err)
	}
}
