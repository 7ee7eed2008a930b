package pod

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"edgenode/bus"
)

// Time bounds in these tests are "about N s" checks made generous for a
// loaded machine (2 cores shared with builds): each only has to tell the
// right behaviour from the wrong one, which is several grace periods or
// the pod's 30 s grace away.

// fakeMeta stands in for meta after a test has read the statuses it waits
// for: it records what edged sends and answers edged's sync requests, the
// final pod delete with answer (as the cloud would, through meta).
type fakeMeta struct {
	mu     sync.Mutex
	msgs   []bus.Message
	answer func(bus.Message) bus.Message
	got    chan bus.Message // every pod delete
}

// serveMeta answers meta's queue of h until the test ends. answer builds
// the reply to a pod delete; nil answers "OK".
func (h *harness) serveMeta(answer func(req bus.Message) bus.Message) *fakeMeta {
	f := &fakeMeta{answer: answer, got: make(chan bus.Message, 16)}
	if f.answer == nil {
		f.answer = func(req bus.Message) bus.Message { return req.Resp(bus.OKContent) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	h.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			m, err := h.b.Receive(ctx, bus.ModuleMeta)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, m)
			f.mu.Unlock()
			resp := m.Resp(bus.OKContent)
			if m.Route.Operation == bus.OpDelete {
				resp = f.answer(m)
				f.got <- m
			}
			if m.Header.Sync {
				h.b.SendResp(resp)
			}
		}
	}()
	return f
}

// waitDelete returns the next final pod delete.
func (f *fakeMeta) waitDelete(t *testing.T, within time.Duration) bus.Message {
	t.Helper()
	select {
	case m := <-f.got:
		return m
	case <-time.After(within):
		t.Fatalf("no final pod delete within %s", within)
	}
	return bus.Message{}
}

// lastStatus returns the last pod status edged sent before the delete.
func (f *fakeMeta) lastStatus(t *testing.T) PodStatus {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var st PodStatus
	for _, m := range f.msgs {
		if m.Route.Operation != bus.OpPatch {
			continue
		}
		checkK8sStatus(t, m)
		s, _ := bus.ContentString(m.Content)
		var patch struct {
			Status PodStatus `json:"status"`
		}
		if err := json.Unmarshal([]byte(s), &patch); err != nil {
			t.Fatalf("podpatch %s: %v", s, err)
		}
		st = patch.Status
	}
	return st
}

// deleting is p as the cloud sends it once deleted in kubectl with
// --grace-period=g: deletionTimestamp and deletionGracePeriodSeconds set.
func deleting(p *Pod, g int64) *Pod {
	cp := *p
	ts := time.Now().Add(time.Duration(g) * time.Second).UTC().Format(time.RFC3339)
	cp.Metadata.DeletionTimestamp, cp.Metadata.DeletionGrace = &ts, &g
	return &cp
}

// stubborn is a container that ignores SIGTERM (it logs it), so only the
// SIGKILL at the end of the grace period stops it.
func stubborn(name string) Container {
	return sh(name, "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done")
}

func long(p *Pod) *Pod {
	g := int64(30) // the kubelet's default: what a wrong grace would wait
	p.Spec.TerminationGracePeriodSeconds = &g
	return p
}

// TestDeleteStopsAllAtOnce: a pod deleted with --grace-period=3 whose three
// containers ignore SIGTERM is gone in about 3 s, not 3x3 s (one after
// another) nor 30 s (the pod's own grace); then edged reports the final
// status and sends the final delete.
func TestDeleteStopsAllAtOnce(t *testing.T) {
	h := newHarness(t, "", nil)
	p := long(testPod("trio", stubborn("a"), stubborn("b"), stubborn("c")))
	h.send(bus.OpInsert, bus.KindPod, "default", "trio", p)
	h.waitStatus("trio", 2*time.Minute, running("a", "b", "c"))
	for _, c := range []string{"a", "b", "c"} {
		h.waitLog("trio", c, "ready")
	}
	f := h.serveMeta(nil)
	start := time.Now()
	h.send(bus.OpUpdate, bus.KindPod, "default", "trio", deleting(p, 3))
	del := f.waitDelete(t, 2*time.Minute)
	d := time.Since(start)
	t.Logf("final delete %s after the delete", d)
	// At least the grace: the containers ignore SIGTERM. At most 3+5 s:
	// stopping them in turn would take 9 s.
	if d < 3*time.Second || d > 8*time.Second {
		t.Errorf("final delete %s after the delete, want about 3 s", d)
	}
	if del.Route.Resource != "default/pod/trio" || del.Route.Source != bus.ModulePod || del.Route.Group != bus.GroupMeta ||
		string(del.Content) != `{"gracePeriodSeconds":0,"preconditions":{"uid":"uid-trio"}}` {
		t.Errorf("final delete = %+v %s, want DeleteOptions with grace 0 and uid-trio", del.Route, del.Content)
	}
	st := f.lastStatus(t)
	if st.Phase != "Failed" || len(st.ContainerStatuses) != 3 {
		t.Fatalf("final status = %+v, want Failed with 3 containers", st)
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 137 {
			t.Errorf("final container status = %+v, want terminated by SIGKILL", cs)
		}
	}
	waitGone(t, h, "uid-trio")
	// kube-apiserver sets the grace to 0 in an update before it deletes
	// the pod; that update may come after the pod is gone here and must
	// not start a second deletion. (handle is what Run calls.)
	late, _ := json.Marshal(deleting(p, 0))
	h.r.handle(bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpUpdate, "default/pod/trio", late))
	h.r.mu.Lock()
	_, again := h.r.workers["uid-trio"]
	h.r.mu.Unlock()
	if again {
		t.Error("a late update of the deleted pod started it again")
	}
	if ids := h.runcIDs(); len(ids) != 0 {
		t.Errorf("runc list after delete = %v, want none", ids)
	}
	if _, err := os.Stat(filepath.Join(PodsDir(h.cfg.DataDir), "uid-trio")); !os.IsNotExist(err) {
		t.Errorf("pod dir after delete: %v, want gone", err)
	}
}

// TestForceDelete: a force delete (--grace-period=0 --force) reaches the
// edge as a cloud delete of a pod with deletionGracePeriodSeconds 0, also
// while a graceful deletion is in progress: the containers are killed at
// once, not after the pod's 30 s.
func TestForceDelete(t *testing.T) {
	h := newHarness(t, "", nil)
	p := long(testPod("force", stubborn("main")))
	h.send(bus.OpInsert, bus.KindPod, "default", "force", p)
	h.waitStatus("force", 2*time.Minute, running("main"))
	h.waitLog("force", "main", "ready")
	h.serveMeta(nil)
	h.send(bus.OpUpdate, bus.KindPod, "default", "force", deleting(p, 30))
	h.waitLog("force", "main", "got TERM")
	start := time.Now()
	h.send(bus.OpDelete, bus.KindPod, "default", "force", deleting(p, 0))
	waitGone(t, h, "uid-force")
	// At once; 5 s of slack for a loaded machine is far from 30 s.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("force delete took %s, want at once", d)
	}
}

// TestStopDuringGrace: stopping edgenode while a pod is in its 20 s grace
// returns at once and leaves the container running; the next runner adopts
// it and goes on with the deletion.
func TestStopDuringGrace(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("slow", stubborn("main"))
	h.send(bus.OpInsert, bus.KindPod, "default", "slow", p)
	h.waitStatus("slow", 2*time.Minute, running("main"))
	h.waitLog("slow", "main", "ready")
	before := h.runcStates()
	h.serveMeta(nil)
	h.send(bus.OpUpdate, bus.KindPod, "default", "slow", deleting(p, 20))
	h.waitLog("slow", "main", "got TERM")
	// A shorter grace arrives (kubectl delete again with a smaller
	// --grace-period): the saved deadline follows it.
	dir := filepath.Join(PodsDir(h.cfg.DataDir), "uid-slow")
	first := loadKillAt(dir)
	h.send(bus.OpUpdate, bus.KindPod, "default", "slow", deleting(p, 15))
	for deadline := time.Now().Add(time.Minute); !loadKillAt(dir).Before(first.Add(-3 * time.Second)); {
		if time.Now().After(deadline) {
			t.Fatalf("kill deadline %s not moved earlier by a 15 s grace", loadKillAt(dir))
		}
		time.Sleep(10 * time.Millisecond) // the deadline file is the only trace; poll
	}
	start := time.Now()
	h.stop()
	// Run returns at once (it waited for the whole 20 s grace before);
	// 5 s only tells the two apart on a loaded machine.
	d := time.Since(start)
	t.Logf("Run returned %s after cancel", d)
	if d > 5*time.Second {
		t.Errorf("Run returned %s after cancel, want at once", d)
	}
	after := h.runcStates()
	if len(after) != 1 || after[0].Status != "running" || after[0].Pid != before[0].Pid {
		t.Fatalf("after stop runc list = %+v, want the container still running", after)
	}
	killAt := loadKillAt(dir)
	if killAt.IsZero() {
		t.Fatal("no kill deadline saved for the pod being deleted")
	}

	h2 := newHarness(t, h.cfg.DataDir, nil)
	h2.serveMeta(nil)
	var w *worker
	for deadline := time.Now().Add(time.Minute); w == nil; {
		h2.r.mu.Lock()
		w = h2.r.workers["uid-slow"]
		h2.r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("pod being deleted not restored")
		}
		time.Sleep(10 * time.Millisecond) // Run restores with no event to wait for; poll
	}
	if got := w.killDeadline(); !got.Equal(killAt) {
		t.Errorf("restored kill deadline = %s, want the saved %s", got, killAt)
	}
	if got := h2.runcStates(); len(got) != 1 || got[0].Pid != before[0].Pid {
		t.Errorf("after restart runc list = %+v, want pid %d adopted", got, before[0].Pid)
	}
	// The cloud force-deletes it: the adopted container is killed now.
	h2.send(bus.OpDelete, bus.KindPod, "default", "slow", deleting(p, 0))
	waitGone(t, h2, "uid-slow")
	if ids := h2.runcIDs(); len(ids) != 0 {
		t.Errorf("runc list after delete = %v, want none", ids)
	}
}

// TestFinalDeleteSurvivesRestart: with the cloud away the final delete
// fails; the stopped pod stays on disk with its deletionTimestamp, and
// after a restart edged asks again until the cloud answers.
func TestFinalDeleteSurvivesRestart(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("orphan", sh("main", "exec sleep 1000"))
	h.send(bus.OpInsert, bus.KindPod, "default", "orphan", p)
	h.waitStatus("orphan", 2*time.Minute, running("main"))
	away := func(req bus.Message) bus.Message {
		return req.ErrorResp(bus.ModuleMeta, "failed to process remote: not connected")
	}
	f := h.serveMeta(away)
	h.send(bus.OpUpdate, bus.KindPod, "default", "orphan", deleting(p, 1))
	f.waitDelete(t, 2*time.Minute)
	f.waitDelete(t, 2*time.Minute) // asked again
	if ids := h.runcIDs(); len(ids) != 0 {
		t.Errorf("runc list while the cloud is away = %v, want none", ids)
	}
	h.stop()
	dir := filepath.Join(PodsDir(h.cfg.DataDir), "uid-orphan")
	if _, err := os.Stat(filepath.Join(dir, "pod.json")); err != nil {
		t.Fatalf("stored pod of the deletion: %v", err)
	}

	h2 := newHarness(t, h.cfg.DataDir, nil)
	f2 := h2.serveMeta(nil)
	del := f2.waitDelete(t, 2*time.Minute)
	if string(del.Content) != `{"gracePeriodSeconds":0,"preconditions":{"uid":"uid-orphan"}}` {
		t.Errorf("final delete after restart = %s", del.Content)
	}
	waitGone(t, h2, "uid-orphan")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("pod dir after the cloud's OK: %v, want gone", err)
	}
}
