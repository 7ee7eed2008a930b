package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/internal/testenv"
	"edgenode/pod/podtest"
)

// testImage is the tag of the busybox image every runner test imports.
const testImage = "busybox:test"

type harness struct {
	t      testing.TB
	r      *Runner
	b      *bus.Bus
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	seen   map[string]PodStatus // last status read per pod
}

// newHarness starts a runner on a fresh data dir with a fake meta module
// that records status messages. dataDir "" makes one.
func newHarness(t testing.TB, dataDir string, mod func(*Config)) *harness {
	t.Helper()
	testenv.Containers(t)
	if dataDir == "" {
		dataDir = t.TempDir()
		img := podtest.BusyboxImage(t)
		f := filepath.Join(t.TempDir(), "bb.tar")
		if err := podtest.WriteOCIArchive(f, testImage, img); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dataDir, "ro-images"), 0o755)
		os.Rename(f, filepath.Join(dataDir, "ro-images", "bb.tar"))
	}
	cfg := Config{
		DataDir: dataDir, NodeName: "node1", Era: bus.EraV123,
		RuntimeRoot:  filepath.Join(dataDir, "runc"),
		ImagesDir:    filepath.Join(dataDir, "ro-images"),
		ManifestsDir: filepath.Join(dataDir, "manifests"),
		CNIConfDir:   filepath.Join(dataDir, "cni"),
		Platform:     "linux/" + podtest.BusyboxArch(),
		// No safety resync within a test: every step must come from an
		// event or a time the worker asked for.
		SyncInterval: time.Hour, StatusInterval: time.Millisecond,
		BackoffBase: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond,
		HostIP: "127.0.0.1", QueryTimeout: time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	b := bus.New(bus.Config{QueueLen: 1024}, testLog())
	if err := b.AddModule(bus.ModuleMeta, bus.GroupMeta); err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, b, testLog())
	if err != nil {
		t.Fatal(err)
	}
	r.images.ImportDir(context.Background(), cfg.ImagesDir)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, r: r, b: b, cfg: cfg, cancel: cancel, done: make(chan error, 1), seen: map[string]PodStatus{}}
	go func() { h.done <- r.Run(ctx) }()
	t.Cleanup(func() { h.stop(); cleanupRunc(t, cfg) })
	return h
}

// stop ends Run, leaving containers running.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

// cleanupRunc removes every container and mount a test left.
func cleanupRunc(t testing.TB, cfg Config) {
	rt := &ociRuntime{bin: "runc", root: cfg.RuntimeRoot}
	if bin, err := exec.LookPath("runc"); err == nil {
		rt.bin = bin
	}
	states, _ := rt.list(context.Background())
	for _, s := range states {
		_ = rt.remove(context.Background(), s.ID)
	}
	ents, _ := os.ReadDir(PodsDir(cfg.DataDir))
	for _, e := range ents {
		dir := filepath.Join(PodsDir(cfg.DataDir), e.Name())
		cs, _ := os.ReadDir(filepath.Join(dir, "containers"))
		for _, c := range cs {
			unmountRootfs(filepath.Join(dir, "containers", c.Name()))
		}
		vs, _ := os.ReadDir(filepath.Join(dir, "volumes"))
		for _, v := range vs {
			unmountAll(filepath.Join(dir, "volumes", v.Name()))
		}
		releaseNamespaces(filepath.Join(dir, "ns"))
		removePodCgroups("/edgenode/pod" + e.Name())
	}
}

// send delivers a message to the pod module as meta would.
func (h *harness) send(op bus.Op, kind bus.Kind, ns, name string, obj any) {
	h.t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		h.t.Fatal(err)
	}
	m := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, op, bus.ResourcePath(ns, kind, name), b)
	if err := h.b.Send(bus.ModulePod, m); err != nil {
		h.t.Fatal(err)
	}
}

// waitStatus reads status messages until ok accepts one for the named pod.
func (h *harness) waitStatus(name string, timeout time.Duration, ok func(PodStatus) bool) PodStatus {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last, ok0 := h.seen[name]
	if ok0 && ok(last) {
		return last
	}
	for {
		m, err := h.b.Receive(ctx, bus.ModuleMeta)
		if err != nil {
			js, _ := json.MarshalIndent(last, "", " ")
			h.t.Fatalf("pod %s: no matching status within %s; last: %s", name, timeout, js)
		}
		res := m.Res
		if !res.Valid(m.Route.Operation) {
			continue
		}
		checkK8sStatus(h.t, m) // every status a runner test sees must suit kube-apiserver
		var st PodStatus
		switch res.Kind {
		case bus.KindPodPatch:
			s, _ := bus.ContentString(m.Content)
			var patch struct {
				Status PodStatus `json:"status"`
			}
			if err := json.Unmarshal([]byte(s), &patch); err != nil {
				h.t.Fatalf("podpatch content %q: %v", s, err)
			}
			st = patch.Status
		case bus.KindPodStatus:
			var ps struct {
				UID, Name string
				Status    PodStatus
			}
			if err := json.Unmarshal(m.Content, &ps); err != nil {
				h.t.Fatalf("podstatus content %q: %v", m.Content, err)
			}
			st = ps.Status
		default:
			continue
		}
		h.seen[res.Name] = st
		if res.Name != name {
			continue
		}
		last = st
		if ok(st) {
			return st
		}
	}
}

func running(names ...string) func(PodStatus) bool {
	return func(s PodStatus) bool {
		if s.Phase != "Running" || len(s.ContainerStatuses) != len(names) {
			return false
		}
		for _, cs := range s.ContainerStatuses {
			if cs.State.Running == nil {
				return false
			}
		}
		return true
	}
}

func testPod(name string, containers ...Container) *Pod {
	zero := int64(1)
	p := &Pod{Metadata: ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name},
		Spec: PodSpec{Containers: containers, TerminationGracePeriodSeconds: &zero}}
	return p
}

func sh(name, script string) Container {
	return Container{Name: name, Image: testImage, ImagePullPolicy: PullNever, Command: []string{"sh", "-c", script}}
}

func (h *harness) logs(pod, container string) string {
	var b strings.Builder
	_ = WriteLogs(&b, h.cfg.DataDir, pod, container, false)
	return b.String()
}

// waitLog waits until the container log holds want. Logs are files the
// container writes itself, so there is no event to wait for: poll.
func (h *harness) waitLog(pod, container, want string) {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		got := h.logs(pod, container)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("log of %s/%s = %q, want it to contain %q", pod, container, got, want)
		}
	}
}

func (h *harness) runcIDs() []string {
	states, err := h.r.rt.list(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for _, s := range states {
		ids = append(ids, s.ID+":"+s.Status)
	}
	return ids
}

func TestPodRunsAndDeletes(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("hello", sh("main", "echo hello from $HOSTNAME; exec sleep 1000"))
	h.send(bus.OpInsert, bus.KindPod, "default", "hello", p)
	st := h.waitStatus("hello", 2*time.Minute, running("main"))
	cs := st.ContainerStatuses[0]
	if !strings.HasPrefix(cs.ImageID, "sha256:") || cs.RestartCount != 0 || !cs.Ready {
		t.Errorf("container status = %+v, want image id, 0 restarts, ready", cs)
	}
	h.waitLog("hello", "main", "hello from hello")
	if ids := h.runcIDs(); len(ids) != 1 || !strings.HasSuffix(ids[0], ":running") {
		t.Errorf("runc list = %v, want one running container", ids)
	}
	// No process of ours per container: the container's parent is this
	// process (the subreaper), not a shim.
	states, _ := h.r.rt.list(context.Background())
	if ppid := parentOf(states[0].Pid); ppid != os.Getpid() {
		t.Errorf("parent of container pid %d = %d, want this process %d", states[0].Pid, ppid, os.Getpid())
	}
	h.send(bus.OpDelete, bus.KindPod, "default", "hello", p)
	waitGone(t, h, "uid-hello")
	if ids := h.runcIDs(); len(ids) != 0 {
		t.Errorf("after delete runc list = %v, want none", ids)
	}
	if _, err := os.Stat(filepath.Join(PodsDir(h.cfg.DataDir), "uid-hello")); !os.IsNotExist(err) {
		t.Errorf("pod dir after delete: %v, want gone", err)
	}
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ppid int
	fmt.Sscan(fs[1], &ppid)
	return ppid
}

// waitGone waits for the worker of uid to finish.
func waitGone(t testing.TB, h *harness, uid string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		h.r.mu.Lock()
		_, ok := h.r.workers[uid]
		h.r.mu.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not deleted within 30s", uid)
		}
	}
}

func TestTwoContainersShareLoopback(t *testing.T) {
	h := newHarness(t, "", nil)
	server := sh("server", "mkdir -p /www && echo pong > /www/index.html && exec httpd -f -p 8080 -h /www")
	server.Ports = []ContainerPort{{Name: "http", ContainerPort: 8080}}
	server.ReadinessProbe = &Probe{HTTPGet: &HTTPGetAction{Path: "/", Port: json.RawMessage(`"http"`)}, PeriodSeconds: 1}
	client := sh("client", "until wget -qO- http://127.0.0.1:8080/; do sleep 0.1; done; exec sleep 1000")
	p := testPod("pair", server, client)
	h.send(bus.OpInsert, bus.KindPod, "default", "pair", p)
	h.waitStatus("pair", 2*time.Minute, func(s PodStatus) bool {
		return running("server", "client")(s) && s.ContainerStatuses[0].Ready
	})
	h.waitLog("pair", "client", "pong")
}

func TestConfigMapAndSecret(t *testing.T) {
	h := newHarness(t, "", nil)
	h.send(bus.OpInsert, bus.KindConfigMap, "default", "cfg", ConfigMap{
		Metadata: ObjectMeta{Name: "cfg", Namespace: "default"}, Data: map[string]string{"greeting": "hi-from-cm", "mode": "fast"}})
	h.send(bus.OpUpdate, bus.KindSecret, "default", "sec", Secret{
		Metadata: ObjectMeta{Name: "sec", Namespace: "default"}, Data: map[string][]byte{"password": []byte("s3cret")}})
	c := sh("main", `echo "vol=$(cat /cfg/greeting) sec=$(cat /sec/password) env=$MODE envsec=$PASS down=$(cat /info/name)"; exec sleep 1000`)
	c.Env = []EnvVar{
		{Name: "MODE", ValueFrom: &EnvVarSource{ConfigMapKeyRef: &KeySelector{Name: "cfg", Key: "mode"}}},
		{Name: "PASS", ValueFrom: &EnvVarSource{SecretKeyRef: &KeySelector{Name: "sec", Key: "password"}}},
	}
	c.VolumeMounts = []VolumeMount{{Name: "cfg", MountPath: "/cfg"}, {Name: "sec", MountPath: "/sec", ReadOnly: true}, {Name: "info", MountPath: "/info"}}
	p := testPod("cfgpod", c)
	p.Spec.Volumes = []Volume{
		{Name: "cfg", ConfigMap: &ConfigMapVolumeSource{Name: "cfg"}},
		{Name: "sec", Secret: &SecretVolumeSource{SecretName: "sec"}},
		{Name: "info", DownwardAPI: &DownwardAPIVolumeSource{Items: []DownwardAPIVolumeFile{{Path: "name", FieldRef: &ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
	}
	h.send(bus.OpInsert, bus.KindPod, "default", "cfgpod", p)
	h.waitStatus("cfgpod", 2*time.Minute, running("main"))
	h.waitLog("cfgpod", "main", "vol=hi-from-cm sec=s3cret env=fast envsec=s3cret down=cfgpod")
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		script string
		want   func(PodStatus) bool
	}{
		{"always restarts a clean exit", RestartAlways, "exit 0", func(s PodStatus) bool {
			return s.ContainerStatuses[0].RestartCount >= 2
		}},
		{"onfailure restarts a failure", RestartOnFailure, "exit 1", func(s PodStatus) bool {
			cs := s.ContainerStatuses[0]
			return cs.RestartCount >= 2 && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode == 1
		}},
		{"onfailure keeps a success", RestartOnFailure, "exit 0", func(s PodStatus) bool {
			cs := s.ContainerStatuses[0]
			return s.Phase == "Succeeded" && cs.RestartCount == 0 && cs.State.Terminated != nil && cs.State.Terminated.Reason == "Completed"
		}},
		{"never keeps a failure", RestartNever, "exit 3", func(s PodStatus) bool {
			cs := s.ContainerStatuses[0]
			return s.Phase == "Failed" && cs.RestartCount == 0 && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 3
		}},
	}
	h := newHarness(t, "", nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("restart%d", i)
			p := testPod(name, sh("main", tt.script))
			p.Spec.RestartPolicy = tt.policy
			h.send(bus.OpInsert, bus.KindPod, "default", name, p)
			h.waitStatus(name, 2*time.Minute, func(s PodStatus) bool { return len(s.ContainerStatuses) == 1 && tt.want(s) })
			h.send(bus.OpDelete, bus.KindPod, "default", name, p)
			waitGone(t, h, "uid-"+name)
		})
	}
}

func TestInitContainersRunFirst(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("withinit", sh("main", "cat /shared/done; exec sleep 1000"))
	p.Spec.InitContainers = []Container{sh("init1", "echo one > /shared/done"), sh("init2", "echo two >> /shared/done")}
	p.Spec.Volumes = []Volume{{Name: "work", EmptyDir: &EmptyDirVolumeSource{}}}
	for i := range p.Spec.InitContainers {
		p.Spec.InitContainers[i].VolumeMounts = []VolumeMount{{Name: "work", MountPath: "/shared"}}
	}
	p.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "work", MountPath: "/shared"}}
	h.send(bus.OpInsert, bus.KindPod, "default", "withinit", p)
	st := h.waitStatus("withinit", 2*time.Minute, running("main"))
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			t.Errorf("init %s state = %+v, want terminated 0", cs.Name, cs.State)
		}
	}
	h.waitLog("withinit", "main", "one\ntwo\n")
}

func TestLivenessProbeRestarts(t *testing.T) {
	h := newHarness(t, "", nil)
	c := sh("main", "touch /tmp/healthy; sleep 1; rm /tmp/healthy; exec sleep 1000")
	c.LivenessProbe = &Probe{Exec: &ExecAction{Command: []string{"cat", "/tmp/healthy"}}, PeriodSeconds: 1, FailureThreshold: 1}
	p := testPod("live", c)
	h.send(bus.OpInsert, bus.KindPod, "default", "live", p)
	st := h.waitStatus("live", 2*time.Minute, func(s PodStatus) bool {
		return len(s.ContainerStatuses) == 1 && s.ContainerStatuses[0].RestartCount >= 1
	})
	if lt := st.ContainerStatuses[0].LastTerminationState.Terminated; lt == nil || lt.Message != "liveness probe failed" {
		t.Errorf("last termination = %+v, want a liveness kill", lt)
	}
}

func TestAdoptAfterStop(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("keep", sh("main", "exec sleep 1000"))
	h.send(bus.OpInsert, bus.KindPod, "default", "keep", p)
	st := h.waitStatus("keep", 2*time.Minute, running("main"))
	before := h.runcStates()
	// edgenode goes away (Run returns; a crash does the same: nothing of
	// ours stops containers). They keep running.
	h.stop()
	if after := h.runcStates(); len(after) != 1 || after[0].Status != "running" || after[0].Pid != before[0].Pid {
		t.Fatalf("after stop runc list = %+v, want the same running container", after)
	}
	// startTime has one-second resolution: let a second pass so that a
	// reset at adoption would show.
	time.Sleep(1100 * time.Millisecond)
	h2 := newHarness(t, h.cfg.DataDir, nil)
	st2 := h2.waitStatus("keep", 2*time.Minute, running("main"))
	if got := h2.runcStates(); len(got) != 1 || got[0].Pid != before[0].Pid {
		t.Errorf("after adoption runc list = %+v, want pid %d unchanged", got, before[0].Pid)
	}
	if cs := st2.ContainerStatuses[0]; cs.RestartCount != 0 || cs.State.Running.StartedAt != st.ContainerStatuses[0].State.Running.StartedAt {
		t.Errorf("adopted status = %+v, want no restart and the same start time", cs)
	}
	if st2.StartTime == "" || st2.StartTime != st.StartTime {
		t.Errorf("adopted pod startTime = %q, want %q kept", st2.StartTime, st.StartTime)
	}
}

// TestSharedRuncRootLeavesOthersAlone: a second node on the same runc root
// (edgenode's tests beside a real node, both on the default root) neither
// adopts nor removes the first node's containers.
func TestSharedRuncRootLeavesOthersAlone(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("mine", sh("main", "exec sleep 1000"))
	h.send(bus.OpInsert, bus.KindPod, "default", "mine", p)
	h.waitStatus("mine", 2*time.Minute, running("main"))
	before := h.runcStates()
	other := newHarness(t, "", func(c *Config) { c.RuntimeRoot = h.cfg.RuntimeRoot })
	// The other node's start-up (adopt known pods, remove containers of
	// unknown pods) is done once it has sent a pod of its own.
	q := testPod("theirs", sh("main", "exec sleep 1000"))
	other.send(bus.OpInsert, bus.KindPod, "default", "theirs", q)
	other.waitStatus("theirs", 2*time.Minute, running("main"))
	after := h.runcStates()
	found := false
	for _, s := range after {
		if s.ID == before[0].ID {
			found = s.Status == "running" && s.Pid == before[0].Pid
		}
	}
	if !found {
		t.Errorf("after another node started on the same runc root: %+v, want %s still running", after, before[0].ID)
	}
}

func TestRestartAfterReboot(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("boot", sh("main", "echo started; exec sleep 1000"))
	h.send(bus.OpInsert, bus.KindPod, "default", "boot", p)
	h.waitStatus("boot", 2*time.Minute, running("main"))
	h.stop()
	// A reboot loses every container and mount, keeps the data dir.
	cleanupRunc(t, h.cfg)
	h2 := newHarness(t, h.cfg.DataDir, nil)
	h2.waitStatus("boot", 2*time.Minute, running("main"))
	if ids := h2.runcIDs(); len(ids) != 1 {
		t.Errorf("after reboot runc list = %v, want the pod's container", ids)
	}
}

func (h *harness) runcStates() []ociState {
	s, err := h.r.rt.list(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func TestBadSpecsReportReason(t *testing.T) {
	h := newHarness(t, "", nil)
	missing := testPod("noimage", Container{Name: "main", Image: "nothere:1", ImagePullPolicy: PullNever})
	badvol := testPod("badvol", sh("main", "true"))
	badvol.Spec.Volumes = []Volume{{Name: "v", HostPath: &HostPathVolumeSource{Path: "/does/not/exist", Type: "Directory"}}}
	badvol.Spec.Containers[0].VolumeMounts = []VolumeMount{{Name: "v", MountPath: "/v"}}
	nocm := testPod("nocm", sh("main", "true"))
	nocm.Spec.Containers[0].Env = []EnvVar{{Name: "X", ValueFrom: &EnvVarSource{ConfigMapKeyRef: &KeySelector{Name: "absent", Key: "k"}}}}
	tests := []struct {
		name string
		raw  any
		want func(PodStatus) bool
	}{
		{"noimage", missing, waitingReason("ErrImageNeverPull")},
		{"badvol", badvol, waitingReason("CreateContainerConfigError")},
		{"nocm", nocm, waitingReason("CreateContainerConfigError")},
		{"badpolicy", json.RawMessage(`{"metadata":{"name":"badpolicy","uid":"uid-bp"},"spec":{"restartPolicy":"Sometimes","containers":[{"name":"c","image":"x"}]}}`),
			func(s PodStatus) bool {
				return s.Phase == "Failed" && s.Reason == "InvalidSpec" && strings.Contains(s.Message, "restartPolicy")
			}},
		{"nfs", json.RawMessage(`{"metadata":{"name":"nfs","uid":"uid-nfs"},"spec":{"volumes":[{"name":"v","nfs":{"server":"s","path":"/"}}],"containers":[{"name":"c","image":"x"}]}}`),
			func(s PodStatus) bool { return s.Phase == "Failed" && strings.Contains(s.Message, "not supported") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.send(bus.OpInsert, bus.KindPod, "default", tt.name, tt.raw)
			h.waitStatus(tt.name, 2*time.Minute, tt.want)
		})
	}
	// The runner still works.
	h.send(bus.OpInsert, bus.KindPod, "default", "fine", testPod("fine", sh("main", "exec sleep 1000")))
	h.waitStatus("fine", 2*time.Minute, running("main"))
}

func waitingReason(r string) func(PodStatus) bool {
	return func(s PodStatus) bool {
		return len(s.ContainerStatuses) > 0 && s.ContainerStatuses[0].State.Waiting != nil &&
			s.ContainerStatuses[0].State.Waiting.Reason == r
	}
}

func TestPullAndRun(t *testing.T) {
	h := newHarness(t, "", nil)
	reg := podtest.NewRegistry()
	defer reg.Close()
	ref, err := reg.Push("apps/sleeper:1", podtest.BusyboxImage(t, "sleep", "1000"))
	if err != nil {
		t.Fatal(err)
	}
	p := testPod("pulled", Container{Name: "main", Image: ref, ImagePullPolicy: PullAlways})
	h.send(bus.OpInsert, bus.KindPod, "default", "pulled", p)
	h.waitStatus("pulled", 2*time.Minute, running("main"))
}

func TestStatusEras(t *testing.T) {
	p := testPod("x", sh("main", "true"))
	s := &PodStatus{Phase: "Running"}
	m, err := statusMessage(bus.EraV03, p, s)
	if err != nil || m.Route.Resource != "default/podstatus/x" || m.Route.Operation != bus.OpUpdate ||
		!strings.Contains(string(m.Content), `"UID":"uid-x","Name":"x","Status":{"phase":"Running"`) {
		t.Errorf("v0.3 status = %s %s %s, %v", m.Route.Operation, m.Route.Resource, m.Content, err)
	}
	m, err = statusMessage(bus.EraV123, p, s)
	str, ok := bus.ContentString(m.Content)
	if err != nil || m.Route.Resource != "default/podpatch/x" || m.Route.Operation != bus.OpPatch || !ok ||
		!strings.Contains(str, `"status":{"phase":"Running"`) || !strings.Contains(str, `"message":null,"reason":null`) {
		t.Errorf("v1.23 status = %s %s %s, %v", m.Route.Operation, m.Route.Resource, m.Content, err)
	}
}

func TestGracefulStop(t *testing.T) {
	h := newHarness(t, "", nil)
	// A container that handles SIGTERM and one that ignores it (killed
	// after the 1 s grace period).
	p := testPod("grace",
		sh("polite", "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"),
		sh("stubborn", "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
	h.send(bus.OpInsert, bus.KindPod, "default", "grace", p)
	h.waitStatus("grace", 2*time.Minute, running("polite", "stubborn"))
	h.waitLog("grace", "polite", "ready")
	h.waitLog("grace", "stubborn", "ready")
	dir := filepath.Join(PodsDir(h.cfg.DataDir), "uid-grace")
	logOf := func(c string) string {
		b, _ := os.ReadFile(filepath.Join(dir, "logs", c+".log"))
		return string(b)
	}
	var polite string
	// Read the log just before the pod dir goes: keep a copy while deleting.
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if s := logOf("polite"); s != "" {
				polite = s
			}
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				return
			}
		}
	}()
	start := time.Now()
	h.r.DeletePod("default", "grace")
	waitGone(t, h, "uid-grace")
	<-done
	if !strings.Contains(polite, "got TERM") {
		t.Errorf("polite container log = %q, want it to have seen SIGTERM", polite)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("delete took %s, want the stubborn container's 1 s grace period", d)
	}
	if ids := h.runcIDs(); len(ids) != 0 {
		t.Errorf("runc list after delete = %v", ids)
	}
}

func TestLogRotation(t *testing.T) {
	// Log sizes are checked on each sync: resync often.
	h := newHarness(t, "", func(c *Config) { c.LogMaxSize = 4096; c.LogMaxFiles = 2; c.SyncInterval = 50 * time.Millisecond })
	p := testPod("chatty", sh("main", `i=0; while [ $i -lt 400 ]; do echo "line $i padding padding padding"; i=$((i+1)); done; echo last-line; exec sleep 1000`))
	h.send(bus.OpInsert, bus.KindPod, "default", "chatty", p)
	h.waitLog("chatty", "main", "last-line")
	dir := filepath.Join(PodsDir(h.cfg.DataDir), "uid-chatty", "logs")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(2 * time.Minute)
	for range tick.C {
		fi, err := os.Stat(filepath.Join(dir, "main.log"))
		_, err1 := os.Stat(filepath.Join(dir, "main.log.1"))
		if err == nil && err1 == nil && fi.Size() < 4096 {
			break
		}
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir(dir)
			t.Fatalf("log not rotated: %v", ents)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "main.log.3")); err == nil {
		t.Errorf("main.log.3 kept, want at most 2 rotated files")
	}
}

func TestProjectedServiceAccountVolume(t *testing.T) {
	h := newHarness(t, "", nil)
	// Answer meta's queries as the cloud would (docs/protocol.md 9): the token and the
	// kube-root-ca.crt configmap.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var queries []string
	go func() {
		for {
			m, err := h.b.Receive(ctx, bus.ModuleMeta)
			if err != nil {
				return
			}
			if m.Route.Operation != bus.OpQuery {
				continue
			}
			mu.Lock()
			queries = append(queries, m.Route.Resource)
			mu.Unlock()
			var content string
			switch {
			case strings.Contains(m.Route.Resource, "/serviceaccounttoken/"):
				content = `{"Object":{"status":{"token":"tok-123"}},"Err":null}`
			case strings.HasSuffix(m.Route.Resource, "/kube-root-ca.crt"):
				content = `[` + string(bus.JSONString(`{"metadata":{"name":"kube-root-ca.crt"},"data":{"ca.crt":"CA-PEM"}}`)) + `]`
			}
			h.b.SendResp(m.Resp([]byte(content)))
		}
	}()
	c := sh("main", `echo "token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token) ca=$(cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt) ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"; exec sleep 1000`)
	c.VolumeMounts = []VolumeMount{{Name: "kube-api-access-x1", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}
	p := testPod("sa", c)
	exp := int64(3607)
	p.Spec.Volumes = []Volume{{Name: "kube-api-access-x1", Projected: &ProjectedVolumeSource{Sources: []VolumeProjection{
		{ServiceAccountToken: &ServiceAccountTokenProjection{ExpirationSeconds: &exp, Path: "token"}},
		{ConfigMap: &ConfigMapVolumeSource{Name: "kube-root-ca.crt", Items: []KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
		{DownwardAPI: &DownwardAPIVolumeSource{Items: []DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
	}}}}
	h.send(bus.OpInsert, bus.KindPod, "default", "sa", p)
	h.waitLog("sa", "main", "token=tok-123 ca=CA-PEM ns=default")
	mu.Lock()
	defer mu.Unlock()
	want := []string{"default/serviceaccounttoken/default", "default/configmap/kube-root-ca.crt"}
	for _, w := range want {
		found := false
		for _, q := range queries {
			found = found || q == w
		}
		if !found {
			t.Errorf("queries = %v, want %s among them", queries, w)
		}
	}
}

// TestCNIAttach uses a fake plugin chain (shell scripts speaking the CNI
// protocol, touching no network) to check ADD with chaining and port
// mappings, the pod IP in the status, and DEL on delete.
func TestCNIAttach(t *testing.T) {
	tmp := t.TempDir()
	bin, conf, rec := filepath.Join(tmp, "bin"), filepath.Join(tmp, "net.d"), filepath.Join(tmp, "calls")
	os.MkdirAll(bin, 0o755)
	os.MkdirAll(conf, 0o755)
	os.MkdirAll(rec, 0o755)
	plugin := `#!/bin/sh
in=$(cat)
n=$(ls ` + rec + ` | wc -l)
{ echo "$CNI_COMMAND $CNI_IFNAME $CNI_NETNS"; echo "$in"; } > ` + rec + `/$n-$(basename $0)
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.7/24"}]}'
exit 0
`
	for _, n := range []string{"fakenet", "fakeport"} {
		os.WriteFile(filepath.Join(bin, n), []byte(plugin), 0o755)
	}
	os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(`{"cniVersion":"1.0.0","name":"testnet","plugins":[
	  {"type":"fakenet"},{"type":"fakeport","capabilities":{"portMappings":true}}]}`), 0o644)
	h := newHarness(t, "", func(c *Config) { c.CNIConfDir, c.CNIBinDirs = conf, []string{bin} })
	c := sh("main", "exec sleep 1000")
	c.Ports = []ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	p := testPod("net", c)
	h.send(bus.OpInsert, bus.KindPod, "default", "net", p)
	st := h.waitStatus("net", 2*time.Minute, running("main"))
	if st.PodIP != "10.99.0.7" {
		t.Errorf("podIP = %q, want 10.99.0.7 from the CNI result", st.PodIP)
	}
	h.r.DeletePod("default", "net")
	waitGone(t, h, "uid-net")
	calls, _ := os.ReadDir(rec)
	var got []string
	for _, e := range calls {
		b, _ := os.ReadFile(filepath.Join(rec, e.Name()))
		first, rest, _ := strings.Cut(string(b), "\n")
		got = append(got, e.Name()+" "+strings.Fields(first)[0])
		if strings.HasSuffix(e.Name(), "fakeport") && strings.HasPrefix(first, "ADD") {
			if !strings.Contains(rest, `"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.7/24"}]}`) ||
				!strings.Contains(rest, `"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]`) {
				t.Errorf("chained ADD config = %s, want prevResult and portMappings", rest)
			}
		}
		if !strings.Contains(first, "/ns/net") || !strings.Contains(first, "eth0") {
			t.Errorf("plugin env = %q, want eth0 and the pod's netns", first)
		}
	}
	want := []string{"0-fakenet ADD", "1-fakeport ADD", "2-fakeport DEL", "3-fakenet DEL"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("plugin calls = %v, want %v", got, want)
	}
}

func TestLimitsAndSpecUpdate(t *testing.T) {
	h := newHarness(t, "", nil)
	c := sh("main", "echo version-1; exec sleep 1000")
	c.Resources.Limits = map[string]string{"memory": "64Mi", "cpu": "500m"}
	p := testPod("limits", c)
	h.send(bus.OpInsert, bus.KindPod, "default", "limits", p)
	h.waitStatus("limits", 2*time.Minute, running("main"))
	cg := "/edgenode/poduid-limits/main"
	v1 := filepath.Join("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes")
	v2 := filepath.Join("/sys/fs/cgroup", cg, "memory.max")
	b, err := os.ReadFile(v1)
	if err != nil {
		b, err = os.ReadFile(v2)
	}
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Errorf("memory limit = %q, %v, want %d", b, err, 64<<20)
	}
	quota, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", cg, "cpu.cfs_quota_us"))
	if err != nil {
		quota, err = os.ReadFile(filepath.Join("/sys/fs/cgroup", cg, "cpu.max"))
	}
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(quota)), "50000") {
		t.Errorf("cpu quota = %q, %v, want 50000 per 100000", quota, err)
	}
	// A changed spec restarts the container with it.
	p2 := testPod("limits", sh("main", "echo version-2; exec sleep 1000"))
	h.send(bus.OpUpdate, bus.KindPod, "default", "limits", p2)
	h.waitLog("limits", "main", "version-2")
	h.r.DeletePod("default", "limits")
	waitGone(t, h, "uid-limits")
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", "/edgenode/poduid-limits")); err == nil {
		t.Errorf("pod cgroup left after delete")
	}
}

func TestConfigMapUpdateReachesVolume(t *testing.T) {
	h := newHarness(t, "", nil)
	cm := ConfigMap{Metadata: ObjectMeta{Name: "live", Namespace: "default"}, Data: map[string]string{"v": "one"}}
	h.send(bus.OpInsert, bus.KindConfigMap, "default", "live", cm)
	c := sh("main", `last=; while true; do v=$(cat /cfg/v); [ "$v" != "$last" ] && echo "value=$v"; last=$v; sleep 0.1; done`)
	c.VolumeMounts = []VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
	p := testPod("cmlive", c)
	p.Spec.Volumes = []Volume{{Name: "cfg", ConfigMap: &ConfigMapVolumeSource{Name: "live"}}}
	h.send(bus.OpInsert, bus.KindPod, "default", "cmlive", p)
	h.waitLog("cmlive", "main", "value=one")
	cm.Data["v"] = "two"
	h.send(bus.OpUpdate, bus.KindConfigMap, "default", "live", cm)
	h.waitLog("cmlive", "main", "value=two")
	st := h.waitStatus("cmlive", 2*time.Minute, running("main"))
	if n := st.ContainerStatuses[0].RestartCount; n != 0 {
		t.Errorf("restart count = %d, want the update without a restart", n)
	}
}

// freeHostPort returns a loopback port that is free now, for a server in
// a container that must be told its port. It lies below the kernel's
// ephemeral range, where other processes' listeners on port 0 and
// outgoing connections never land, so it stays free until the container
// binds it; the upper half of that span avoids default fixed ports.
func freeHostPort(t *testing.T) int {
	t.Helper()
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo >= 4096 {
				for range 100 {
					port := lo/2 + rand.IntN(lo/2)
					if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
						l.Close()
						return port
					}
				}
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestHostNetwork(t *testing.T) {
	h := newHarness(t, "", nil)
	port := freeHostPort(t)
	c := sh("main", fmt.Sprintf("mkdir -p /www && echo host-net > /www/index.html && exec httpd -f -p 127.0.0.1:%d -h /www", port))
	c.ReadinessProbe = &Probe{TCPSocket: &TCPSocketAction{Port: json.RawMessage(strconv.Itoa(port))}, PeriodSeconds: 1}
	p := testPod("hostnet", c)
	p.Spec.HostNetwork = true
	h.send(bus.OpInsert, bus.KindPod, "default", "hostnet", p)
	st := h.waitStatus("hostnet", 2*time.Minute, func(s PodStatus) bool {
		return running("main")(s) && s.ContainerStatuses[0].Ready
	})
	if st.PodIP != h.cfg.HostIP {
		t.Errorf("podIP = %q, want the host IP %q", st.PodIP, h.cfg.HostIP)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatalf("GET from the host: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "host-net" {
		t.Errorf("GET = %q, want host-net", body)
	}
}

// TestPullSecretAndSecurityContext pulls from a registry that wants basic
// auth, with the credentials of the pod's imagePullSecret, and checks
// runAsUser, readOnlyRootFilesystem and dropped capabilities inside.
func TestPullSecretAndSecurityContext(t *testing.T) {
	h := newHarness(t, "", nil)
	reg := podtest.NewAuthRegistry("edge", "pw")
	defer reg.Close()
	ref, err := reg.Push("private/app:1", podtest.BusyboxImage(t))
	if err != nil {
		t.Fatal(err)
	}
	dcj := fmt.Sprintf(`{"auths":{%q:{"username":"edge","password":"pw"}}}`, reg.Host)
	h.send(bus.OpInsert, bus.KindSecret, "default", "regcred", Secret{
		Metadata: ObjectMeta{Name: "regcred", Namespace: "default"}, Type: "kubernetes.io/dockerconfigjson",
		Data: map[string][]byte{".dockerconfigjson": []byte(dcj)}})
	uid, ro, no := int64(65534), true, false
	c := Container{Name: "main", Image: ref, ImagePullPolicy: PullIfNotPresent,
		Command: []string{"sh", "-c", `touch /x 2>/dev/null && echo rw || echo ro; echo uid=$(id -u); grep CapEff /proc/self/status; exec sleep 1000`},
		SecurityContext: &SecurityContext{RunAsUser: &uid, ReadOnlyRootFilesystem: &ro, AllowPrivilegeEscalation: &no,
			Capabilities: &Capabilities{Drop: []string{"ALL"}}}}
	p := testPod("private", c)
	p.Spec.ImagePullSecrets = []LocalObjectReference{{Name: "regcred"}}
	h.send(bus.OpInsert, bus.KindPod, "default", "private", p)
	h.waitStatus("private", 2*time.Minute, running("main"))
	h.waitLog("private", "main", "ro\nuid=65534\nCapEff:\t0000000000000000")

	// Without the secret the pull fails with a reason, not a crash.
	p2 := testPod("nocred", Container{Name: "main", Image: reg.Host + "/private/other:1", ImagePullPolicy: PullAlways})
	h.send(bus.OpInsert, bus.KindPod, "default", "nocred", p2)
	h.waitStatus("nocred", 2*time.Minute, func(s PodStatus) bool {
		w := s.ContainerStatuses
		return len(w) == 1 && w[0].State.Waiting != nil &&
			(w[0].State.Waiting.Reason == "ErrImagePull" || w[0].State.Waiting.Reason == "ImagePullBackOff")
	})
}
