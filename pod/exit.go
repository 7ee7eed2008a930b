package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// How container exits are seen: each running container's init process is
// held by a pidfd (exit_linux.go), and one goroutine per container waits in
// Go's netpoller for it to become readable, which it does when the process
// exits; the goroutine then wakes the pod's worker, which reaps the
// process (Wait4: it is our child, edgenode being the child subreaper) and
// records the exit code. Nothing runs on a timer while the containers
// run. A container adopted from an earlier run of edgenode is not our
// child: its pidfd says that it exited, not how (exit code unknown).

var (
	// errPidGone: the pid is not, or no longer, the container's process.
	errPidGone = errors.New("pod: container process gone")
	// errNoPidfd: pidfds cannot be used here; exits are polled.
	errNoPidfd = errors.New("pod: no pidfd")
)

// exitPollInterval is how often the worker looks for the exit of a
// container it holds no pidfd for: a kernel before 5.3 has no pidfd_open,
// or a seccomp filter refuses it.
const exitPollInterval = 5 * time.Second

// watch opens a pidfd for the running container st, if it has none yet,
// and starts the goroutine that wakes the worker when st exits. Called by
// the worker goroutine; the goroutine ends when unwatch closes the pidfd.
func (w *worker) watch(st *ctr) {
	if st.pidfd != nil || st.pidGone || st.polled || st.pid <= 0 {
		return
	}
	var f *os.File
	err := errNoPidfd
	if !w.r.pidfdOff {
		f, err = openPidfd(w.r.cfg.RuntimeRoot, st.id, st.pid)
	}
	switch {
	case errors.Is(err, errPidGone):
		st.pidGone = true
		return
	case err != nil:
		st.polled = true
		w.r.noPidfd(err)
		w.wakeAt(time.Now().Add(exitPollInterval)) // then observe polls again
		return
	}
	st.pidfd = f
	w.watchers.Add(1)
	go func() {
		defer w.watchers.Done()
		if waitPidfd(f) == nil {
			w.poke(false)
		}
	}()
}

// unwatch closes the pidfd of st, which ends its goroutine.
func (st *ctr) unwatch() {
	if st.pidfd != nil {
		st.pidfd.Close()
		st.pidfd = nil
	}
	st.pidGone, st.polled = false, false
}

// gone reports whether the running container st, which is not our child,
// has exited: by its pidfd, which a reused pid cannot fool, or with no
// pidfd by whether a process of its pid exists.
func (st *ctr) gone() bool {
	switch {
	case st.pidGone:
		return true
	case st.pidfd != nil:
		return fileExited(st.pidfd)
	}
	return !alive(st.pid)
}

// noPidfd logs, once, that exits are polled.
func (r *Runner) noPidfd(err error) {
	r.pidfdOnce.Do(func() {
		r.log.Warn("container exits are polled", "every", exitPollInterval, "err", err)
	})
}

// wakeAt asks for a sync at t: the worker sleeps until the earliest such
// time of its last sync, an event, or the safety resync (SyncInterval).
// Every step that defers work to a time (a restart back-off, a probe's
// period, a retry) calls it. Called by the worker goroutine.
func (w *worker) wakeAt(t time.Time) {
	if t.IsZero() {
		return
	}
	if w.due.IsZero() || t.Before(w.due) {
		w.due = t
	}
}

// sleepFor is how long the worker sleeps after a sync.
func (w *worker) sleepFor() time.Duration {
	d := w.r.cfg.SyncInterval
	if !w.due.IsZero() {
		d = min(d, max(time.Until(w.due), 0))
	}
	return d
}

// runcStartTime reads the start time runc saved for the init process of
// container id (state.json under the runtime root: init_process_pid and
// init_process_start, in clock ticks since boot). ok is false when there
// is no such record for pid (another runtime, such as crun, keeps its
// state elsewhere): then runc's own list, which checks the same, is
// trusted.
func runcStartTime(root, id string, pid int) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err != nil {
		return 0, false
	}
	return parseRuncState(b, pid)
}

// parseRuncState reads init_process_start from runc's state.json b if its
// init_process_pid is pid.
func parseRuncState(b []byte, pid int) (uint64, bool) {
	var s struct {
		Pid   int             `json:"init_process_pid"`
		Start json.RawMessage `json:"init_process_start"`
	}
	if json.Unmarshal(b, &s) != nil || s.Pid != pid {
		return 0, false
	}
	// A number in runc 1.x; some older versions wrote a string.
	v, err := strconv.ParseUint(strings.Trim(string(s.Start), `"`), 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// parseStartTime reads starttime from the text of /proc/<pid>/stat. The
// command name (field 2) may hold spaces and parentheses, so the fields
// are counted from its last closing parenthesis.
func parseStartTime(b []byte) (uint64, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("pod: /proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, errors.New("pod: /proc stat: too few fields")
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("pod: /proc stat: starttime: %w", err)
	}
	return v, nil
}
