package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgenode/pod/podtest"
)

// BenchmarkNodeRSSWithPods runs the real edgenode binary with 0, 10 and 30
// static pods and reports its VmRSS and RssAnon once every pod runs. The
// containers are separate processes: nothing of edgenode's runs per
// container, so its memory is the whole cost besides them.
func BenchmarkNodeRSSWithPods(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to run containers")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		b.Skip("runc missing: apt-get install runc")
	}
	if a := podtest.BusyboxArch(); a != runtime.GOARCH {
		b.Skipf("host busybox is %s, this binary is %s", a, runtime.GOARCH)
	}
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
			os.WriteFile(cfg, []byte(fmt.Sprintf("health:\n  listen: 127.0.0.1:0\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\n"+
				"pod:\n  runtimeRoot: %[1]s/runc\n  imagesDir: %[1]s/ro\n  manifestsDir: %[1]s/manifests\n  cniConfDir: %[1]s/cni\n  platform: linux/%[2]s\n",
				dir, podtest.BusyboxArch())), 0o600)
			data := filepath.Join(dir, "data")
			defer cleanupPods(data, filepath.Join(dir, "runc"))
			cmd := runBin(built.prefix, "run", "--config", cfg, "--data-dir", data, "--node-name", "n1")
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
			var rss, anon int
			for b.Loop() {
				rss, anon = statusKiB(cmd.Process.Pid)
			}
			b.ReportMetric(float64(rss)/1024, "VmRSS-MiB")
			b.ReportMetric(float64(anon)/1024, "RssAnon-MiB")
		})
	}
}

func statusKiB(pid int) (rss, anon int) {
	s, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(s), "\n") {
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
