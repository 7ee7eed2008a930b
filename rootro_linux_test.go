package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgenode/db"
	"edgenode/internal/testenv"
	"edgenode/pod/podtest"
)

// roScript runs in a private mount namespace (the Go runtime makes / rprivate
// after unshare(CLONE_NEWNS), so nothing here reaches the host). It bind-
// mounts the data dir onto itself so it stays writable, remounts every other
// mount read-only (remount,bind changes only this namespace's mount flags,
// never the file system), puts a fresh tmpfs on /run, proves / refuses a
// write, and execs the command.
const roScript = `set -e
data="$1"; shift
mount --bind "$data" "$data"
awk '{print $2}' /proc/self/mounts | sort -u | while read -r mp; do
  case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$data") continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
mount -t tmpfs -o mode=0755 tmpfs /run
if touch /.edgenode-rw-probe 2>/dev/null; then rm -f /.edgenode-rw-probe; echo "root is still writable" >&2; exit 97; fi
exec "$@"
`

// roCmd returns a command running argv in a private mount namespace with a
// read-only root and data writable.
func roCmd(ctx context.Context, data string, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", roScript, "sh", data}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// buildEdgenode builds this package's binary for the host.
func buildEdgenode(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH (needed to build the edgenode binary)")
	}
	testenv.Native(t)
	bin := filepath.Join(t.TempDir(), "edgenode")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// needMountNS skips when mount namespaces are not available, saying why.
func needMountNS(t *testing.T) {
	t.Helper()
	testenv.Root(t, "mount in a private mount namespace")
	for _, tool := range []string{"mount", "awk", "touch"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux / coreutils)", tool)
		}
	}
	probe := exec.Command("/bin/sh", "-c", "mount -t tmpfs tmpfs /mnt")
	probe.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("the kernel forbids a private mount namespace here: %v %s", err, out)
	}
}

// logBuffer collects a child process's log; the test may read it while
// the child still writes (exec copies into it from its own goroutine).
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// healthAddr returns the address the health server logged it serves on,
// or "" if the log does not say yet. Tests configure "127.0.0.1:0" and
// read the port from the log: a port picked free beforehand may be taken
// by another process before edgenode binds it.
func healthAddr(log string) string {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `msg="serving /healthz and /metrics"`) {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if addr, ok := strings.CutPrefix(f, "addr="); ok {
				return addr
			}
		}
	}
	return ""
}

// waitHealthAddr polls log until it names the health server's address,
// the process exits (exited is closed), or 2 minutes pass (a guard).
func waitHealthAddr(ctx context.Context, log func() string, exited <-chan struct{}) (string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if addr := healthAddr(log()); addr != "" {
			return addr, nil
		}
		select {
		case <-exited:
			return "", errors.New("edgenode exited before serving /healthz")
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", errors.New("edgenode logged no health address within 2 minutes")
}

// TestReadOnlyRoot runs the built edgenode with / read-only: it must refuse
// a data dir on the read-only root with a clear message, run with a
// writable data dir, stop cleanly and start again from what it wrote.
func TestReadOnlyRoot(t *testing.T) {
	needMountNS(t)
	bin := buildEdgenode(t)
	base := t.TempDir()
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(base, "config.yaml")
	cfg := "version: 1\nnodeName: ro-node\nwatchdog:\n  device: off\nhealth:\n  listen: 127.0.0.1:0\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\n"
	// /etc cannot hold the DMI socket on a read-only root; the README
	// says to give both sides a writable path (here the one writable
	// folder of the namespace).
	cfg += "dmi:\n  socket: " + filepath.Join(data, "dmi.sock") + "\n"
	withPods := roPods(t, base, data)
	if withPods != "" {
		cfg += withPods
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// A device file: twin applies it at start and keeps it in the
	// database, which must survive the restart with the file gone.
	if err := os.MkdirAll(filepath.Join(data, "devices"), 0o700); err != nil {
		t.Fatal(err)
	}
	device := `{"added_devices":[{"id":"default/lamp","name":"lamp","state":"unknown",
  "twin":{"power":{"expected":{"value":"off"},"metadata":{"type":"string"}}}}]}`
	if err := os.WriteFile(filepath.Join(data, "devices", "lamp.json"), []byte(device), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	t.Run("data dir on the read-only root", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := roCmd(ctx, data, bin, "run", "--config", cfgPath, "--data-dir", filepath.Join(base, "elsewhere"))
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("edgenode with a read-only data dir: %v, want exit 1\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "read-only") || !strings.Contains(stderr.String(), "mount a writable partition") {
			t.Errorf("stderr does not say what is wrong and what to do:\n%s", stderr.String())
		}
	})

	t.Run("check", func(t *testing.T) {
		out, err := roCmd(ctx, data, bin, "check", "--config", cfgPath, "--data-dir", data, "--broker", "off").CombinedOutput()
		if !strings.Contains(string(out), "PASS data dir: "+data+" is writable") {
			t.Errorf("check in the read-only namespace (%v):\n%s", err, out)
		}
	})

	for round := 1; round <= 2; round++ {
		t.Run(fmt.Sprintf("run %d", round), func(t *testing.T) {
			var stderr logBuffer
			cmd := roCmd(ctx, data, bin, "run", "--config", cfgPath, "--data-dir", data)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			var waitErr error
			go func() { waitErr = cmd.Wait(); close(exited) }()
			health, err := waitHealthAddr(ctx, stderr.String, exited)
			if err == nil {
				var doc healthz
				doc, err = waitHealthy(ctx, "http://"+health+"/healthz", exited)
				if err == nil && (doc.Node != "ro-node" || doc.Status != "ok") {
					t.Errorf("healthz = %+v, want ro-node ok", doc)
				}
			}
			if err != nil {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				<-exited
				t.Fatalf("healthz: %v (exit %v)\nstderr:\n%s", err, waitErr, stderr.String())
			}
			if withPods != "" {
				// The static pod runs from the read-only image store,
				// with its bundle and runc state under the data dir;
				// after the restart it runs again.
				if err := waitMetric(ctx, "http://"+health+"/metrics", "edgenode_pod_running ", exited); err != nil {
					t.Errorf("the static pod never ran: %v\n%s", err, stderr.String())
				} else {
					t.Log("static pod ro-web running")
				}
			}
			if round == 1 {
				// twin applies the device file as it starts and then
				// publishes membership/updated: wait for that before
				// stopping the node.
				if err := waitMetric(ctx, "http://"+health+"/metrics", "edgenode_twin_published_total ", exited); err != nil {
					t.Errorf("twin never published the device file's membership: %v", err)
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			<-exited
			if waitErr != nil {
				t.Errorf("edgenode exit after SIGTERM: %v\n%s", waitErr, stderr.String())
			}
			for _, bad := range []string{"read-only file system", "level=ERROR"} {
				if strings.Contains(stderr.String(), bad) {
					t.Errorf("stderr has %q:\n%s", bad, stderr.String())
				}
			}
			if names := deviceNames(t, data); !slices.Contains(names, "lamp") {
				t.Errorf("devices in the database after run %d = %v, want lamp", round, names)
			}
			// The second run has no device file: the twin comes from the
			// database written in the read-only namespace.
			os.Remove(filepath.Join(data, "devices", "lamp.json"))
		})
	}
	ents, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), "edgenode.db") {
		t.Errorf("data dir holds %v, want the database", names)
	}
}

// roPods prepares a static pod for the read-only test: a busybox image
// archive in a read-only images dir and a manifest, both outside the data
// dir as in a baked image. It returns the pod section of the config, or ""
// (with the reason logged) when containers cannot run here.
func roPods(t *testing.T, base, data string) string {
	t.Helper()
	if why := testenv.NoContainers(); why != "" {
		t.Logf("no pods in this run: %s", why)
		return ""
	}
	img, err := podtest.Image([]string{"sleep", "1000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	images, manifests := filepath.Join(base, "images"), filepath.Join(base, "manifests")
	for _, d := range []string{images, manifests} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := podtest.WriteOCIArchive(filepath.Join(images, "busybox.tar"), "busybox:ro", img); err != nil {
		t.Fatal(err)
	}
	manifest := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ro-web","namespace":"default"},
  "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":"busybox:ro","imagePullPolicy":"Never"}]}}`
	if err := os.WriteFile(filepath.Join(manifests, "ro-web.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupPods(data) })
	return fmt.Sprintf("pod:\n  imagesDir: %s\n  manifestsDir: %s\n  runtimeRoot: %s\n  platform: linux/%s\n",
		images, manifests, filepath.Join(data, "runc"), podtest.BusyboxArch())
}

// deviceNames reads the device table the node left in data.
func deviceNames(t *testing.T, data string) []string {
	t.Helper()
	store, err := db.Open(t.Context(), filepath.Join(data, db.FileName), db.Config{})
	if err != nil {
		t.Fatalf("open the node's database: %v", err)
	}
	defer store.Close()
	devs, err := store.Devices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	return names
}

// waitMetric polls a /metrics page until the sample starting with prefix
// has a value other than 0.
func waitMetric(ctx context.Context, url, prefix string, exited <-chan struct{}) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("edgenode exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, prefix); ok && v != "0" {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no %s> 0 after 2 minutes", prefix)
}

// waitHealthy polls url until it answers 200, the process exits (exited
// is closed), or 2 minutes pass (a guard). Polling is the only way to learn that another
// process is ready.
func waitHealthy(ctx context.Context, url string, exited <-chan struct{}) (healthz, error) {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return healthz{}, errors.New("edgenode exited")
		case <-ctx.Done():
			return healthz{}, ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var doc healthz
			if resp.StatusCode == 200 && json.Unmarshal(b, &doc) == nil {
				return doc, nil
			}
			last = fmt.Errorf("status %d: %s", resp.StatusCode, b)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return healthz{}, fmt.Errorf("not healthy after 2 minutes: %v", last)
}
