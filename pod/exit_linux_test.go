package pod

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPidfdIdentity opens pidfds on a child process as the runner does on
// a container's init: checked against a runc state record, woken by the
// exit, ended by Close. It needs no root.
func TestPidfdIdentity(t *testing.T) {
	sleep := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Skipf("sleep missing: %v", err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	cmd := sleep()
	pid := cmd.Process.Pid
	start, err := procStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	record := func(id string, start uint64) {
		os.MkdirAll(filepath.Join(root, id), 0o700)
		b := `{"id":"` + id + `","init_process_pid":` + strconv.Itoa(pid) + `,"init_process_start":` + strconv.FormatUint(start, 10) + `}`
		if err := os.WriteFile(filepath.Join(root, id, "state.json"), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	record("same", start)
	record("reused", start+1) // the pid now names another process
	f, err := openPidfd(root, "same", pid)
	if errors.Is(err, errNoPidfd) {
		t.Skipf("no pidfd here: %v", err)
	}
	if err != nil {
		t.Fatalf("openPidfd(same) = %v, want a pidfd", err)
	}
	defer f.Close()
	if fileExited(f) {
		t.Errorf("fileExited(running sleep) = true, want false")
	}
	if g, err := openPidfd(root, "reused", pid); !errors.Is(err, errPidGone) {
		if g != nil {
			g.Close()
		}
		t.Errorf("openPidfd(start time differs) = %v, want errPidGone", err)
	}
	if g, err := openPidfd(root, "unrecorded", pid); err != nil {
		t.Errorf("openPidfd(no runc record) = %v, want runc list trusted", err)
	} else {
		g.Close()
	}
	if _, err := openPidfd(root, "same", 1<<22+7); !errors.Is(err, errPidGone) {
		t.Errorf("openPidfd(no such pid) = %v, want errPidGone", err)
	}

	waited := make(chan error, 1)
	go func() { waited <- waitPidfd(f) }()
	select {
	case err := <-waited:
		t.Fatalf("waitPidfd returned %v while the process runs", err)
	case <-time.After(200 * time.Millisecond):
	}
	cmd.Process.Kill()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("waitPidfd after the exit = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waitPidfd did not return within 30 s of the exit")
	}
	if !fileExited(f) {
		t.Errorf("fileExited(killed sleep) = false, want true")
	}

	// Closing the pidfd ends a wait on a live process.
	other := sleep()
	g, err := openPidfd(root, "unrecorded", other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	go func() { waited <- waitPidfd(g) }()
	g.Close()
	select {
	case err := <-waited:
		if err == nil {
			t.Errorf("waitPidfd after Close = nil, want an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waitPidfd did not return within 30 s of Close")
	}
}

// TestWaitCmdHoldsNoThread: runc calls, CNI plugins and exec sessions
// are waited for in the netpoller (waitCmd). Sixteen children waited for
// at once would hold sixteen OS threads in c.Wait's blocking waitid,
// threads the Go runtime then keeps for good.
func TestWaitCmdHoldsNoThread(t *testing.T) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("no pidfd here: %v", err)
	}
	unix.Close(fd)
	const n = 16
	var cmds []*exec.Cmd
	var ends []*os.File
	for range n {
		// Each child waits for its stdin to close.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() }) // a child left by a skip ends too
		c := exec.Command("cat")
		c.Stdin = r
		if err := c.Start(); err != nil {
			t.Skipf("cat missing: %v", err)
		}
		r.Close()
		cmds, ends = append(cmds, c), append(ends, w)
	}
	before := threads(t)
	errs := make(chan error, n)
	for _, c := range cmds {
		go func() { errs <- waitCmd(c) }()
	}
	time.Sleep(300 * time.Millisecond) // every waiter is waiting
	during := threads(t)
	for _, w := range ends {
		w.Close()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("waitCmd = %v, want the child's clean exit", err)
		}
	}
	if during-before >= n/2 {
		t.Errorf("threads while %d children were waited for: %d, before: %d; want no thread per child", n, during, before)
	}
}

// threads returns the OS threads of this process.
func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// TestWaitPid: the exit code of our child, as a shell reports it, once
// it has exited (waited for in the netpoller while it runs); a pid that
// is not our child is errExitUnknown at once.
func TestWaitPid(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{{"sleep 0.2; exit 7", 7}, {"kill -9 $$", 128 + 9}, {"exit 0", 0}} {
		c := exec.Command("sh", "-c", tc.script)
		if err := c.Start(); err != nil {
			t.Skipf("sh missing: %v", err)
		}
		code, err := waitPid(c.Process.Pid)
		c.Process.Release() // reaped by waitPid
		if err != nil || code != tc.want {
			t.Errorf("waitPid(sh -c %q) = %d, %v; want %d", tc.script, code, err, tc.want)
		}
	}
	if code, err := waitPid(1); !errors.Is(err, errExitUnknown) {
		t.Errorf("waitPid(1) = %d, %v; want errExitUnknown (not our child)", code, err)
	}
}
