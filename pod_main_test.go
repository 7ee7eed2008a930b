package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/internal/testenv"
	"edgenode/meta"
	"edgenode/pod"
	"edgenode/pod/podtest"
)

// containerDir skips the test where containers cannot run (not root, no
// runc, no busybox of this architecture) and returns a data dir whose
// ro/bb.tar is a busybox image tagged ref that runs sleep.
func containerDir(t *testing.T, ref string) string {
	t.Helper()
	testenv.Containers(t)
	dir := t.TempDir()
	img, err := podtest.Image([]string{"sleep", "1000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "ro"), 0o755)
	if err := podtest.WriteOCIArchive(filepath.Join(dir, "ro", "bb.tar"), ref, img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMetaPodFlow runs a pod the way the cloud delivers it: a pod insert
// reaches meta, meta stores it and hands it to edged, edged runs it and
// its podpatch goes back through meta to the hub. Then the node loses its
// pods (reboot with a wiped pods dir) and edged gets the pod back from
// meta's local pod list (docs/protocol.md 6 start-up), with no cloud.
func TestMetaPodFlow(t *testing.T) {
	dir := containerDir(t, "busybox:flow")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := db.Open(ctx, filepath.Join(dir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pcfg := pod.Config{DataDir: dir, NodeName: "n1", Era: bus.EraV123,
		RuntimeRoot: filepath.Join(dir, "runc"), ImagesDir: filepath.Join(dir, "ro"), ManifestsDir: filepath.Join(dir, "manifests"),
		Platform: "linux/" + podtest.BusyboxArch(), StatusInterval: time.Millisecond, SyncInterval: 50 * time.Millisecond}
	// start starts one life of the node on the same store: a bus with a
	// stand-in for the cloud side (observed), meta and, with withPod,
	// edged. stop ends it.
	start := func(withPod bool) (b *bus.Bus, pr *pod.Runner, stop func()) {
		b = bus.New(bus.Config{QueueLen: 1024}, log)
		if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
			t.Fatal(err)
		}
		mm, err := meta.New(meta.Config{Era: bus.EraV123, NodeName: "n1"}.Defaults(), b, store, log)
		if err != nil {
			t.Fatal(err)
		}
		if withPod {
			if pr, err = pod.New(pcfg, b, log); err != nil {
				t.Fatal(err)
			}
		}
		lctx, lcancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { mm.Run(lctx) })
		if pr != nil {
			wg.Go(func() { pr.Run(lctx) })
		}
		return b, pr, func() { lcancel(); wg.Wait() }
	}
	b, pr, stop := start(true)
	defer func() { stop(); cleanupPods(dir) }()

	podJSON := `{"metadata":{"name":"web","namespace":"default","uid":"uid-web","resourceVersion":"7"},
	  "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":"busybox:flow","imagePullPolicy":"Never"}]}}`
	in := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/web", []byte(podJSON))
	if err := b.Send(bus.ModuleMeta, in); err != nil {
		t.Fatal(err)
	}
	waitPatch(t, b, "web", "Running")
	if ps := pr.Pods(); len(ps) != 1 || ps[0].Status.Phase != "Running" {
		t.Fatalf("Pods() = %+v, want web Running", ps)
	}
	stop()

	// Reboot that lost the pods dir: only meta's store knows the pod.
	cleanupPods(dir)
	os.RemoveAll(pod.PodsDir(dir))
	_, pr, stop = start(true)
	// meta may drop a podpatch equal to the stored one, so read the state
	// from edged itself.
	waitRunning(t, pr, "web")

	// The cloud deletes it while edged is down: at its next start edged
	// finds the pod gone from meta's list and removes it.
	stop()
	b, _, stop = start(false)
	del := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpDelete, "default/pod/web", []byte(podJSON))
	if err := b.Send(bus.ModuleMeta, del); err != nil {
		t.Fatal(err)
	}
	waitPatchGone := time.Now().Add(2 * time.Minute)
	for {
		rows, _ := store.SQL().QueryContext(ctx, "SELECT key FROM meta WHERE key = 'default/pod/web'")
		gone := rows != nil && !rows.Next()
		if rows != nil {
			rows.Close()
		}
		if gone {
			break
		}
		if time.Now().After(waitPatchGone) {
			t.Fatal("meta did not delete the pod row")
		}
		time.Sleep(20 * time.Millisecond) // meta gives no event for a stored delete; poll
	}
	podDir := filepath.Join(pod.PodsDir(dir), "uid-web")
	if _, err := os.Stat(podDir); err != nil {
		t.Fatalf("pod dir before restart: %v", err)
	}
	stop()
	_, pr, stop = start(true)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(podDir); os.IsNotExist(err) && len(pr.Pods()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not deleted: %+v", pr.Pods())
		}
		time.Sleep(20 * time.Millisecond) // no event marks the end of a delete; poll
	}
	stop()
	out, _ := exec.Command("runc", "--root", filepath.Join(dir, "runc"), "list", "-q").Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("runc list after delete = %q, want empty", s)
	}
}

// waitRunning polls edged's pod list: nothing is sent when the status
// equals what meta already stored.
func waitRunning(t *testing.T, pr *pod.Runner, name string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ps := pr.Pods()
		if len(ps) == 1 && ps[0].Metadata.Name == name && ps[0].Status.Phase == "Running" &&
			len(ps[0].Status.ContainerStatuses) == 1 && ps[0].Status.ContainerStatuses[0].State.Running != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not running: %+v", name, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPatch reads hub-bound messages until a podpatch for name has phase.
func waitPatch(t *testing.T, b *bus.Bus, name, phase string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		m, err := b.Receive(ctx, bus.ModuleHub)
		if err != nil {
			t.Fatalf("no podpatch for %s with phase %s: %v", name, phase, err)
		}
		if m.Route.Resource != "default/podpatch/"+name {
			continue
		}
		s, _ := bus.ContentString(m.Content)
		var p struct {
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		}
		if json.Unmarshal([]byte(s), &p) == nil && p.Status.Phase == phase {
			return
		}
	}
}

// cleanupPods removes containers and mounts a test left under dir; the
// runc root is dir/runc unless given.
func cleanupPods(dir string, runcRoot ...string) {
	root := filepath.Join(dir, "runc")
	if len(runcRoot) > 0 {
		root = runcRoot[0]
	}
	out, _ := exec.Command("runc", "--root", root, "list", "-q").Output()
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", root, "delete", "-f", id).Run()
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var mps []string
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], pod.PodsDir(dir)) {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", mps[i]).Run()
	}
	// The pods' cgroup parents (runc removes only the containers' own).
	ents, _ := os.ReadDir(pod.PodsDir(dir))
	for _, e := range ents {
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*/edgenode/pod" + e.Name())
		cgs = append(cgs, "/sys/fs/cgroup/edgenode/pod"+e.Name())
		for _, cg := range cgs {
			subs, _ := filepath.Glob(cg + "/*/")
			for _, s := range subs {
				syscall.Rmdir(s)
			}
			syscall.Rmdir(cg)
		}
	}
}

func TestImageAndLogsCommands(t *testing.T) {
	img, err := podtest.Image([]string{"true"}, nil)
	if err != nil {
		t.Skip(err.Error())
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "app.tar")
	if err := podtest.WriteDockerSave(f, "example.org/app:1", img); err != nil {
		t.Fatal(err)
	}
	plat := "--config=" + filepath.Join(dir, "c.yaml")
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("pod:\n  platform: linux/"+podtest.BusyboxArch()+"\n"), 0o600)
	var out, errb strings.Builder
	if rc := realMain([]string{"image", "--data-dir", dir, plat, "import", f}, &out, &errb); rc != 0 {
		t.Fatalf("image import = %d, stderr %q", rc, errb.String())
	}
	if !strings.Contains(out.String(), "imported index.docker.io/example.org/app:1") && !strings.Contains(out.String(), "example.org/app:1 sha256:") {
		t.Errorf("image import output = %q", out.String())
	}
	out.Reset()
	if rc := realMain([]string{"image", "--data-dir", dir, plat, "list"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "example.org/app:1") {
		t.Errorf("image list = %d %q", rc, out.String())
	}
	errb.Reset()
	if rc := realMain([]string{"image", "--data-dir", dir, plat, "import", filepath.Join(dir, "c.yaml")}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "bad image") {
		t.Errorf("image import of a non-archive = %d %q, want 1 and bad image", rc, errb.String())
	}
	// logs reads the files of a stored pod: a plain file from before the
	// CRI log format, then CRI records, printed as text.
	pd := filepath.Join(pod.PodsDir(dir), "uid-1")
	os.MkdirAll(filepath.Join(pd, "logs"), 0o700)
	os.WriteFile(filepath.Join(pd, "pod.json"), []byte(`{"metadata":{"name":"web","namespace":"default","uid":"uid-1"},"spec":{"containers":[{"name":"main","image":"x"}]}}`), 0o600)
	os.WriteFile(filepath.Join(pd, "logs", "main.log.1"), []byte("old\n"), 0o600)
	os.WriteFile(filepath.Join(pd, "logs", "main.log"), []byte("2026-01-02T03:04:05.5Z stdout P ne\n2026-01-02T03:04:05.6Z stdout F w\n"), 0o600)
	out.Reset()
	if rc := realMain([]string{"logs", "--data-dir", dir, "default/web"}, &out, &errb); rc != 0 || out.String() != "old\nnew\n" {
		t.Errorf("logs default/web = %d %q, want old then new", rc, out.String())
	}
	out.Reset()
	if rc := realMain([]string{"logs", "--data-dir", dir, "--timestamps", "default/web"}, &out, &errb); rc != 0 ||
		out.String() != "old\n2026-01-02T03:04:05.500000000Z new\n" {
		t.Errorf("logs --timestamps default/web = %d %q, want old, then new with its time", rc, out.String())
	}
	if rc := realMain([]string{"logs", "--data-dir", dir, "nope"}, &out, &errb); rc != 1 {
		t.Errorf("logs of a missing pod = %d, want 1", rc)
	}
}

// TestKill9KeepsContainers: kill -9 of a running edgenode leaves its
// containers running, and the next edgenode adopts them with no restart.
func TestKill9KeepsContainers(t *testing.T) {
	testenv.Containers(t)
	img, err := podtest.Image([]string{"sleep", "1000"}, nil)
	if err != nil {
		t.Skip(err.Error())
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	for _, d := range []string{"ro", "manifests", "cni"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	if err := podtest.WriteOCIArchive(filepath.Join(dir, "ro", "bb.tar"), "busybox:k9", img); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "manifests", "web.yaml"), []byte(
		"metadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: busybox:k9\n    imagePullPolicy: Never\n"), 0o644)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`health:
  listen: 127.0.0.1:0
watchdog:
  device: off
mqtt:
  internal:
    listen: 127.0.0.1:0
pod:
  runtimeRoot: %[1]s/runc
  imagesDir: %[1]s/ro
  manifestsDir: %[1]s/manifests
  cniConfDir: %[1]s/cni
  platform: linux/%[2]s
  syncInterval: 100ms
`, dir, podtest.BusyboxArch())), 0o600)
	data := filepath.Join(dir, "data")
	defer cleanupPods(data, filepath.Join(dir, "runc"))
	start := func(until string) (*exec.Cmd, string) {
		cmd := runBin(bin, "run", "--config", cfg, "--data-dir", data, "--node-name", "n1")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		guard := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		defer guard.Stop()
		var log strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), until) {
				go io.Copy(io.Discard, stderr)
				return cmd, log.String()
			}
		}
		cmd.Wait()
		skipIfPortBusy(t, log.String())
		t.Fatalf("edgenode ended before %q:\n%s", until, log.String())
		return nil, ""
	}
	runcRoot := filepath.Join(dir, "runc")
	state := func() (string, string) {
		out, _ := exec.Command("runc", "--root", runcRoot, "list", "--format", "json").Output()
		var l []struct {
			Pid    int    `json:"pid"`
			Status string `json:"status"`
		}
		json.Unmarshal(out, &l)
		if len(l) != 1 {
			return "", string(out)
		}
		return fmt.Sprint(l[0].Pid), l[0].Status
	}
	cmd, _ := start("phase=Running")
	pid, st := state()
	if st != "running" {
		t.Fatalf("runc list = %s %s, want one running container", pid, st)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if p2, st2 := state(); p2 != pid || st2 != "running" {
		t.Fatalf("after kill -9: runc list = %s %s, want %s running", p2, st2, pid)
	}
	cmd, log := start("phase=Running")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if strings.Contains(log, "container started") || !strings.Contains(log, "adopted=1") {
		t.Errorf("second edgenode restarted or did not adopt the container:\n%s", log)
	}
	if p3, st3 := state(); p3 != pid || st3 != "running" {
		t.Errorf("after adoption runc list = %s %s, want %s running", p3, st3, pid)
	}
}
