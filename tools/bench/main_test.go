package main

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkSendReceive-2   	 9615385	       124.6 ns/op	       0 B/op	       0 allocs/op
BenchmarkTwinUpdateBus-2 	    2000	    512345 ns/op	      1950 updates/s	       480.0 p50-µs	      2100 p99-µs
BenchmarkEndToEnd/1-2 	    3000	    400000 ns/op	      2000 fsync_commits/s	       380.0 p50-µs	      1500 p99-µs	         0.25 ratio	     10000 raw_msgs/s	        18.00 raw_p50-µs	      2500 twin_updates/s
BenchmarkEndToEnd/32-2         	   30000	     30000 ns/op	      2000 p50-µs	      9000 p99-µs	         0.6 ratio	     50000 raw_msgs/s	       500.0 raw_p50-µs	     30000 twin_updates/s
PASS
`
	got := parseBench("./bus", []byte(out), 2)
	want := []bench{
		{"./bus", "BenchmarkSendReceive", map[string]float64{"ns/op": 124.6, "B/op": 0, "allocs/op": 0}},
		{"./bus", "BenchmarkTwinUpdateBus", map[string]float64{"ns/op": 512345, "updates/s": 1950, "p50-µs": 480, "p99-µs": 2100}},
		{"./bus", "BenchmarkEndToEnd/1", map[string]float64{"ns/op": 400000, "fsync_commits/s": 2000, "p50-µs": 380, "p99-µs": 1500,
			"ratio": 0.25, "raw_msgs/s": 10000, "raw_p50-µs": 18, "twin_updates/s": 2500}},
		{"./bus", "BenchmarkEndToEnd/32", map[string]float64{"ns/op": 30000, "p50-µs": 2000, "p99-µs": 9000,
			"ratio": 0.6, "raw_msgs/s": 50000, "raw_p50-µs": 500, "twin_updates/s": 30000}},
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
		{"twin update end to end, 1 in flight", "2500 /s (ratio 0.25)", "≥ 5000/s (½ of 10000/s bare)", "NO"},
		{"twin update end to end, 1 in flight, p50/p99", "0.38/1.50 ms", "-", "-"},
		{"durable commits (synchronous=FULL, no MQTT)", "2000 /s", "-", "-"},
		{"twin update end to end, 32 in flight", "30000 /s (ratio 0.60)", "≥ 25000/s (½ of 50000/s bare)", "yes"},
		{"twin update end to end, 32 in flight, p50/p99", "2.00/9.00 ms", "-", "-"},
		{"pod start latency", "no benchmark yet", "≤ 1.5 × bare runc run", "-"},
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
