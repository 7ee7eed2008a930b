package pod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// outputGrace is how long the output of a command is still read after the
// command has exited: a background child that keeps stdout open must not
// hold the connection.
const outputGrace = 2 * time.Second

// errExitUnknown: the command ran detached (tty) and edgenode is not its
// subreaper, so its exit code cannot be collected.
var errExitUnknown = errors.New("exit code unknown: edgenode is not a child subreaper")

// execStream runs args in container id with the streams of io and returns
// the command's exit code. Without a tty, runc exec runs in the
// foreground with pipes and its exit status is the command's (runc gives
// 128+n for a signal). With a tty, runc exec --detach --tty hands the
// terminal's master over a console socket and exits; the command is then
// our child (we are the subreaper of detached processes) and waited for
// by pid. When ctx ends the command is killed, as the CRI runtimes do
// when the client goes away. Scratch files live in a directory under dir.
func (r *ociRuntime) execStream(ctx context.Context, id string, args []string, io stdio, dir string) (int, error) {
	tmp, err := execDir(dir)
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(tmp)
	if io.tty {
		return r.execTTY(ctx, id, args, io, tmp)
	}
	return r.execPipes(ctx, id, args, io, tmp)
}

// execDir makes a private scratch directory for one exec under dir, or
// under the system's temporary directory when dir is too long for the
// console socket's path (108 bytes with the socket's name).
func execDir(dir string) (string, error) {
	if len(dir) > 80 {
		dir = ""
	}
	d, err := os.MkdirTemp(dir, "exec-")
	if err != nil {
		return "", fmt.Errorf("pod: exec: %w", err)
	}
	return d, nil
}

func (r *ociRuntime) execCmd(tmp string, flags []string, id string, args []string) *exec.Cmd {
	a := append([]string{"--root", r.root, "--log", filepath.Join(tmp, "runc.log"), "--log-format", "json",
		"exec", "--pid-file", filepath.Join(tmp, "pid")}, flags...)
	return exec.Command(r.bin, append(append(a, id), args...)...)
}

// execPipes runs the command in the foreground with a pipe per stream.
// It is one function because the order matters and reads top to bottom:
// pipes, start, close the child's ends, wait, drain, stop stdin.
func (r *ociRuntime) execPipes(ctx context.Context, id string, args []string, s stdio, tmp string) (int, error) {
	c := r.execCmd(tmp, nil, id, args)
	var files []*os.File // every pipe end, closed on return
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	pipe := func() (*os.File, *os.File, error) {
		pr, pw, err := os.Pipe()
		if err == nil {
			files = append(files, pr, pw)
		}
		return pr, pw, err
	}
	var copiers, stdinDone sync.WaitGroup
	var stdinW *os.File
	if s.stdin != nil {
		pr, pw, err := pipe()
		if err != nil {
			return -1, err
		}
		c.Stdin, stdinW = pr, pw
	}
	outs := []struct {
		w   io.Writer
		set func(*os.File)
	}{{s.stdout, func(f *os.File) { c.Stdout = f }}, {s.stderr, func(f *os.File) { c.Stderr = f }}}
	var readers []*os.File
	for _, o := range outs {
		if o.w == nil {
			continue
		}
		pr, pw, err := pipe()
		if err != nil {
			return -1, err
		}
		o.set(pw)
		readers = append(readers, pr)
		copiers.Add(1)
		go func(w io.Writer) {
			defer copiers.Done()
			_, _ = io.Copy(w, pr)
		}(o.w)
	}
	if err := c.Start(); err != nil {
		for _, f := range files {
			f.Close()
		}
		copiers.Wait()
		return -1, fmt.Errorf("pod: exec: %w", err)
	}
	// Only runc keeps the child ends now, so EOF comes when the command
	// and runc are gone.
	for _, f := range []any{c.Stdin, c.Stdout, c.Stderr} {
		if f, ok := f.(*os.File); ok {
			f.Close()
		}
	}
	if stdinW != nil {
		stdinDone.Add(1)
		go func() {
			defer stdinDone.Done()
			_, _ = io.Copy(stdinW, s.stdin)
			stdinW.Close() // EOF for the command: the client closed stdin
		}()
	}
	stop := context.AfterFunc(ctx, func() {
		if !killExec(tmp) {
			_ = c.Process.Kill() // not started yet: stop runc
		}
	})
	err := waitCmd(c)
	stop()
	waitGrace(&copiers, outputGrace, readers)
	if s.stopIn != nil {
		s.stopIn()
	}
	stdinDone.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		if msg, failed := runcFailed(tmp); failed {
			return -1, errors.New(msg)
		}
		return ee.ExitCode(), nil
	case err != nil:
		return -1, fmt.Errorf("pod: runc exec: %w", err)
	}
	return 0, nil
}

// waitGrace waits for wg, at most d; then it closes files to end the
// readers and waits for them.
func waitGrace(wg *sync.WaitGroup, d time.Duration, files []*os.File) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for _, f := range files {
			f.Close()
		}
		<-done
	}
}

// killExec kills the command whose pid runc wrote in tmp. runc then
// reaps it and exits.
func killExec(tmp string) bool {
	pid := readPid(tmp)
	return pid > 0 && unix.Kill(pid, unix.SIGKILL) == nil
}

func readPid(tmp string) int {
	b, err := os.ReadFile(filepath.Join(tmp, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// runcFailed reports runc's own error (not the command's), from its log.
func runcFailed(tmp string) (string, bool) {
	const none = "\x00"
	msg := runcError(filepath.Join(tmp, "runc.log"), errors.New(none))
	return msg, msg != none
}

// execTTY runs the command detached on a terminal and relays it: stdin
// and resizes in, the terminal's output out, until the command exits.
func (r *ociRuntime) execTTY(ctx context.Context, id string, args []string, s stdio, tmp string) (int, error) {
	master, pid, err := r.startTTY(id, args, tmp)
	if err != nil {
		return -1, err
	}
	defer master.Close()

	var side sync.WaitGroup // stdin and resize
	if s.resize != nil {
		side.Add(1)
		go func() {
			defer side.Done()
			readResizes(s.resize, func(sz termSize) { setWinsize(master, sz) })
		}()
	}
	if s.stdin != nil {
		side.Add(1)
		go func() {
			defer side.Done()
			_, _ = io.Copy(master, s.stdin)
		}()
	}
	var out sync.WaitGroup
	out.Add(1)
	go func() {
		defer out.Done()
		var w io.Writer = io.Discard
		if s.stdout != nil {
			w = s.stdout
		}
		// The master reads EIO once the terminal's last user is gone.
		_, _ = io.Copy(w, master)
	}()
	stop := context.AfterFunc(ctx, func() { _ = unix.Kill(pid, unix.SIGKILL) })
	code, err := waitPid(pid)
	if errors.Is(err, errExitUnknown) {
		// Not our child: the end of its output is the end we can see.
		waitCtx(ctx, &out)
	}
	stop()
	waitGrace(&out, outputGrace, []*os.File{master})
	master.Close()
	if s.stopIn != nil {
		s.stopIn()
	}
	side.Wait()
	return code, err
}

// startTTY starts the command detached on a terminal whose master runc
// sends over a console socket (runc exec --console-socket; the file
// descriptor comes in an SCM_RIGHTS message), and returns the master and
// the command's pid.
func (r *ociRuntime) startTTY(id string, args []string, tmp string) (*os.File, int, error) {
	sock := filepath.Join(tmp, "tty.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, 0, fmt.Errorf("pod: exec: console socket: %w", err)
	}
	defer ln.Close()
	type recv struct {
		f   *os.File
		err error
	}
	got := make(chan recv, 1)
	go func() {
		f, err := receiveConsole(ln)
		got <- recv{f, err}
	}()
	c := r.execCmd(tmp, []string{"--detach", "--tty", "--console-socket", sock}, id, args)
	var errb bytes.Buffer
	c.Stderr = &capped{b: &errb, n: 4 << 10}
	if err := runWait(c); err != nil {
		ln.Close()
		if m := <-got; m.f != nil {
			m.f.Close()
		}
		if msg, failed := runcFailed(tmp); failed {
			return nil, 0, errors.New(msg)
		}
		return nil, 0, fmt.Errorf("pod: runc exec: %s", lastLine(errb.String()+" "+err.Error()))
	}
	// runc has sent the master before it exited.
	_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
	m := <-got
	pid := readPid(tmp)
	if m.err != nil || pid <= 0 {
		if pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
			_, _ = waitPid(pid)
		}
		if m.f != nil {
			m.f.Close()
		}
		return nil, 0, fmt.Errorf("pod: exec: no terminal from runc (pid %d): %v", pid, m.err)
	}
	return m.f, pid, nil
}

// waitCtx waits for wg or ctx.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// receiveConsole accepts runc's connection on ln and returns the file
// descriptor it sends.
func receiveConsole(ln *net.UnixListener) (*os.File, error) {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096) // runc sends the terminal's name with it
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	if len(fds) == 0 {
		return nil, errors.New("console socket: no file descriptor")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	// Non-blocking, so that Close ends a pending Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), "ptmx"), nil
}

// setWinsize sets the terminal size (TIOCSWINSZ on the master; the
// command gets SIGWINCH). Control keeps the descriptor non-blocking, which
// Fd would not.
func setWinsize(master *os.File, sz termSize) {
	rc, err := master.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	})
}

// waitPid waits for our child pid and returns its exit code (128+n for
// signal n, as a shell reports it). It first looks without waiting: a pid
// that is not our child is errExitUnknown at once, and a child still
// running is waited for in the netpoller (awaitExit), holding no thread.
func waitPid(pid int) (int, error) {
	flags := unix.WNOHANG
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, flags, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return -1, errExitUnknown
		case err != nil:
			return -1, fmt.Errorf("pod: exec: wait: %w", err)
		case got == 0:
			awaitExit(pid)
			flags = 0
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		case ws.Exited():
			return ws.ExitStatus(), nil
		}
	}
}
