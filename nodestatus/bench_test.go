package nodestatus

import (
	"net"
	"os"
	"testing"
	"time"

	"edgenode/board"
)

// BenchmarkBuildStatus is the cost of building the status from the facts.
func BenchmarkBuildStatus(b *testing.B) {
	f, err := board.Collect(os.DirFS("../board/testdata/pizero"), board.Uname{Machine: "armv6l"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{NodeName: "n"}.Defaults()
	in := Inputs{Facts: f, IP: net.ParseIP("10.0.0.2"), Runtime: "1.1.5"}
	prev := BuildStatus(cfg, in, nil, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		st := BuildStatus(cfg, in, &prev, time.Now())
		if !sameStatus(&prev, &st) {
			b.Fatal("status changed")
		}
	}
}
