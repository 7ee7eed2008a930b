package pod

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgenode/bus"
)

// containerPid returns the init pid runc lists for container id.
func (h *harness) containerPid(id string) int {
	h.t.Helper()
	for _, s := range h.runcStates() {
		if s.ID == id && s.Pid > 0 {
			return s.Pid
		}
	}
	h.t.Fatalf("runc list has no running %s: %+v", id, h.runcStates())
	return 0
}

// idleSyncs returns how many times the runner's workers synced over d.
func (h *harness) idleSyncs(d time.Duration) int64 {
	before := h.r.syncs.Load()
	time.Sleep(d)
	return h.r.syncs.Load() - before
}

// pidfds counts this process's open pidfds.
func pidfds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.Contains(l, "pidfd") {
			n++
		}
	}
	return n
}

func terminated(code int32) func(PodStatus) bool {
	return func(s PodStatus) bool {
		return len(s.ContainerStatuses) == 1 && s.ContainerStatuses[0].State.Terminated != nil &&
			s.ContainerStatuses[0].State.Terminated.ExitCode == code
	}
}

// TestExitSeenWithoutPolling: the harness never resyncs (SyncInterval 1 h),
// so an idle pod does not sync at all, and a container's exit reaches its
// status only through the container's pidfd waking the worker.
func TestExitSeenWithoutPolling(t *testing.T) {
	h := newHarness(t, "", nil)
	// sh as the container's pid 1 gets a signal from outside only for a
	// trapped one: USR1 makes it exit 7.
	p := testPod("quiet", sh("main", "trap 'exit 7' USR1; while true; do sleep 1000 & wait $!; done"))
	p.Spec.RestartPolicy = RestartNever
	h.send(bus.OpInsert, bus.KindPod, "default", "quiet", p)
	h.waitStatus("quiet", 2*time.Minute, running("main"))
	pid := h.containerPid("uid-quiet_main")
	if n := h.idleSyncs(2 * time.Second); n != 0 {
		t.Errorf("worker synced %d times in 2 s with nothing to do, want 0", n)
	}
	before := h.r.syncs.Load()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("quiet", time.Minute, terminated(7))
	t.Logf("exit in the status %s after the signal", time.Since(killed))
	if cs := st.ContainerStatuses[0]; st.Phase != "Failed" || cs.State.Terminated.Reason != "Error" {
		t.Errorf("status after exit 7 = %s, %+v, want Failed, reason Error", st.Phase, cs.State.Terminated)
	}
	// The exit sync, and at most the restart back-off's wake-up (no
	// restart with policy Never) and a wake-up left from the signal.
	if n := h.r.syncs.Load() - before; n < 1 || n > 3 {
		t.Errorf("%d syncs from the exit to its status, want 1 to 3", n)
	}
	if n := h.idleSyncs(time.Second); n != 0 {
		t.Errorf("worker synced %d times in 1 s after the exit, want 0", n)
	}
}

// TestAdoptedExitSeen: a container adopted by a new runner on the same dirs
// is watched by a pidfd too, and its exit shows with no resync.
func TestAdoptedExitSeen(t *testing.T) {
	h := newHarness(t, "", nil)
	p := testPod("adopted", sh("main", "exec sleep 1000"))
	p.Spec.RestartPolicy = RestartNever
	h.send(bus.OpInsert, bus.KindPod, "default", "adopted", p)
	h.waitStatus("adopted", 2*time.Minute, running("main"))
	pid := h.containerPid("uid-adopted_main")
	h.stop()
	if n := pidfds(t); n != 0 {
		t.Errorf("%d pidfds open after the runner stopped, want 0", n)
	}
	h2 := newHarness(t, h.cfg.DataDir, nil)
	h2.waitStatus("adopted", 2*time.Minute, running("main"))
	if got := h2.containerPid("uid-adopted_main"); got != pid {
		t.Fatalf("adopted pid = %d, want %d unchanged", got, pid)
	}
	if n := pidfds(t); n != 1 {
		t.Errorf("%d pidfds open with one adopted container, want 1", n)
	}
	if n := h2.idleSyncs(time.Second); n != 0 {
		t.Errorf("worker synced %d times in 1 s with nothing to do, want 0", n)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// This test process is still the container's reaper, so the exit
	// code is known (137: SIGKILL); a new edgenode process would report
	// 255, Unknown.
	h2.waitStatus("adopted", time.Minute, terminated(137))
	if n := pidfds(t); n != 0 {
		t.Errorf("%d pidfds open after the exit, want 0", n)
	}
}

// TestStatusNotResentWhenIdle: a pod whose state does not change sends no
// status, however often its worker resyncs.
func TestStatusNotResentWhenIdle(t *testing.T) {
	h := newHarness(t, "", func(c *Config) { c.SyncInterval = 20 * time.Millisecond })
	p := testPod("steady", sh("main", "exec sleep 1000"))
	h.send(bus.OpInsert, bus.KindPod, "default", "steady", p)
	h.waitStatus("steady", 2*time.Minute, running("main"))
	before := h.r.syncs.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sent := 0
	for {
		m, err := h.b.Receive(ctx, bus.ModuleMeta)
		if err != nil {
			break
		}
		if strings.Contains(m.Route.Resource, "/podpatch/") {
			sent++
			t.Logf("status sent while idle: %s", m.Content)
		}
	}
	syncs := h.r.syncs.Load() - before
	if syncs < 5 {
		t.Fatalf("%d syncs in 2 s with a 20 ms resync: the test shows nothing", syncs)
	}
	if sent != 0 {
		t.Errorf("%d status messages over %d idle syncs, want 0", sent, syncs)
	}
}

// TestExitPolledWithoutPidfd: on a kernel without pidfd_open the worker
// polls a running container's exit every exitPollInterval instead.
func TestExitPolledWithoutPidfd(t *testing.T) {
	h := newHarness(t, "", nil)
	// Run has started; the flag is read by workers only, and the pod
	// message below starts the first.
	h.r.pidfdOff = true
	p := testPod("polled", sh("main", "exec sleep 1000"))
	p.Spec.RestartPolicy = RestartNever
	h.send(bus.OpInsert, bus.KindPod, "default", "polled", p)
	h.waitStatus("polled", 2*time.Minute, running("main"))
	if n := pidfds(t); n != 0 {
		t.Errorf("%d pidfds open with pidfds turned off, want 0", n)
	}
	if err := syscall.Kill(h.containerPid("uid-polled_main"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := h.r.syncs.Load()
	h.waitStatus("polled", time.Minute, terminated(137))
	if n := h.r.syncs.Load() - before; n < 1 || n > 3 {
		t.Errorf("%d syncs until the exit showed, want 1 to 3 (one poll every %s)", n, exitPollInterval)
	}
}
