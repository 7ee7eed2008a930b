package board

import (
	"net"
	"os"
	"testing"
	"time"
)

// BenchmarkCollect is the cost of reading the facts once per status round
// (every 10 s) from a Pi Zero's files.
func BenchmarkCollect(b *testing.B) {
	fsys := os.DirFS("testdata/pizero")
	u := Uname{Machine: "armv6l"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Collect(fsys, u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildStatus is the cost of building the status from the facts.
func BenchmarkBuildStatus(b *testing.B) {
	f, err := Collect(os.DirFS("testdata/pizero"), Uname{Machine: "armv6l"})
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
