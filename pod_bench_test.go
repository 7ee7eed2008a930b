package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgenode/hub/hubtest"
	"edgenode/internal/testenv"
	"edgenode/pod/podtest"
)

// idleCPU, when set (go test ... -idlecpu 60s), makes
// BenchmarkNodeRSSWithPods also count the node's clock ticks over that
// long with 0 and 10 pods.
var idleCPU = flag.Duration("idlecpu", 0, "count the idle node's CPU ticks over this long in BenchmarkNodeRSSWithPods")

// statTicks returns utime+stime of pid in clock ticks (/proc/PID/stat
// fields 14 and 15, counted after the command name), or 0.
func statTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// BenchmarkNodeRSSWithPods runs the real edgenode binary, joined to an
// in-process test cloud, with 0, 10 and 30 static pods and reports its
// VmRSS and RssAnon once every pod runs. The containers are separate
// processes: nothing of edgenode's runs per container, so its memory is
// the whole cost besides them.
func BenchmarkNodeRSSWithPods(b *testing.B) {
	testenv.Containers(b)
	img, err := podtest.Image([]string{"sleep", "100000"}, nil)
	if err != nil {
		b.Skip(err.Error())
	}
	built.once.Do(build)
	if built.skip != "" || built.err != nil {
		b.Skip(built.skip, built.err)
	}
	for _, n := range []int{0, 10, 30} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			for _, d := range []string{"ro", "manifests", "cni"} {
				os.MkdirAll(filepath.Join(dir, d), 0o755)
			}
			if err := podtest.WriteOCIArchive(filepath.Join(dir, "ro", "bb.tar"), "busybox:rss", img); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				os.WriteFile(filepath.Join(dir, "manifests", fmt.Sprintf("p%d.yaml", i)), []byte(fmt.Sprintf(
					"metadata:\n  name: p%d\nspec:\n  containers:\n  - name: main\n    image: busybox:rss\n    imagePullPolicy: Never\n", i)), 0o644)
			}
			cfg := filepath.Join(dir, "config.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("health:\n  listen: 127.0.0.1:0\nwatchdog:\n  device: off\ndmi:\n  socket: none\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\n"+
				"pod:\n  runtimeRoot: %[1]s/runc\n  imagesDir: %[1]s/ro\n  manifestsDir: %[1]s/manifests\n  cniConfDir: %[1]s/cni\n  platform: linux/%[2]s\n",
				dir, podtest.BusyboxArch())), 0o600)
			data := filepath.Join(dir, "data")
			defer cleanupPods(data, filepath.Join(dir, "runc"))
			// Connected to a cloud, as a deployed node is (and as the
			// idle budget is measured).
			srv := hubtest.NewServer(hubtest.Config{})
			defer srv.Close()
			cmd := runBin(built.prefix, "run", "--config", cfg, "--data-dir", data, "--node-name", "n1",
				"--cloud", srv.Addr, "--cert-server", srv.CertURL, "--token", srv.Token("n1"))
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
			guard := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
			defer guard.Stop()
			sc := bufio.NewScanner(stderr)
			running, ready := 0, false
			for (running < n || !ready) && sc.Scan() {
				if strings.Contains(sc.Text(), "phase=Running") {
					running++
				}
				ready = ready || strings.Contains(sc.Text(), "edgenode ready")
			}
			go io.Copy(io.Discard, stderr)
			if running < n {
				b.Fatalf("%d of %d pods running", running, n)
			}
			var rss, anon uint64
			procs := procCount{other: -1}
			for b.Loop() {
				rss, anon, _ = testenv.Memory(cmd.Process.Pid)
				// Keep the sample with the fewest other processes.
				if c := countDescendants(cmd.Process.Pid); procs.other < 0 || c.other < procs.other {
					procs = c
				}
			}
			// A runc call the node makes now and then (state, list) ends
			// within moments; a resident helper stays. Samples over up
			// to 2 s tell them apart.
			for end := time.Now().Add(2 * time.Second); procs.other > 0 && time.Now().Before(end); {
				time.Sleep(50 * time.Millisecond)
				if c := countDescendants(cmd.Process.Pid); c.other < procs.other {
					procs = c
				}
			}
			if *idleCPU > 0 && n <= 10 {
				// The idle CPU budget (design): ticks per minute after a
				// 10 s settle, with 0 and 10 pods.
				time.Sleep(10 * time.Second)
				t0, start := statTicks(cmd.Process.Pid), time.Now()
				time.Sleep(*idleCPU)
				ticks := float64(statTicks(cmd.Process.Pid) - t0)
				b.ReportMetric(ticks*float64(time.Minute)/float64(time.Since(start)), "idle_ticks/min")
				rss, anon, _ = testenv.Memory(cmd.Process.Pid)
				b.ReportMetric(float64(anon)/(1<<20), "idle_RssAnon-MiB")
			}
			b.ReportMetric(float64(rss)/(1<<20), "VmRSS-MiB")
			b.ReportMetric(float64(anon)/(1<<20), "RssAnon-MiB")
			b.ReportMetric(float64(n), "containers")
			b.ReportMetric(float64(procs.container), "container_procs")
			b.ReportMetric(float64(procs.other), "other_procs")
			if procs.other > 0 {
				b.Logf("processes besides edgenode and its containers: %v", procs.names)
			}
		})
	}
}

// procCount counts the descendants of a node: the processes inside
// containers (another pid namespace than the node's) and every other one
// (a helper resident per container would show here).
type procCount struct {
	container, other int
	names            []string
}

// countDescendants walks /proc for the descendants of pid. The node is the
// child subreaper of its containers, so every process a container or a
// helper of it leaves behind is a descendant.
func countDescendants(pid int) procCount {
	own, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(s), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(s[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var c procCount
	for p := range parent {
		if p == pid {
			continue
		}
		q := parent[p]
		for q > 1 && q != pid {
			q = parent[q]
		}
		if q != pid {
			continue
		}
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p))
		if ns != "" && ns != own {
			c.container++
			continue
		}
		c.other++
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		c.names = append(c.names, strings.TrimSpace(string(comm)))
	}
	return c
}

func TestCountDescendants(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("sleep missing: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c := countDescendants(os.Getpid())
	found := false
	for _, n := range c.names {
		found = found || n == "sleep"
	}
	if !found || c.other < 1 {
		t.Errorf("countDescendants(self) = %+v, want the sleep child among the other processes", c)
	}
	if c := countDescendants(cmd.Process.Pid); c.other != 0 || c.container != 0 {
		t.Errorf("countDescendants(sleep) = %+v, want none", c)
	}
}
