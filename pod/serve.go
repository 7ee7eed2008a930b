package pod

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler returns the kubelet paths the node serves to the cloud through
// KubeEdge's stream tunnel (KubeEdge v1.23.1 pkg/stream), like
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

// Errors of the kubelet's getContainerLogs (Kubernetes v1.32
// pkg/kubelet/server/server.go): a query that does not decode, and one
// that fails ValidatePodLogOptions (pkg/apis/core/v1/validation).
var (
	errLogQuery   = errors.New(`{"message": "Unable to decode query."}`)
	errLogInvalid = errors.New(`{"message": "Invalid request."}`)
)

// parseLogOptions reads the kubelet's query parameters (v1.PodLogOptions)
// the way its parameter codec does: a bool is false only for "0" or
// "false" (any case), numbers are base-10 int64, sinceTime is RFC 3339
// (empty: the zero time); "tail" is the old name of tailLines, "all" for
// no limit. now is the time sinceSeconds counts back from.
func parseLogOptions(q url.Values, now time.Time) (logQuery, int, error) {
	o := logQuery{tail: -1}
	if t := q.Get("tail"); t != "" {
		q = maps.Clone(q)
		q.Del("tailLines")
		if t != "all" {
			q.Set("tailLines", t)
		}
	}
	has := func(k string) bool { _, ok := q[k]; return ok }
	boolOpt := func(k string) bool {
		v := q.Get(k)
		return has(k) && v != "0" && !strings.EqualFold(v, "false")
	}
	bad := false
	intOpt := func(k string) *int64 {
		if !has(k) {
			return nil
		}
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		bad = bad || err != nil
		return &n
	}
	o.follow, o.previous, o.timestamps = boolOpt("follow"), boolOpt("previous"), boolOpt("timestamps")
	tail, limit, sinceSec := intOpt("tailLines"), intOpt("limitBytes"), intOpt("sinceSeconds")
	var sinceTime *time.Time
	if has("sinceTime") {
		var t time.Time
		if v := q.Get("sinceTime"); v != "" && v != "null" {
			var err error
			t, err = time.Parse(time.RFC3339, v)
			bad = bad || err != nil
		}
		sinceTime = &t
	}
	if bad {
		return o, http.StatusBadRequest, errLogQuery
	}
	stream := q.Get("stream")
	switch {
	case tail != nil && *tail < 0, limit != nil && *limit < 1,
		sinceSec != nil && sinceTime != nil, sinceSec != nil && *sinceSec < 1,
		has("stream") && stream != "All" && stream != "Stdout" && stream != "Stderr",
		has("stream") && stream != "All" && tail != nil:
		return o, http.StatusUnprocessableEntity, errLogInvalid
	case has("stream") && stream != "All":
		// The PodLogsQuerySplitStreams gate is off by default in v1.32.
		return o, http.StatusBadRequest, fmt.Errorf("unable to return the given log stream: %q. Please enable PodLogsQuerySplitStreams feature gate in kubelet", stream)
	}
	if tail != nil {
		o.tail = *tail
	}
	if limit != nil {
		o.limit = *limit
	}
	if sinceSec != nil {
		o.since = now.Add(-time.Duration(*sinceSec) * time.Second)
	}
	if sinceTime != nil {
		o.since = *sinceTime
	}
	return o, 0, nil
}

// serveLogs is the kubelet's getContainerLogs on edgenode's log files.
func (k *kubeletServer) serveLogs(rw http.ResponseWriter, req *http.Request) {
	ns, name, container := req.PathValue("ns"), req.PathValue("pod"), req.PathValue("container")
	q, code, err := parseLogOptions(req.URL.Query(), time.Now())
	if err != nil {
		textError(rw, code, err.Error())
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
	// The kubelet's validateContainerLogStatus (pkg/kubelet/kubelet_pods.go).
	o := w.output(container)
	if q.previous {
		if _, err := os.Stat(o.previousPath()); err != nil {
			textError(rw, http.StatusBadRequest, fmt.Sprintf("previous terminated container %q in pod %q not found", container, name))
			return
		}
	} else if _, err := os.Stat(o.path); err != nil {
		textError(rw, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start - no logs yet", container, name))
		return
	}
	rw.Header().Set("Content-Type", "text/plain")
	_ = o.read(req.Context(), flushWriter{rw}, q)
}

// flushWriter flushes every write, as the kubelet's flushwriter does, so
// a followed log reaches the cloud line by line.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
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
