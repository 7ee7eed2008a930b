package board

import (
	"os"
	"testing"
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
