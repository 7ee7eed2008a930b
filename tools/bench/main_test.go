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
BenchmarkEndToEnd/raw-2         	   10000	    100000 ns/op	     10000 updates/s	        90.00 p50-µs	       200.0 p99-µs
BenchmarkEndToEnd/twin-2        	    3000	    400000 ns/op	      2500 updates/s	       380.0 p50-µs	      1500 p99-µs
BenchmarkEndToEnd/raw-32-2      	   50000	     20000 ns/op	     50000 updates/s
BenchmarkEndToEnd/twin-32-2     	   30000	     30000 ns/op	     30000 updates/s
PASS
`
	got := parseBench("./bus", []byte(out), 2)
	want := []bench{
		{"./bus", "BenchmarkSendReceive", map[string]float64{"ns/op": 124.6, "B/op": 0, "allocs/op": 0}},
		{"./bus", "BenchmarkTwinUpdateBus", map[string]float64{"ns/op": 512345, "updates/s": 1950, "p50-µs": 480, "p99-µs": 2100}},
		{"./bus", "BenchmarkEndToEnd/raw", map[string]float64{"ns/op": 100000, "updates/s": 10000, "p50-µs": 90, "p99-µs": 200}},
		{"./bus", "BenchmarkEndToEnd/twin", map[string]float64{"ns/op": 400000, "updates/s": 2500, "p50-µs": 380, "p99-µs": 1500}},
		{"./bus", "BenchmarkEndToEnd/raw-32", map[string]float64{"ns/op": 20000, "updates/s": 50000}},
		{"./bus", "BenchmarkEndToEnd/twin-32", map[string]float64{"ns/op": 30000, "updates/s": 30000}},
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
		{"twin update end to end", "2500 /s", "≥ 5000/s (½ of 10000/s bare)", "NO"},
		{"twin update end to end, p99", "1.50 ms", "-", "-"},
		{"twin update end to end, 32 in flight", "30000 /s", "≥ 25000/s (½ of 50000/s bare)", "yes"},
		{"pod start latency", "no benchmark yet", "≤ 1.5 × bare runc run", "-"},
	}
	if diff := cmp.Diff(want2, rows, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("benchRows mismatch (-want +got):\n%s", diff)
	}
}

func TestTwinRowsRatioFormat(t *testing.T) {
	out := `BenchmarkEndToEnd/1-2    	    1000	   1000000 ns/op	      1000 twin_updates/s	      4000 raw_msgs/s	         0.25 ratio	       900.0 p50-µs	      3000 p99-µs	       200.0 raw_p50-µs	       950.0 fsync_commits/s
BenchmarkEndToEnd/32-2   	    5000	    200000 ns/op	      5000 twin_updates/s	      8000 raw_msgs/s	         0.625 ratio
`
	got := twinRows(parseBench("./twin", []byte(out), 2))
	want := []row{
		{"twin update end to end, 1 in flight", "1000 /s", "≥ 2000/s (½ of 4000/s bare)", "NO"},
		{"twin update end to end, 1 in flight, p99", "3.00 ms", "-", "-"},
		{"durable one-row commits (fsync ceiling of 1 in flight)", "950 /s", "-", "-"},
		{"twin update end to end, 32 in flight", "5000 /s", "≥ 4000/s (½ of 8000/s bare)", "yes"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("twinRows mismatch (-want +got):\n%s", diff)
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
