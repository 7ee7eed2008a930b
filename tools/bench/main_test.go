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
PASS
`
	got := parseBench("./bus", []byte(out))
	want := []bench{
		{"./bus", "BenchmarkSendReceive", map[string]float64{"ns/op": 124.6, "B/op": 0, "allocs/op": 0}},
		{"./bus", "BenchmarkTwinUpdateBus", map[string]float64{"ns/op": 512345, "updates/s": 1950, "p50-µs": 480, "p99-µs": 2100}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(bench{})); diff != "" {
		t.Errorf("parseBench mismatch (-want +got):\n%s", diff)
	}
	got[1].pkg = "./twin"
	rows := benchRows(got)
	want2 := []row{
		{"bus Send+Receive", "8025682 msgs/s", "-", "-"},
		{"bus Send+Receive allocations", "0 allocs/msg", "0", "yes"},
		{"twin updates (./twin BenchmarkTwinUpdateBus)", "1950 /s", "≥ ½ bare MQTT round trip", "-"},
		{"twin update p99", "2100 µs", "-", "-"},
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
