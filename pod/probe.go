package pod

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// probe runs the due probes of a running container (kubelet semantics):
// the startup probe gates the others; liveness failing FailureThreshold
// times in a row kills the container, which the restart policy then
// restarts; readiness sets Ready.
func (w *worker) probe(ctx context.Context, p *Pod, st *ctr) {
	c := &st.spec
	now := time.Now()
	if !st.started {
		if c.StartupProbe == nil {
			st.started = true
		} else if ok, done := w.runProbe(ctx, p, st, c.StartupProbe, &st.startP, now); done {
			if ok {
				st.started = true
			} else if st.startP.fails >= threshold(c.StartupProbe.FailureThreshold, 3) {
				st.killedBy = "startup probe failed"
				w.stop(ctx, st, p, st.killedBy)
				return
			}
		}
		if !st.started {
			return
		}
	}
	if c.LivenessProbe != nil {
		if ok, done := w.runProbe(ctx, p, st, c.LivenessProbe, &st.live, now); done && !ok &&
			st.live.fails >= threshold(c.LivenessProbe.FailureThreshold, 3) {
			st.killedBy = "liveness probe failed"
			w.stop(ctx, st, p, st.killedBy)
			return
		}
	}
	if c.ReadinessProbe == nil {
		st.ready = true
		return
	}
	if ok, done := w.runProbe(ctx, p, st, c.ReadinessProbe, &st.readyP, now); done {
		switch {
		case ok && st.readyP.succ >= threshold(c.ReadinessProbe.SuccessThreshold, 1):
			st.ready = true
		case !ok && st.readyP.fails >= threshold(c.ReadinessProbe.FailureThreshold, 3):
			st.ready = false
		}
	}
}

func threshold(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// runProbe runs pr if it is due and counts the result. done is false when
// the probe was not due.
func (w *worker) runProbe(ctx context.Context, p *Pod, st *ctr, pr *Probe, ps *probeState, now time.Time) (ok, done bool) {
	if ps.next.IsZero() {
		ps.next = st.startedAt.Add(time.Duration(pr.InitialDelaySeconds) * time.Second)
	}
	if now.Before(ps.next) {
		w.wakeAt(ps.next)
		return false, false
	}
	period := time.Duration(threshold(pr.PeriodSeconds, 10)) * time.Second
	ps.next = now.Add(period)
	w.wakeAt(ps.next)
	timeout := time.Duration(threshold(pr.TimeoutSeconds, 1)) * time.Second
	err := w.check(ctx, p, st, pr, timeout)
	if err != nil {
		ps.fails++
		ps.succ = 0
		w.r.log.Debug("probe failed", "pod", p.Metadata.Name, "container", st.spec.Name, "err", err)
		return false, true
	}
	ps.succ++
	ps.fails = 0
	return true, true
}

// check runs one probe: exec through `runc exec`, or an HTTP GET / TCP
// connect from inside the pod's network namespace (the pod has no address
// the host can reach without CNI; loopback inside the pod always works).
func (w *worker) check(ctx context.Context, p *Pod, st *ctr, pr *Probe, timeout time.Duration) error {
	switch {
	case pr.Exec != nil:
		code, out, err := w.r.rt.exec(ctx, st.id, pr.Exec.Command, timeout)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("exit code %d: %s", code, strings.TrimSpace(string(out)))
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := st.spec.resolvePort(pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		conn, err := w.dial(ctx, hostOr(pr.TCPSocket.Host), port, timeout)
		if err != nil {
			return err
		}
		return conn.Close()
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, err := st.spec.resolvePort(g.Port)
		if err != nil {
			return err
		}
		scheme := strings.ToLower(g.Scheme)
		if scheme == "" {
			scheme = "http"
		}
		host := hostOr(g.Host)
		tr := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return w.dial(ctx, host, port, timeout)
			},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		cl := &http.Client{Transport: tr, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/edgenode")
		for _, h := range g.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("http status %d", resp.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("probe has no handler")
}

func hostOr(h string) string {
	if h == "" {
		return "127.0.0.1"
	}
	return h
}

// dial connects to host:port inside the pod's network namespace, or on the
// host for hostNetwork pods.
func (w *worker) dial(ctx context.Context, host string, port int, timeout time.Duration) (net.Conn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ns := w.nsPaths["network"]
	if ns == "" {
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, "tcp", addr)
	}
	return dialInNetns(ctx, ns, addr, timeout)
}
