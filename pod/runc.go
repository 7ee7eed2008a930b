package pod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// runtime drives the OCI runtime binary (runc; crun takes the same
// arguments). Every call is a short-lived process: nothing of ours stays
// beside a running container.
type ociRuntime struct {
	bin  string // path of runc
	root string // --root: runc's state dir
	// slots bounds the lifecycle calls (run, state, list, kill, delete)
	// that run at once (runcSlots); nil: no bound. Exec sessions and
	// probes, which may last, are not counted.
	slots chan struct{}
}

// runcSlots is how many lifecycle calls of runc run at once. On a
// one-core board more only share the core, and each runc holds 8 MB or
// more while it runs. (A call holds no OS thread while its runc runs:
// waitCmd waits in the netpoller.)
const runcSlots = 2

// newOCIRuntime returns the runtime of runc at bin with its state in root,
// its lifecycle calls bounded by runcSlots.
func newOCIRuntime(bin, root string) *ociRuntime {
	return &ociRuntime{bin: bin, root: root, slots: make(chan struct{}, runcSlots)}
}

// take waits for a slot for a lifecycle call; the caller calls the
// returned func when its runc has exited.
func (r *ociRuntime) take(ctx context.Context) (func(), error) {
	if r.slots == nil {
		return func() {}, nil
	}
	select {
	case r.slots <- struct{}{}:
		return func() { <-r.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *ociRuntime) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
}

// output runs a runc subcommand and returns its stdout; stderr becomes the
// error text.
func (r *ociRuntime) output(ctx context.Context, args ...string) ([]byte, error) {
	done, err := r.take(ctx)
	if err != nil {
		return nil, fmt.Errorf("pod: runc %s: %w", args[0], err)
	}
	defer done()
	var out, errb bytes.Buffer
	c := r.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &errb
	if err := runWait(c); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.Bytes(), fmt.Errorf("pod: runc %s: %s", args[0], lastLine(msg))
	}
	return out.Bytes(), nil
}

// run creates and starts a container detached: the container's stdin is
// in (its end of its stdin FIFO, for a container with stdin: true) or
// /dev/null when in is nil, and its stdout and stderr are out and errf (the
// container's ends of its FIFOs, relay.go), so runc exits at once and the container
// writes on to edgenode's relay, or to the pipe while edgenode is away.
// The container's init process is then a child of the nearest subreaper
// (edgenode).
func (r *ociRuntime) run(ctx context.Context, id, bundle string, in, out, errf *os.File) (int, error) {
	pidFile := bundle + "/pid"
	runcLog := bundle + "/runc.log"
	_ = os.Remove(runcLog)
	// runc run --detach without a terminal hands its own stdio to the
	// container, so these must be files (a pipe of os/exec would keep this
	// call waiting for as long as the container runs). runc's own errors
	// go to --log; its last words also reach stderr, so they land in the
	// container's log too.
	c := exec.CommandContext(ctx, r.bin, "--root", r.root, "--log", runcLog, "--log-format", "json",
		"run", "--detach", "--no-new-keyring", "--pid-file", pidFile, "--bundle", bundle, id)
	c.Stdout, c.Stderr = out, errf
	if in != nil {
		c.Stdin = in
	}
	done, err := r.take(ctx)
	if err != nil {
		return 0, fmt.Errorf("pod: runc run %s: %w", id, err)
	}
	err = runWait(c)
	done()
	if err != nil {
		return 0, fmt.Errorf("pod: runc run %s: %s", id, runcError(runcLog, err))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("pod: runc run %s: pid file: %w", id, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		return 0, fmt.Errorf("pod: runc run %s: pid file %q", id, b)
	}
	return pid, nil
}

// runcError returns the last error runc logged, or err.
func runcError(file string, err error) string {
	b, rerr := os.ReadFile(file)
	if rerr != nil {
		return err.Error()
	}
	msg := err.Error()
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			msg = e.Msg
		}
	}
	return msg
}

// exists reports whether runc has state for id (a created or stopped
// container), without running runc.
func (r *ociRuntime) exists(id string) bool {
	_, err := os.Stat(filepath.Join(r.root, id))
	return err == nil
}

func (r *ociRuntime) list(ctx context.Context) ([]ociState, error) {
	b, err := r.output(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var out []ociState
	if len(bytes.TrimSpace(b)) == 0 || string(bytes.TrimSpace(b)) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("pod: runc list: %w", err)
	}
	return out, nil
}

func (r *ociRuntime) kill(ctx context.Context, id string, sig syscall.Signal) error {
	_, err := r.output(ctx, "kill", id, fmt.Sprint(int(sig)))
	return err
}

// remove deletes the container, killing it if it still runs.
func (r *ociRuntime) remove(ctx context.Context, id string) error {
	_, err := r.output(ctx, "delete", "--force", id)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	return err
}

// exec runs args in the container and returns the exit code and combined
// output (capped at 10 KiB). A timeout gives an error.
func (r *ociRuntime) exec(ctx context.Context, id string, args []string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	c := r.cmd(ctx, append([]string{"exec", id}, args...)...)
	c.Stdout, c.Stderr = &capped{b: &out, n: 10 << 10}, &capped{b: &out, n: 10 << 10}
	err := runWait(c)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, out.Bytes(), fmt.Errorf("pod: exec %s: timed out after %s", id, timeout)
	case errors.As(err, &ee):
		return ee.ExitCode(), out.Bytes(), nil
	case err != nil:
		return -1, out.Bytes(), fmt.Errorf("pod: exec %s: %w", id, err)
	}
	return 0, out.Bytes(), nil
}

type capped struct {
	b *bytes.Buffer
	n int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.n - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	// runc logs as logfmt: keep the msg when there is one.
	if i := strings.Index(s, `msg="`); i >= 0 {
		m := s[i+5:]
		if j := strings.LastIndexByte(m, '"'); j >= 0 {
			return strings.ReplaceAll(m[:j], `\"`, `"`)
		}
	}
	return s
}
