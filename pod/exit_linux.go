package pod

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// openPidfd opens a pidfd (Linux 5.3) for the init process of container
// id, pid. The descriptor is non-blocking and registered with Go's
// netpoller, so waitPidfd sleeps in the poller's one epoll wait and an
// idle node never wakes for it.
//
// A pid alone can name another process once the container has exited and
// been reaped (by init, for a container adopted from an earlier run), so
// after opening it the process is checked against runc's record of the
// container: its start time (field 22 of /proc/<pid>/stat) must be the
// one runc saved. The pidfd pins the process from then on. It returns
// errPidGone when pid is not, or no longer, the container's process, and
// errNoPidfd when pidfds cannot be used (old kernel, seccomp): then exits
// are polled.
func openPidfd(root, id string, pid int) (*os.File, error) {
	f, err := pidfdFile(pid)
	if err != nil {
		return nil, err
	}
	if want, ok := runcStartTime(root, id, pid); ok {
		if got, err := procStartTime(pid); err != nil || got != want {
			f.Close()
			return nil, errPidGone
		}
	}
	return f, nil
}

// pidfdFile opens a pidfd for pid, non-blocking and held by Go's
// netpoller. It returns errPidGone when no process has that pid, and
// errNoPidfd when pidfds cannot be used here. PIDFD_NONBLOCK would need
// Linux 5.10; pidfds came with 5.3, so the descriptor is made
// non-blocking after it is opened.
func pidfdFile(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, errPidGone
	case err != nil:
		return nil, fmt.Errorf("%w: pidfd_open: %v", errNoPidfd, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %v", errNoPidfd, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	// A deadline can be set only on a descriptor the netpoller holds:
	// without it waitPidfd could not wait.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: not pollable: %v", errNoPidfd, err)
	}
	return f, nil
}

// waitPidfd blocks until the process of f has exited (nil) or f is closed
// (an error). It reaps nothing.
func waitPidfd(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// Read calls the function, and while it returns false waits for the
	// descriptor to become readable, which a pidfd does when its process
	// exits; closing f ends the wait with an error. A descriptor the
	// netpoller does not hold makes Read fail at once instead of blocking.
	return rc.Read(pidfdExited)
}

// pidfdExited reports whether the process of the pidfd fd has exited (it
// may still wait to be reaped).
func pidfdExited(fd uintptr) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// fileExited is pidfdExited for an open pidfd file.
func fileExited(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	exited := false
	_ = rc.Control(func(fd uintptr) { exited = pidfdExited(fd) })
	return exited
}

// procStartTime returns field 22 (starttime) of /proc/<pid>/stat.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(b)
}

// runWait runs c as c.Run does, with waitCmd.
func runWait(c *exec.Cmd) error {
	if err := c.Start(); err != nil {
		return err
	}
	return waitCmd(c)
}

// waitCmd waits for the started c as c.Wait does, but first waits for
// its process to exit with awaitExit, so that c.Wait reaps at once.
func waitCmd(c *exec.Cmd) error {
	awaitExit(c.Process.Pid)
	return c.Wait()
}

// awaitExit waits in Go's netpoller, on a pidfd, until our child pid has
// exited; a wait for it then reaps at once. A wait alone (os/exec's Wait,
// Wait4) sleeps in a blocking system call, which holds an OS thread for
// as long as the child runs, and the Go runtime keeps every thread it has
// made, with 48 KiB of stacks each: a runc call, a CNI plugin or an exec
// session would each leave one behind. Without pidfds it returns at once.
// The child is not yet reaped, so its pid cannot name another process.
func awaitExit(pid int) {
	f, err := pidfdFile(pid)
	if err != nil {
		return
	}
	_ = waitPidfd(f)
	f.Close()
}
