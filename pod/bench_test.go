package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
)

// runSleepers starts n pods named prefix0, prefix1, ... whose container
// sleeps, all at once, and waits until each runs.
func (h *harness) runSleepers(prefix string, n int) {
	h.t.Helper()
	for i := range n {
		name := prefix + strconv.Itoa(i)
		h.send(bus.OpInsert, bus.KindPod, "default", name, testPod(name, sh("main", "exec sleep 1000")))
	}
	for i := range n {
		h.waitStatus(prefix+strconv.Itoa(i), 2*time.Minute, running("main"))
	}
}

// BenchmarkPodStart measures a pod message to its container running, with
// the image present: the design budget is 1.5x BenchmarkRuncRun.
func BenchmarkPodStart(b *testing.B) {
	h := newHarness(b, "", nil)
	for i := 0; b.Loop(); i++ {
		name := "bench" + strconv.Itoa(i)
		p := testPod(name, sh("main", "exec sleep 1000"))
		h.send(bus.OpInsert, bus.KindPod, "default", name, p)
		h.waitStatus(name, 2*time.Minute, running("main"))
		b.StopTimer()
		h.r.DeletePod("default", name)
		waitGone(b, h, "uid-"+name)
		b.StartTimer()
	}
}

// BenchmarkRuncRun is the limit: `runc run --detach` of a bundle like the
// one the runner writes (overlay root over the same image), timed alone.
func BenchmarkRuncRun(b *testing.B) {
	h := newHarness(b, "", nil)
	img, ok := h.r.images.Lookup(testImage)
	if !ok {
		b.Fatal("test image missing")
	}
	dir := b.TempDir()
	rootfs, err := mountRootfs(h.r.images.Rootfs(img.ID), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer unmountRootfs(dir)
	p := testPod("bare", sh("main", "exec sleep 1000"))
	spec, err := buildSpec(bundleInput{pod: p, c: &p.Spec.Containers[0], img: img, rootfs: rootfs, env: []string{"PATH=/bin"}})
	if err != nil {
		b.Fatal(err)
	}
	js, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), js, 0o600)
	logf, _ := os.Create(filepath.Join(dir, "log"))
	defer logf.Close()
	for i := 0; b.Loop(); i++ {
		id := "bare" + strconv.Itoa(i)
		pid, err := h.r.rt.run(context.Background(), id, dir, nil, logf, logf)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = h.r.rt.remove(context.Background(), id)
		reapPid(pid)
		b.StartTimer()
	}
}

// BenchmarkRSS reports the resident memory of the process running the pod
// module with 0, 10 and 30 running pods (containers are separate
// processes and not counted: nothing of ours runs per container).
func BenchmarkRSS(b *testing.B) {
	for _, n := range []int{0, 10, 30} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			h := newHarness(b, "", nil)
			h.runSleepers("rss", n)
			for b.Loop() {
				runtime.GC()
			}
			rss, anon := procMem()
			b.ReportMetric(float64(rss)/1024, "VmRSS-MiB")
			b.ReportMetric(float64(anon)/1024, "RssAnon-MiB")
			for i := range n {
				h.r.DeletePod("default", "rss"+strconv.Itoa(i))
			}
			for i := range n {
				waitGone(b, h, "uid-rss"+strconv.Itoa(i))
			}
		})
	}
}

// procMem returns VmRSS and RssAnon of this process in KiB.
func procMem() (rss, anon int) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "RssAnon:":
			anon, _ = strconv.Atoi(f[1])
		}
	}
	return rss, anon
}
