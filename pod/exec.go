package pod

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"

	"github.com/moby/spdystream"
)

// Exec and attach as the kubelet serves them (Kubernetes v1.32
// pkg/kubelet/server/server.go getExec, getAttach): the request is checked
// and the pod looked up first, so those errors are ordinary HTTP
// responses with the kubelet's status and words; then the connection is
// upgraded (spdy.go) and the command runs with runc exec (exec_linux.go)
// or the container's output is followed (attach).

// parseExecOptions reads the kubelet's query: input, output, error and
// tty are "1" (the API server's streamParams, pkg/registry/core/pod); any
// value strconv.ParseBool takes is accepted, others are an error. tty
// with error drops error, as remotecommand.NewOptions does.
func parseExecOptions(q url.Values) (execOptions, error) {
	var o execOptions
	for _, f := range []struct {
		key string
		v   *bool
	}{{"input", &o.stdin}, {"output", &o.stdout}, {"error", &o.stderr}, {"tty", &o.tty}} {
		s := q.Get(f.key)
		if s == "" {
			continue
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return o, fmt.Errorf("%s: %q is not a boolean", f.key, s)
		}
		*f.v = b
	}
	if o.tty && o.stderr {
		o.stderr = false
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, fmt.Errorf("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// target finds the running container of an exec or attach request, or
// answers the request with the kubelet's error and returns nil.
func (k *kubeletServer) target(rw http.ResponseWriter, req *http.Request, attach bool) (*worker, string) {
	ns, name, container := req.PathValue("ns"), req.PathValue("pod"), req.PathValue("container")
	w := k.r.worker(ns, name)
	if w == nil || (req.PathValue("uid") != "" && req.PathValue("uid") != w.uid) {
		textError(rw, http.StatusNotFound, "pod does not exist")
		return nil, ""
	}
	p := w.snapshot()
	// The kubelet looks among running containers only (GetPods(all=false)
	// in findContainer), so a stopped one is "not found" too; the runtime
	// errors come back as 500.
	if !hasContainer(&p, container) || !w.running(container) {
		msg := fmt.Sprintf("container not found (%q)", container) // Kubelet.GetExec
		if attach {
			msg = fmt.Sprintf("container %s not found in pod %s_%s", container, name, ns) // Kubelet.GetAttach
		}
		textError(rw, http.StatusInternalServerError, msg)
		return nil, ""
	}
	return w, container
}

// serveExec is the kubelet's getExec.
func (k *kubeletServer) serveExec(rw http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	if len(q["command"]) == 0 {
		textError(rw, http.StatusBadRequest, "command is required")
		return
	}
	// The client closing the connection ends the command; so does
	// RemoveConnect, through the request's context.
	s := k.open(rw, req, false)
	if s == nil {
		return
	}
	defer s.close()
	cmd := q["command"]
	code, err := k.r.rt.execStream(s.ctx, s.w.containerID(s.container), cmd, s.rc.stdio(s.o), s.w.dir)
	if err != nil {
		err = fmt.Errorf("error executing command in container: %w", err)
		k.r.log.Info("exec failed", "pod", s.w.key(), "container", s.container, "err", err)
	}
	_ = s.rc.writeStatus(exitStatus(code, cmd, err))
}

// remoteSession is an exec or attach request past its checks: the pod's
// worker, the container, the options and the upgraded connection, with a
// context that ends when the client goes away or the tunnel ends it.
type remoteSession struct {
	w         *worker
	container string
	o         execOptions
	rc        *remoteConn
	ctx       context.Context
	close     func()
}

// open checks an exec or attach request (options, pod, container,
// protocol), answers it with the kubelet's error when it fails, and
// upgrades the connection; nil when the request was answered.
func (k *kubeletServer) open(rw http.ResponseWriter, req *http.Request, attach bool) *remoteSession {
	o, err := parseExecOptions(req.URL.Query())
	if err != nil {
		textError(rw, http.StatusBadRequest, err.Error())
		return nil
	}
	w, container := k.target(rw, req, attach)
	if w == nil {
		return nil
	}
	proto, ok := negotiate(rw, req)
	if !ok {
		return nil
	}
	rc, err := upgrade(rw, req, proto, o)
	if err != nil {
		k.r.log.Debug("upgrade failed", "pod", w.key(), "attach", attach, "err", err)
		return nil
	}
	ctx, cancel := rc.context(req.Context())
	return &remoteSession{w: w, container: container, o: o, rc: rc, ctx: ctx,
		close: func() { cancel(); rc.Close() }}
}

// serveAttach is the kubelet's getAttach: the container's output from now
// on, until the container stops or the client goes away. Input goes to the
// stdin FIFO of a container with stdin: true and is dropped for others, as
// a runtime does for a container without stdin. Containers have no
// terminal, so resizes are ignored.
func (k *kubeletServer) serveAttach(rw http.ResponseWriter, req *http.Request) {
	// The client closing its side ends the attach; so does RemoveConnect,
	// through the request's context.
	s := k.open(rw, req, true)
	if s == nil {
		return
	}
	defer s.close()
	w, container, rc, ctx := s.w, s.container, s.rc, s.ctx
	// Input goes in once the output is followed: what the container
	// answers to it comes after that place, so the client sees it.
	following := make(chan struct{})
	follows := sync.OnceFunc(func() { close(following) })
	if rc.stdin != nil {
		in := w.stdinOf(container)
		rc.run(func() {
			<-following
			if in == nil {
				_, _ = io.Copy(io.Discard, rc.stdin)
				return
			}
			defer in.Close()
			_, _ = io.Copy(in, rc.stdin)
		})
	}
	if rc.resize != nil {
		rc.run(func() { readResizes(rc.resize, func(termSize) {}) })
	}
	var out, errOut io.Writer
	if rc.stdout != nil {
		out = rc.stdout
	}
	if rc.stderr != nil {
		errOut = rc.stderr
	}
	w.followOutput(ctx, container, out, errOut, follows)
	follows() // the output had ended: nothing to wait for
	_ = rc.writeStatus(exitStatus(0, nil, nil))
}

// stdinOf opens the stdin FIFO of a container with stdin: true for
// writing; nil for a container without stdin, whose input is dropped as
// the kubelet drops it. The open does not block: the container holds the
// FIFO's other end while it runs.
func (w *worker) stdinOf(container string) *os.File {
	p := w.snapshot()
	for _, c := range p.Spec.Containers {
		if c.Name == container && c.Stdin {
			f, err := openFifoInput(w.output(container).stdinPath())
			if err != nil {
				w.r.log.Debug("no stdin to attach to", "pod", w.key(), "container", container, "err", err)
				return nil
			}
			return f
		}
	}
	return nil
}

// followOutput writes what the container prints from now on, its stdout
// to out and its stderr to errOut (either may be nil: that stream is
// dropped), until its output ends (it stopped) or ctx ends. following
// runs, maybe more than once, when the place to follow from is fixed. The
// lines come from the container's CRI log records, so this is the one
// place attach knows the log format.
func (w *worker) followOutput(ctx context.Context, container string, out, errOut io.Writer, following func()) {
	q := logQuery{follow: true, tail: 0}
	var line []byte
	_ = w.output(container).readTo(ctx, &logWriter{q: q, each: func(s logStream, text []byte, partial bool) error {
		dst := out
		if s == stderr {
			dst = errOut
		}
		if dst == nil {
			return nil
		}
		line = append(line[:0], text...)
		if !partial {
			line = append(line, '\n') // the record's line ended there
		}
		_, err := dst.Write(line)
		return err
	}}, func() error { following(); return nil })
}

// running reports whether container is running, as the pod's last status
// says.
func (w *worker) running(container string) bool {
	p := w.snapshot()
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if cs.Name == container {
			return cs.State.Running != nil
		}
	}
	return false
}

// stdio are the streams of a command: nil for one not asked for.
type stdio struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	tty            bool
	resize         io.Reader // JSON sizes, tty only
	// stopIn ends reads of stdin and resize, once the command is gone.
	stopIn func()
}

func (rc *remoteConn) stdio(o execOptions) stdio {
	s := stdio{tty: o.tty}
	s.stopIn = func() {
		for _, st := range []*spdystream.Stream{rc.stdin, rc.resize} {
			if st != nil {
				_ = st.Reset()
			}
		}
	}
	if rc.stdin != nil {
		s.stdin = rc.stdin
	}
	if rc.stdout != nil {
		s.stdout = rc.stdout
	}
	if rc.stderr != nil {
		s.stderr = rc.stderr
	}
	if rc.resize != nil && o.tty {
		s.resize = rc.resize
	}
	return s
}
