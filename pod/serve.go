package pod

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Handler returns the kubelet paths the node serves to the cloud through
// KubeEdge's stream tunnel (spec kubeedge-stream sections 3 and 5), like
// the kubelet's read-only server that edgecore runs on 127.0.0.1:10350
// (KubeEdge v1.23.1 vendor/k8s.io/kubernetes/pkg/kubelet/server/server.go):
//
//	GET /containerLogs/{namespace}/{pod}/{container}
//	GET, POST /exec/{namespace}/{pod}[/{uid}]/{container}
//	GET, POST /attach/{namespace}/{pod}[/{uid}]/{container}
//	GET /metrics/resource
//	GET /stats/summary
//
// Exec and attach hijack the connection (an http.Hijacker is required)
// and speak SPDY to the API server (exec.go, spdy.go).
//
// Nothing listens on a port: main hands the handler to the stream module,
// which runs it in process. Errors are plain text with the kubelet's
// status and wording, since the tunnel carries only the body.
//
// Each call returns a new handler; it is safe for concurrent use.
func (r *Runner) Handler() http.Handler {
	k := &kubeletServer{r: r}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", k.serveLogs)
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /exec/{ns}/{pod}/{container}", k.serveExec)
		mux.HandleFunc(m+" /exec/{ns}/{pod}/{uid}/{container}", k.serveExec)
		mux.HandleFunc(m+" /attach/{ns}/{pod}/{container}", k.serveAttach)
		mux.HandleFunc(m+" /attach/{ns}/{pod}/{uid}/{container}", k.serveAttach)
	}
	mux.HandleFunc("GET /metrics/resource", k.serveMetrics)
	mux.HandleFunc("GET /stats/summary", k.serveSummary)
	return mux
}

// kubeletServer serves the kubelet paths of a Runner.
type kubeletServer struct {
	r *Runner

	mu      sync.Mutex
	cpuPrev map[string]cpuPoint // last /stats/summary CPU samples (stats.go)
}

// worker returns the worker of pod ns/name, or nil.
func (r *Runner) worker(ns, name string) *worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		if w.key() == ns+"/"+name && !w.isGone() {
			return w
		}
	}
	return nil
}

// logOptions are the PodLogOptions that edgenode's log files can serve.
type logOptions struct {
	follow     bool
	tailLines  int64 // -1: all
	limitBytes int64 // 0: no limit
}

// errNeedsCRILog: an option that needs per-line timestamps or per-run
// files, which the log format of today (the container's raw stdout and
// stderr appended to one file across restarts) does not have.
var errNeedsCRILog = errors.New("needs the CRI log format, which this node does not write yet")

// parseLogOptions reads the kubelet's query parameters (k8s v1.PodLogOptions;
// "tail" is the old name of tailLines, as in the kubelet's getContainerLogs).
func parseLogOptions(q map[string][]string) (logOptions, error) {
	o := logOptions{tailLines: -1}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var err error
	boolOpt := func(k string) bool {
		v := get(k)
		if v == "" {
			return false
		}
		b, e := strconv.ParseBool(v)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %q is not a boolean", k, v)
		}
		return b
	}
	intOpt := func(k string, min int64) (int64, bool) {
		v := get(k)
		if v == "" {
			return 0, false
		}
		n, e := strconv.ParseInt(v, 10, 64)
		if (e != nil || n < min) && err == nil {
			err = fmt.Errorf("%s: %q is not a number of at least %d", k, v, min)
		}
		return n, true
	}
	o.follow = boolOpt("follow")
	if t := get("tail"); t != "" && t != "all" && get("tailLines") == "" {
		q2 := map[string][]string{"tailLines": {t}}
		for k, v := range q {
			if k != "tail" {
				q2[k] = v
			}
		}
		q = q2
	}
	if n, ok := intOpt("tailLines", 0); ok {
		o.tailLines = n
	}
	o.limitBytes, _ = intOpt("limitBytes", 1)
	if err != nil {
		return o, err
	}
	for _, k := range []string{"timestamps", "previous"} {
		if boolOpt(k) {
			return o, fmt.Errorf("%s %w", k, errNeedsCRILog)
		}
	}
	for _, k := range []string{"sinceSeconds", "sinceTime"} {
		if get(k) != "" {
			return o, fmt.Errorf("%s %w", k, errNeedsCRILog)
		}
	}
	return o, err
}

// serveLogs is the kubelet's getContainerLogs on edgenode's log files.
func (k *kubeletServer) serveLogs(rw http.ResponseWriter, req *http.Request) {
	ns, name, container := req.PathValue("ns"), req.PathValue("pod"), req.PathValue("container")
	opts, err := parseLogOptions(req.URL.Query())
	if err != nil {
		textError(rw, http.StatusBadRequest, "edgenode: "+err.Error())
		return
	}
	w := k.r.worker(ns, name)
	if w == nil {
		// The kubelet's words (server.go getContainerLogs).
		textError(rw, http.StatusNotFound, fmt.Sprintf("pod %q does not exist", name))
		return
	}
	p := w.snapshot()
	if !hasContainer(&p, container) {
		textError(rw, http.StatusNotFound, fmt.Sprintf("container %q not found in pod %q", container, name))
		return
	}
	path := w.logPath(container)
	if _, err := os.Stat(path); err != nil {
		textError(rw, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start", container, name))
		return
	}
	lw := &limitWriter{w: rw, left: opts.limitBytes, on: opts.limitBytes > 0}
	rw.Header().Set("Content-Type", "text/plain")
	off, err := writeLogTail(lw, path, opts.tailLines)
	if err != nil || !opts.follow || lw.full() {
		return
	}
	followLog(req.Context(), lw, path, off, func() bool { return w.running(container) }, lw.full)
}

// textError writes msg as the kubelet does (go-restful WriteError: the
// error's text as the body).
func textError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func hasContainer(p *Pod, name string) bool {
	for _, cs := range [][]Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// running reports whether the container's last status says it runs.
func (w *worker) running(container string) bool {
	p := w.snapshot()
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if cs.Name == container {
			return cs.State.Running != nil
		}
	}
	return false
}

// logFiles lists a log's files, oldest rotated copy first (rotateLogs).
func logFiles(path string) []string {
	var files []string
	for i := 9; i >= 1; i-- {
		if _, err := os.Stat(path + "." + strconv.Itoa(i)); err == nil {
			files = append(files, path+"."+strconv.Itoa(i))
		}
	}
	return append(files, path)
}

// writeLogTail writes the last tail lines (all for tail < 0) of the log
// and its rotated copies, and returns how far it read the current file.
func writeLogTail(w io.Writer, path string, tail int64) (int64, error) {
	files := logFiles(path)
	sizes := make([]int64, len(files))
	for i, f := range files {
		if fi, err := os.Stat(f); err == nil {
			sizes[i] = fi.Size()
		}
	}
	startFile, startOff := 0, int64(0)
	if tail >= 0 {
		startFile, startOff = tailStart(files, sizes, tail)
	}
	var off int64
	for i := startFile; i < len(files); i++ {
		f, err := os.Open(files[i])
		if err != nil {
			continue
		}
		from := int64(0)
		if i == startFile {
			from = startOff
		}
		// The current file is read to its end (it may have grown); the
		// rotated copies do not change.
		var n int64
		if i == len(files)-1 {
			n, err = io.Copy(w, io.NewSectionReader(f, from, 1<<62))
			off = from + n
		} else {
			_, err = io.Copy(w, io.NewSectionReader(f, from, sizes[i]-from))
		}
		f.Close()
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// tailStart finds where the last n lines begin: the file index and the
// offset in it. A last line without its newline counts as a line, as in
// the kubelet's tail (pkg/kubelet/kuberuntime/logs).
func tailStart(files []string, sizes []int64, n int64) (int, int64) {
	if n == 0 {
		return len(files) - 1, sizes[len(files)-1]
	}
	buf := make([]byte, 8<<10)
	skipLast := true // the newline that ends the very last line
	for i := len(files) - 1; i >= 0; i-- {
		f, err := os.Open(files[i])
		if err != nil {
			continue
		}
		end := sizes[i]
		for end > 0 {
			k := min(end, int64(len(buf)))
			if _, err := f.ReadAt(buf[:k], end-k); err != nil && err != io.EOF {
				break
			}
			for j := k - 1; j >= 0; j-- {
				if buf[j] != '\n' {
					skipLast = false
					continue
				}
				if skipLast {
					skipLast = false
					continue
				}
				if n--; n <= 0 {
					f.Close()
					return i, end - k + j + 1
				}
			}
			end -= k
		}
		f.Close()
	}
	return 0, 0
}

// followLog writes what the container appends to path from off on, until
// ctx ends (the cloud removed the request), the container is no longer
// running (after a last read), or done reports true. A rotation (rotateLogs
// copies to .1, then truncates) starts over at the top of the file.
func followLog(ctx context.Context, w io.Writer, path string, off int64, running, done func() bool) {
	rotated := rotationStamp(path)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	buf := make([]byte, 32<<10)
	for {
		alive := running()
		if st := rotationStamp(path); st != rotated {
			rotated, off = st, 0
		}
		if f, err := os.Open(path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < off {
				off = 0
			}
			for {
				n, err := f.ReadAt(buf, off)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr != nil {
						f.Close()
						return
					}
					off += int64(n)
				}
				if err != nil || done() {
					break
				}
			}
			f.Close()
		}
		if !alive || done() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// limitWriter passes on at most left bytes when on (limitBytes), then
// reports full.
type limitWriter struct {
	w    io.Writer
	left int64
	on   bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if !l.on {
		return l.w.Write(p)
	}
	if l.left <= 0 {
		return len(p), nil
	}
	q := p[:min(int64(len(p)), l.left)]
	n, err := l.w.Write(q)
	l.left -= int64(n)
	if err != nil {
		return n, err
	}
	return len(p), nil
}

func (l *limitWriter) full() bool { return l.on && l.left <= 0 }
