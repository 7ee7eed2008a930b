package twin

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// oneCPU runs the rest of the benchmark's process on one CPU, the first
// it may use, as the node runs on its one-core target. On the two-core
// host of README "Bench" the bare round trip of BenchmarkEndToEnd came out
// at one of two rates by the run, about 35,000 or 50,000 a second, each in
// about half the runs; with the process on one CPU, 26 of 30 runs gave
// the higher. The rest of the spread comes from the host, not the kernel's
// placement of threads.
func oneCPU(b *testing.B) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		return
	}
	var one unix.CPUSet
	for i := 0; ; i++ {
		if all.IsSet(i) {
			one.Set(i)
			break
		}
	}
	setAffinity(b, &one)
	b.Cleanup(func() { setAffinity(b, &all) })
}

// setAffinity sets the CPUs of every thread of the process. A thread made
// later inherits the set of the thread that makes it; the second pass
// catches one made during the first.
func setAffinity(b *testing.B, set *unix.CPUSet) {
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			b.Logf("threads not moved to one CPU: %v", err)
			return
		}
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				_ = unix.SchedSetaffinity(tid, set) // the thread may have ended
			}
		}
	}
}
