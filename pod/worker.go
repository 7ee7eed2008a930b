package pod

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"edgenode/internal/durable"
)

// worker owns one pod: its goroutine starts and restarts the containers,
// runs probes and reports status. It syncs when woken (a new spec, a
// container exit, a refreshed configmap or secret), when a time it asked
// for comes (wakeAt: a back-off, a probe, a retry) and every SyncInterval
// as a safety resync; in between it sleeps.
type worker struct {
	r      *Runner
	uid    string
	dir    string
	static bool

	wake  chan struct{}
	stopc chan struct{}
	once  sync.Once

	mu        sync.Mutex // guards the fields below against Runner calls
	pod       *Pod
	specErr   error
	removing  bool      // remove locally, no final delete (see terminate.go)
	killBy    time.Time // SIGKILL deadline of a pod being deleted or removed
	gone      bool
	refresh   bool
	status    PodStatus
	cancelRun context.CancelFunc

	// Owned by the worker goroutine.
	cur        *Pod // the spec being synced
	ctrs       map[string]*ctr
	prepared   bool
	nsPaths    map[string]string
	podIP      string // from CNI
	vols       map[string]string
	etcMounts  []ociMount
	savedSpec  []byte
	savedFrom  *Pod // the spec savedSpec was made from: skip re-encoding it
	lastSent   []byte
	lastSentAt time.Time
	startTime  time.Time
	conds      map[string]PodCondition
	prepErr    error
	prepNext   time.Time     // next prepare after a failure
	prepWait   time.Duration // back-off between failed prepares
	stopped    bool          // terminating: every container has stopped
	finalSent  bool          // terminating: the final status was sent
	delNext    time.Time     // next final delete after a failure
	delWait    time.Duration // back-off between final deletes
	due        time.Time     // earliest wakeAt of the last sync
	watchers   sync.WaitGroup
	// deletedInCloud: the cloud answered the final delete. Read by the
	// Runner once run has returned.
	deletedInCloud bool

	outs outputs // container outputs, shared with the log handler (relay.go)
}

// ctr is the state of one container of the pod.
type ctr struct {
	spec    Container
	init    bool
	id      string // runc container id
	pid     int
	running bool
	adopted bool // started by an earlier run of edgenode
	// pidfd holds the running container's init process (exit.go); pidGone:
	// pid was found not to be the container's any more; polled: no pidfd
	// could be opened, so the exit is polled.
	pidfd           *os.File
	pidGone, polled bool

	startedAt, finishedAt time.Time
	term                  *ContainerStateTerminated // last termination
	waiting               *ContainerStateWaiting    // why it is not running
	restarts              int32
	backoff               time.Duration
	nextStart             time.Time
	image, imageID        string

	started, ready       bool
	live, readyP, startP probeState
	killedBy             string // "liveness" or "startup" when a probe killed it
}

type probeState struct {
	next        time.Time
	fails, succ int32
}

func newWorker(r *Runner, p *Pod, specErr error, adopt []ociState) *worker {
	w := &worker{
		r: r, uid: p.Metadata.UID, dir: filepath.Join(r.cfg.podsDir(), p.Metadata.UID),
		wake: make(chan struct{}, 1), stopc: make(chan struct{}),
		pod: p, cur: p, specErr: specErr, ctrs: map[string]*ctr{}, conds: map[string]PodCondition{},
		static: p.Metadata.Annotations[annConfigSource] == "file",
	}
	// startTime is set once per pod, as the kubelet's status manager does:
	// kept from the stored pod (pod.json or the cloud's copy) so that
	// adopting the pod after a restart does not reset it.
	w.startTime, _ = time.Parse(time.RFC3339, p.Status.StartTime)
	if p.Metadata.DeletionTimestamp != nil {
		// A deletion in progress when edgenode stopped goes on with its
		// deadline.
		if w.killBy = loadKillAt(w.dir); w.killBy.IsZero() {
			w.deadline(grace(p))
		}
	}
	for _, s := range adopt {
		name := s.Annotations[annContainer]
		c := w.ctrFor(name)
		if c == nil {
			continue
		}
		c.id = s.ID
		c.adopted = true
		c.imageID = s.Annotations[annImageID]
		if n, err := strconv.Atoi(s.Annotations[annRestarts]); err == nil {
			c.restarts = int32(n)
		}
		c.startedAt, _ = time.Parse(time.RFC3339, s.Annotations[annStarted])
		if !c.startedAt.IsZero() && (w.startTime.IsZero() || c.startedAt.Before(w.startTime)) {
			w.startTime = c.startedAt // a pod.json from before startTime was kept
		}
		switch s.Status {
		case "running", "paused":
			c.running, c.pid, c.started = true, s.Pid, true
			c.ready = c.spec.ReadinessProbe == nil
			// restore runs under r.mu in Run, after r.ctx is set.
			if err := w.output(name).adopt(r.ctx, s.Annotations[annLogFormat] == "cri"); err != nil {
				r.log.Warn("output of adopted container not read: it blocks once its pipe is full",
					"container", s.ID, "err", err)
			}
		default:
			// It exited while edgenode was down: nobody reaped it, so the
			// exit code is lost. Report it as unknown and let the restart
			// policy decide.
			c.finishedAt = time.Now()
			c.term = &ContainerStateTerminated{ExitCode: 255, Reason: "Unknown",
				Message:   "exited while edgenode was not running; exit code unknown",
				StartedAt: fmtTime(c.startedAt), ContainerID: "runc://" + s.ID}
			_ = r.rt.remove(context.Background(), s.ID)
		}
	}
	return w
}

// ctrFor returns the state of the named container of the current spec,
// creating it.
func (w *worker) ctrFor(name string) *ctr {
	if c, ok := w.ctrs[name]; ok {
		return c
	}
	for i, cs := range [][]Container{w.cur.Spec.InitContainers, w.cur.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				st := &ctr{spec: c, init: i == 0, id: w.containerID(name)}
				w.ctrs[name] = st
				return st
			}
		}
	}
	return nil
}

func (w *worker) containerID(name string) string { return w.uid + "_" + name }

func (w *worker) key() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod.Metadata.Namespace + "/" + w.pod.Metadata.Name
}

func (w *worker) namespace() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod.Metadata.Namespace
}

func (w *worker) isGone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// update hands the worker a new spec. A pod with deletionTimestamp starts
// (or shortens) its deletion: its grace is deletionGracePeriodSeconds.
func (w *worker) update(p *Pod, specErr error) {
	w.mu.Lock()
	if old := w.pod.Metadata; old.DeletionTimestamp != nil && p.Metadata.DeletionTimestamp == nil {
		// A deletion is never undone; a late update keeps it.
		p.Metadata.DeletionTimestamp, p.Metadata.DeletionGrace = old.DeletionTimestamp, old.DeletionGrace
	}
	w.pod, w.specErr = p, specErr
	if p.Metadata.DeletionTimestamp != nil {
		w.deadline(grace(p))
		w.cancelSync()
	}
	w.mu.Unlock()
	w.poke(false)
}

// remove asks the worker to stop the pod's containers and delete its
// files, with nothing sent to the cloud. g is the grace period; nil means
// the pod's own (grace).
func (w *worker) remove(g *int64) {
	w.mu.Lock()
	w.removing = true
	if g != nil && *g >= 0 {
		w.deadline(time.Duration(*g) * time.Second)
	} else {
		w.deadline(grace(w.pod))
	}
	w.cancelSync()
	w.mu.Unlock()
	w.poke(false)
}

// cancelSync aborts a pull, start or probe in progress; w.mu is held.
func (w *worker) cancelSync() {
	if w.cancelRun != nil {
		w.cancelRun()
	}
}

// poke wakes the worker; refresh re-writes configmap and secret volumes.
func (w *worker) poke(refresh bool) {
	if refresh {
		w.mu.Lock()
		w.refresh = true
		w.mu.Unlock()
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// quit stops the worker goroutine, leaving containers running.
func (w *worker) quit() { w.once.Do(func() { close(w.stopc) }) }

func (w *worker) snapshot() Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := *w.pod
	p.Status = w.status
	return p
}

func (w *worker) run(ctx context.Context) {
	t := time.NewTimer(w.r.cfg.SyncInterval)
	defer func() {
		t.Stop()
		for _, st := range w.ctrs {
			st.unwatch()
		}
		w.watchers.Wait()
	}()
	for {
		w.mu.Lock()
		sctx, cancel := context.WithCancel(ctx)
		w.cancelRun = cancel
		w.mu.Unlock()
		w.r.syncs.Add(1)
		w.due = time.Time{}
		done := w.sync(ctx, sctx)
		cancel()
		if done {
			return
		}
		t.Reset(w.sleepFor())
		select {
		case <-ctx.Done():
			return
		case <-w.stopc:
			return
		case <-w.wake:
		case <-t.C:
		}
	}
}

// sync moves the pod one step towards its spec. It returns true when the
// pod is gone. A deletion runs under ctx, which ends only when edgenode
// stops; the other work runs under sctx, which a deletion also cancels.
func (w *worker) sync(ctx, sctx context.Context) bool {
	w.mu.Lock()
	p, specErr, removing, refresh := w.pod, w.specErr, w.removing, w.refresh
	w.refresh = false
	w.mu.Unlock()
	w.cur = p
	if removing || p.Metadata.DeletionTimestamp != nil {
		return w.terminate(ctx, p, removing)
	}
	ctx = sctx
	if w.startTime.IsZero() {
		w.startTime = time.Now()
	}
	if specErr != nil {
		w.report(p, w.failedStatus("InvalidSpec", specErr.Error()))
		return false
	}
	if !w.retarget(ctx, p) {
		return false // a deletion or the end of edgenode interrupted it
	}
	w.saveSpec(p)
	w.observe()
	if w.r.rtErr != nil {
		w.setWaiting("RuntimeUnavailable", w.r.rtErr.Error())
		w.report(p, w.computeStatus(p))
		return false
	}
	if (!w.prepared || refresh) && !w.prepareStep(ctx, p, refresh) {
		w.report(p, w.computeStatus(p))
		return false
	}
	w.rotateLogs()
	if w.runInits(ctx, p) {
		w.runApps(ctx, p)
	}
	w.report(p, w.computeStatus(p))
	return false
}

// prepareStep prepares (or refreshes the volumes of) the pod, with back-off
// after failures: a missing configmap must not become a query to the cloud
// every second. It returns false while the pod cannot run yet; a failed
// refresh of a running pod is retried later and does not stop it.
func (w *worker) prepareStep(ctx context.Context, p *Pod, refresh bool) bool {
	retryLater := func() {
		if refresh {
			w.mu.Lock()
			w.refresh = true
			w.mu.Unlock()
		}
	}
	if time.Now().Before(w.prepNext) {
		retryLater()
		w.wakeAt(w.prepNext)
		return w.prepared
	}
	err := w.prepare(ctx, p)
	if err == nil {
		w.prepErr, w.prepWait, w.prepNext = nil, 0, time.Time{}
		return true
	}
	w.prepWait = min(max(2*w.prepWait, w.r.cfg.BackoffBase), w.r.cfg.BackoffMax)
	w.prepNext = time.Now().Add(w.prepWait)
	w.wakeAt(w.prepNext)
	retryLater()
	if w.prepared {
		w.r.log.Warn("pod volumes not refreshed", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "err", err)
		return true
	}
	w.prepErr = err
	w.setWaiting("CreateContainerConfigError", err.Error())
	return false
}

// retarget brings the container table in line with a new spec: containers
// whose spec changed are restarted with the new one (the kubelet does the
// same for an image change), containers no longer in the spec are stopped,
// all within one grace period. It returns false, leaving the table as it
// was, if ctx ended first: the pod is saved with the new spec only once
// the old containers are gone, so a restart in between starts over.
func (w *worker) retarget(ctx context.Context, p *Pod) bool {
	specs := map[string]Container{}
	var stop []*ctr
	for i, cs := range [][]Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			specs[c.Name] = c
			if st := w.ctrs[c.Name]; st != nil && st.running && i == 1 && !sameJSON(st.spec, c) {
				stop = append(stop, st)
			}
		}
	}
	for name, st := range w.ctrs {
		if _, ok := specs[name]; !ok {
			stop = append(stop, st)
		}
	}
	if len(stop) > 0 {
		by := time.Now().Add(grace(p))
		if !w.stopAll(ctx, stop, "spec changed", func() time.Time { return by }) {
			return false
		}
	}
	for name, st := range w.ctrs {
		c, ok := specs[name]
		switch {
		case !ok:
			_ = w.r.rt.remove(ctx, st.id)
			unmountRootfs(filepath.Join(w.dir, "containers", name))
			delete(w.ctrs, name)
		case !sameJSON(st.spec, c):
			st.spec = c
			st.nextStart = time.Time{}
		}
	}
	return true
}

// saveSpec persists the spec under the pod dir: the record that brings the
// pod back after a restart or reboot even with no meta and no cloud.
func (w *worker) saveSpec(p *Pod) {
	if p == w.savedFrom {
		return
	}
	cp := *p
	cp.Status = PodStatus{StartTime: fmtTime(w.startTime)}
	b, err := json.Marshal(&cp)
	if err != nil || string(b) == string(w.savedSpec) {
		w.savedFrom = p
		return
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		w.r.log.Warn("pod dir", "pod", w.uid, "err", err)
		return
	}
	if err := durable.WriteFile(filepath.Join(w.dir, "pod.json"), b, 0o600); err != nil {
		w.r.log.Warn("pod spec not saved", "pod", w.uid, "err", err)
		return
	}
	w.savedSpec, w.savedFrom = b, p
}

// setWaiting marks every container that is not running as waiting.
func (w *worker) setWaiting(reason, msg string) {
	p := w.cur
	for _, cs := range [][]Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if st := w.ctrFor(c.Name); st != nil && !st.running {
				st.waiting = &ContainerStateWaiting{Reason: reason, Message: msg}
			}
		}
	}
}

// runInits runs init containers one at a time, in order. It returns true
// once all have succeeded.
func (w *worker) runInits(ctx context.Context, p *Pod) bool {
	for _, c := range p.Spec.InitContainers {
		st := w.ctrFor(c.Name)
		if st.term != nil && st.term.ExitCode == 0 && !st.running {
			continue
		}
		if st.running {
			return false
		}
		if st.term != nil && p.Spec.RestartPolicy == RestartNever {
			return false // the pod has failed
		}
		if time.Now().Before(st.nextStart) {
			w.wakeAt(st.nextStart)
			return false
		}
		if st.term != nil {
			st.restarts++
		}
		w.start(ctx, p, st)
		return false
	}
	return true
}

// runApps starts app containers that should run and probes running ones.
func (w *worker) runApps(ctx context.Context, p *Pod) {
	for _, c := range p.Spec.Containers {
		st := w.ctrFor(c.Name)
		switch {
		case st.running:
			w.probe(ctx, p, st)
		case st.term == nil && st.startedAt.IsZero():
			if time.Now().Before(st.nextStart) {
				w.wakeAt(st.nextStart)
				continue
			}
			w.start(ctx, p, st)
		case st.term != nil && shouldRestart(p.Spec.RestartPolicy, st.term.ExitCode):
			if time.Now().Before(st.nextStart) {
				w.wakeAt(st.nextStart)
				continue
			}
			st.restarts++
			w.start(ctx, p, st)
		}
	}
}

func shouldRestart(policy string, exit int32) bool {
	switch policy {
	case RestartNever:
		return false
	case RestartOnFailure:
		return exit != 0
	}
	return true // Always, the default
}

// exited records the end of a running container and schedules the next
// start with back-off (10 s doubling to 300 s, reset after 10 minutes of
// running, docs/protocol.md 6).
func (w *worker) exited(st *ctr, code, sig int32, reason, msg string) {
	now := time.Now()
	st.running, st.ready, st.started = false, false, false
	st.finishedAt = now
	if reason == "" {
		reason = "Completed"
		if code != 0 {
			reason = "Error"
		}
	}
	st.term = &ContainerStateTerminated{ExitCode: code, Signal: sig, Reason: reason, Message: msg,
		StartedAt: fmtTime(st.startedAt), FinishedAt: fmtTime(now), ContainerID: "runc://" + st.id}
	if now.Sub(st.startedAt) > 10*time.Minute {
		st.backoff = 0
	}
	switch {
	case st.backoff == 0:
		st.backoff = w.r.cfg.BackoffBase
	default:
		st.backoff = min(2*st.backoff, w.r.cfg.BackoffMax)
	}
	st.nextStart = now.Add(st.backoff) // runInits or runApps waits for it
	st.pid = 0
	st.unwatch()
	_ = w.r.rt.remove(context.Background(), st.id)
}

// observe reaps exited containers and watches running ones (exit.go). A
// container started by this run of edgenode is our child (we are its
// subreaper) and gives its exit code; an adopted one is not, and only its
// end is seen.
func (w *worker) observe() {
	for _, st := range w.ctrs {
		if !st.running || st.pid <= 0 {
			continue
		}
		w.watch(st)
		ws, reaped, notChild := reapPid(st.pid)
		switch {
		case reaped:
			code, sig := int32(ws.ExitStatus()), int32(0)
			if ws.Signaled() {
				sig = int32(ws.Signal())
				code = 128 + sig
			}
			reason := ""
			if st.killedBy != "" {
				reason = "Error"
			}
			w.exited(st, code, sig, reason, st.killedBy)
			st.killedBy = ""
		case notChild && st.gone():
			w.exited(st, 255, 0, "Unknown", "exit code unknown: the container was adopted from an earlier run of edgenode")
		case st.pidfd == nil:
			w.wakeAt(time.Now().Add(exitPollInterval))
		}
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// failedStatus is the status of a pod that cannot run at all.
func (w *worker) failedStatus(reason, msg string) PodStatus {
	return PodStatus{Phase: "Failed", Reason: reason, Message: msg, HostIP: w.r.cfg.HostIP,
		StartTime: fmtTime(w.startTime),
		Conditions: []PodCondition{{Type: "PodScheduled", Status: "True"},
			{Type: "Ready", Status: "False", Reason: reason, Message: msg}}}
}
