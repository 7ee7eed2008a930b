package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"edgenode/board"
	"edgenode/bus"
	"edgenode/db"
	"edgenode/hub/hubtest"
	"edgenode/meta"
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the edgenode binary, built once for all tests of the process.
var built struct {
	once   sync.Once
	dir    string
	prefix []string
	skip   string
	err    error
}

// buildBinary builds edgenode with go build for the architecture the test
// runs on (once per test process) and returns the command prefix that runs
// it: the binary itself, or qemu-arm-static and the binary when the test
// runs under qemu-arm-static without binfmt_misc.
func buildBinary(t *testing.T) []string {
	t.Helper()
	built.once.Do(build)
	if built.skip != "" {
		t.Skip(built.skip)
	}
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.prefix
}

func build() {
	goBin, err := exec.LookPath("go")
	if err != nil {
		built.skip = "skipped: the go command is not on PATH (needed to build the edgenode binary)"
		return
	}
	built.dir, built.err = os.MkdirTemp("", "edgenode-test-")
	if built.err != nil {
		return
	}
	bin := filepath.Join(built.dir, "edgenode")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if runtime.GOARCH == "arm" {
		cmd.Env = append(cmd.Env, "GOARM=6")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		built.err = fmt.Errorf("go build: %v\n%s", err, out)
		return
	}
	built.prefix = []string{bin}
	if runtime.GOARCH != "arm" || exec.Command(bin, "version").Run() == nil {
		return
	}
	qemu, err := exec.LookPath("qemu-arm-static")
	if err != nil {
		built.skip = "skipped: cannot exec the ARM binary and qemu-arm-static is not on PATH"
		return
	}
	built.prefix = []string{qemu, bin}
}

func runBin(prefix []string, args ...string) *exec.Cmd {
	all := append(append([]string{}, prefix[1:]...), args...)
	return exec.Command(prefix[0], all...)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func skipIfDefaultConfig(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultConfigPath); err == nil {
		t.Skipf("skipped: %s exists on this machine and would change the defaults", DefaultConfigPath)
	}
}

func TestConfigPrintsDefaults(t *testing.T) {
	skipIfDefaultConfig(t)
	bin := buildBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := runBin(bin, "config", "--node-name", "edge-1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("edgenode config: %v\n%s", err, stderr.String())
	}
	var got Config
	dec := yaml.NewDecoder(&stdout)
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("edgenode config printed YAML that does not decode strictly: %v", err)
	}
	// The sections this file's keys document, spelled out.
	type owned struct {
		Version                int
		NodeName, DataDir, Era string
		Log                    LogConfig
		Bus                    bus.Config
		Meta                   meta.Config
	}
	wantOwned := owned{
		Version:  ConfigVersion,
		NodeName: "edge-1",
		DataDir:  DefaultDataDir,
		Era:      "v1.23",
		Log:      LogConfig{Level: "info", Format: "text"},
		Bus:      bus.Config{QueueLen: bus.DefaultQueueLen},
		Meta: meta.Config{
			RemoteQueryTimeout:    meta.DefaultRemoteQueryTimeout,
			PodStatusSyncInterval: meta.MinPodStatusSyncInterval,
			MaxRemote:             meta.DefaultMaxRemote,
		},
	}
	gotOwned := owned{got.Version, got.NodeName, got.DataDir, got.Era, got.Log, got.Bus, got.Meta}
	if diff := cmp.Diff(wantOwned, gotOwned); diff != "" {
		t.Errorf("edgenode config mismatch (-want +got):\n%s", diff)
	}
	// Every section prints what the compiled-in defaults are (compared
	// after the same YAML round trip, which drops the fields a section
	// takes from the top level).
	defaults := Config{NodeName: "edge-1"}
	defaults.defaults()
	b, err := defaults.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var want Config
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("edgenode config differs from the defaults (-want +got):\n%s", diff)
	}
}

// skipIfPortBusy skips a test of the default config whose fixed ports
// (MQTT broker, health server) another process on this machine holds.
func skipIfPortBusy(t *testing.T, log string) {
	t.Helper()
	if strings.Contains(log, "address already in use") {
		t.Skipf("skipped: a port of the default config is held by another process on this machine:\n%s", log)
	}
}

func TestRunCreatesDatabaseAndStopsOnSIGTERM(t *testing.T) {
	skipIfDefaultConfig(t)
	bin := buildBinary(t)
	tests := []struct {
		name   string
		config string // empty: no config file at all
	}{
		{name: "no config file"},
		// The same with the fixed ports moved to free ones, so that the
		// run is checked also where another process holds them, and
		// the watchdog off where the host has one.
		{name: "free ports", config: "health:\n  listen: 127.0.0.1:0\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\nwatchdog:\n  device: off\ndmi:\n  socket: none\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.config == "" {
				if _, err := os.Stat(board.WatchdogConfig{}.Defaults().Device); err == nil {
					t.Skip("skipped: the default config would arm this machine's hardware watchdog")
				}
			}
			dir := filepath.Join(t.TempDir(), "data")
			args := []string{"run", "--data-dir", dir, "--node-name", "edge-1"}
			if tt.config != "" {
				path := filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			runUntilSIGTERM(t, runBin(bin, args...), dir)
		})
	}
}

// runUntilSIGTERM starts edgenode run, waits for it to log ready, checks
// the database exists, sends SIGTERM and checks it exits 0.
func runUntilSIGTERM(t *testing.T, cmd *exec.Cmd, dir string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A guard, not a timing assertion: a hung process fails the test
	// instead of hanging it.
	guard := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer guard.Stop()

	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	ready := false
	for !ready && sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		ready = strings.Contains(sc.Text(), "edgenode ready")
	}
	if !ready {
		cmd.Wait()
		skipIfPortBusy(t, log.String())
		t.Fatalf("edgenode run ended without logging ready:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(dir, db.FileName)); err != nil {
		t.Errorf("database not created: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	if code := exitCode(cmd.Wait()); code != 0 {
		skipIfPortBusy(t, log.String())
		t.Fatalf("edgenode run exit code after SIGTERM = %d, want 0; log:\n%s", code, log.String())
	}
	if !strings.Contains(log.String(), "edgenode stopped") {
		t.Errorf("log lacks \"edgenode stopped\":\n%s", log.String())
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	conf := "nodName: edge-1\n" + // unknown key
		"log:\n  level: info\n  colour: red\n" + // unknown key
		"meta:\n  remoteQueryTimeout: -5s\n" // bad value
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"config", "run"} {
		t.Run(sub, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := runBin(bin, sub, "--config", path, "--data-dir", filepath.Join(dir, "data"))
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := exitCode(cmd.Run())
			if code == 0 {
				t.Fatalf("edgenode %s with an invalid config exited 0, want non-zero", sub)
			}
			for _, want := range []string{"nodName", "colour", "meta.remoteQueryTimeout"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("edgenode %s: stderr does not name %q:\n%s", sub, want, stderr.String())
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "data", db.FileName)); err == nil {
				t.Errorf("edgenode %s created the database despite the invalid config", sub)
			}
		})
	}
}

// TestMetaThroughHub runs MetaManager behind the real hub client against
// the in-process cloud of each era: a pod the cloud pushes is stored,
// reaches edged and is acknowledged over the websocket; a configmap query
// of edged goes to the cloud and back and is stored; the cloud's answer is
// acknowledged too (docs/protocol.md 2.5, 3.2, 3.3, 9).
func TestMetaThroughHub(t *testing.T) {
	const (
		node    = "edge-1"
		podJSON = `{"metadata":{"name":"nginx","namespace":"default","uid":"u1"},"spec":{}}`
		cmJSON  = `{"metadata":{"name":"cm","namespace":"default"},"data":{"k":"v"}}`
	)
	for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
		t.Run(era.String(), func(t *testing.T) {
			answer := cmJSON // v0.3: the object itself
			if era == bus.EraV123 {
				answer = `{"Object":` + cmJSON + `,"Err":null}`
			}
			srv := hubtest.NewServer(hubtest.Config{Era: era, Answer: func(req bus.Message) (bus.Message, bool) {
				if req.Route.Operation != bus.OpQuery {
					return bus.Message{}, false
				}
				src := bus.SourceEdgeController
				if era == bus.EraV03 {
					src = bus.SourceController
				}
				resp := bus.NewMessage(src, bus.GroupResource, bus.OpResponse, req.Route.Resource, []byte(answer))
				resp.Header.ParentID = req.Header.ID
				return resp, true
			}})
			defer srv.Close()

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// edged, and a probe in group meta that sees the connection
			// event when meta does.
			const probe bus.Module = "probe"
			cn := newLinkNode(t, ctx, srv, era, node, standIn{bus.ModulePod, bus.GroupPod}, standIn{probe, bus.GroupMeta})
			b, store, hc, mm := cn.b, cn.store, cn.hub, cn.meta
			var g errgroup.Group
			runCtx, stop := context.WithCancel(ctx)
			g.Go(func() error { return hc.Run(runCtx) })
			g.Go(func() error { return mm.Run(runCtx) })
			defer func() {
				stop()
				if err := g.Wait(); err != nil {
					t.Errorf("Run() = %v", err)
				}
			}()
			waitCloud(t, ctx, b, probe, bus.CloudConnected)

			// Cloud -> edge: a pod insert.
			push := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/nginx", []byte(podJSON))
			if era == bus.EraV03 {
				push.Route.Source = bus.SourceController
			}
			srv.Push(push)
			got, err := b.Receive(ctx, bus.ModulePod)
			if err != nil || got.Header.ID != push.Header.ID || string(got.Content) != podJSON {
				t.Fatalf("edged got %+v %s, %v, want the pod", got.Route, got.Content, err)
			}
			isAck := func(parent bus.ID) func(bus.Message) bool {
				return func(m bus.Message) bool {
					return m.Route.Operation == bus.OpResponse && m.Header.ParentID == parent && bus.IsOK(m.Content)
				}
			}
			if _, err := srv.WaitFor(ctx, isAck(push.Header.ID)); err != nil {
				t.Fatalf("the cloud got no OK for the pod: %v", err)
			}
			if era == bus.EraV123 {
				if err := srv.WaitAcked(ctx, push.Header.ID); err != nil {
					t.Errorf("WaitAcked(pod) = %v", err)
				}
			}
			if row, err := store.MetaByKey(ctx, "default/pod/nginx"); err != nil || row.Value != podJSON {
				t.Errorf("pod row = %+v, %v", row, err)
			}

			// Edge -> cloud -> edge: a configmap query.
			q := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, "default/configmap/cm", nil)
			resp, err := b.SendSync(ctx, bus.ModuleMeta, q, 30*time.Second)
			if err != nil || resp.Header.ParentID != q.Header.ID || string(resp.Content) != answer {
				t.Fatalf("query answer = %+v %s, %v, want the cloud's %s", resp.Header, resp.Content, err, answer)
			}
			if _, err := srv.WaitFor(ctx, isAck(resp.Header.ID)); err != nil {
				t.Errorf("the cloud got no OK for its answer: %v", err)
			}
			if row, err := store.MetaByKey(ctx, "default/configmap/cm"); err != nil || row.Value != cmJSON {
				t.Errorf("configmap row = %+v, %v", row, err)
			}

			// Cloud away: a pod status is stored, answered, queued by the
			// hub and delivered when the cloud is back.
			srv.Pause()
			waitCloud(t, ctx, b, probe, bus.CloudDisconnected)
			res, status := "default/podstatus/nginx", `{"UID":"u1","Name":"nginx","Status":{"phase":"Running"}}`
			op := bus.OpUpdate
			if era == bus.EraV123 {
				res, status, op = "default/podpatch/nginx", `"{\"status\":{\"phase\":\"Running\"}}"`, bus.OpPatch
			}
			st := bus.NewMessage(bus.ModulePod, bus.GroupMeta, op, res, []byte(status))
			if _, err := b.SendSync(ctx, bus.ModuleMeta, st, 30*time.Second); err != nil {
				t.Fatalf("status while disconnected: %v", err)
			}
			if err := srv.Resume(); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.WaitFor(ctx, func(m bus.Message) bool {
				return m.Route.Resource == res && m.Route.Operation == op
			}); err != nil {
				t.Errorf("the status sent while the cloud was away never reached it: %v", err)
			}
		})
	}
}

// waitCloud reads the probe's queue until the hub reports state.
func waitCloud(t *testing.T, ctx context.Context, b *bus.Bus, probe bus.Module, state string) {
	t.Helper()
	for {
		ev, err := b.Receive(ctx, probe)
		if err != nil {
			t.Fatalf("no %s event: %v", state, err)
		}
		if s, _ := bus.ContentString(ev.Content); s == state {
			return
		}
	}
}

// TestRunRestrictsDataDir: a data dir created 0755 before the node (as a
// board's init script does) and a 0644 database are 0700 and 0600 once the
// node has started.
func TestRunRestrictsDataDir(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	dbPath := filepath.Join(dir, db.FileName)
	store, err := db.Open(context.Background(), dbPath, db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	if err := os.Chmod(dbPath, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("health:\n  listen: 127.0.0.1:0\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\nwatchdog:\n  device: off\ndmi:\n  socket: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runUntilSIGTERM(t, runBin(bin, "run", "--data-dir", dir, "--node-name", "edge-1", "--config", cfg), dir)
	for p, want := range map[string]os.FileMode{dir: 0o700, dbPath: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("mode of %s after start = %o, want %o", p, fi.Mode().Perm(), want)
		}
	}
	if fi, err := os.Stat(dbPath + "-wal"); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("mode of the WAL = %o, want no group or other access", fi.Mode().Perm())
	}
}
