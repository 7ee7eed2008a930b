package pod

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"edgenode/bus"
	"edgenode/internal/durable"
)

// A pod ends in one of two ways, as with the kubelet:
//
//   - Deleted in the API server: the cloud sends the pod with
//     deletionTimestamp and deletionGracePeriodSeconds set. The worker
//     stops every container at once within that grace, reports the final
//     status, and asks the cloud for the final delete (KubeEdge v1.23.1
//     edge/pkg/metamanager/client/pod.go Delete, as the kubelet's status
//     manager does once the containers are gone). The pod stays on disk,
//     deletionTimestamp and all, until the cloud answers "OK", so the
//     request survives a restart with the cloud away; cloudcore deletes the
//     pod in kube-apiserver (cloud/pkg/edgecontroller/controller/upstream.go
//     deletePod) and its delete comes back to the edge.
//   - Removed: the cloud's delete arrived, meta no longer stores the pod, a
//     pod of the same name replaced it, or it was a static pod whose file
//     went away. The containers are stopped the same way and the pod's
//     files removed, with nothing sent.
//
// Stopping edgenode never waits for a grace period: the containers keep
// running, and the next start adopts them and goes on with the deletion
// until the deadline saved in the pod dir (killAtFile).

// killAtFile holds, under the pod dir, the time after which the
// containers of a pod being deleted get SIGKILL.
const killAtFile = "kill-at"

// Final delete retries: the first after deleteRetryMin, doubling up to
// deleteRetryMax while the cloud is away.
const (
	deleteRetryMin = time.Second
	deleteRetryMax = 30 * time.Second
)

// deleteOptions is metav1.DeleteOptions, trimmed to what the final delete
// carries: grace 0 and the pod's uid as precondition, so that a new pod of
// the same name is never deleted (KubeEdge v1.23.1 upstream.go deletePod;
// the kubelet's status manager sends the same).
type deleteOptions struct {
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
	Preconditions      *struct {
		UID string `json:"uid,omitempty"`
	} `json:"preconditions,omitempty"`
}

// deleteMessage is the final delete of pod p: group meta, source edged,
// resource <ns>/pod/<name>, operation delete, content DeleteOptions.
func deleteMessage(p *Pod) bus.Message {
	var o deleteOptions
	o.GracePeriodSeconds = new(int64)
	o.Preconditions = &struct {
		UID string `json:"uid,omitempty"`
	}{p.Metadata.UID}
	b, _ := json.Marshal(&o) // cannot fail: strings and an int
	return bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpDelete,
		bus.ResourcePath(p.Metadata.Namespace, bus.KindPod, p.Metadata.Name), b)
}

// deadline moves the kill deadline to now+g if that is sooner; a grace can
// shorten but never lengthen a deletion in progress (a force delete during
// a graceful one kills at once). w.mu is held.
func (w *worker) deadline(g time.Duration) {
	if t := time.Now().Add(g); w.killBy.IsZero() || t.Before(w.killBy) {
		w.killBy = t
	}
}

// killDeadline returns the current kill deadline.
func (w *worker) killDeadline() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killBy
}

// needsFinalDelete reports whether the cloud must be asked for the final
// delete of p: a pod of the API server (not static) in a v1.23 cloud, on a
// node with meta to ask. The v0.3 edged sent none.
func (w *worker) needsFinalDelete(p *Pod) bool {
	return !w.static && w.r.b != nil && w.r.b.Has(bus.ModuleMeta) && w.r.cfg.Era != bus.EraV03 &&
		p.Metadata.DeletionTimestamp != nil
}

// terminate is sync for a pod being deleted or removed. It returns true
// when the pod is gone, false when ctx ended (containers left running) or
// the final delete waits for the cloud.
func (w *worker) terminate(ctx context.Context, p *Pod, removing bool) bool {
	w.cur = p
	if !w.stopped {
		deadline := w.killDeadline
		if p.Metadata.DeletionTimestamp != nil && !removing {
			// Record the deletion first, and a shorter grace when one
			// comes: a restart resumes it from disk.
			w.saveSpec(p)
			saved := w.killDeadline()
			w.saveKillAt(saved)
			deadline = func() time.Time {
				if t := w.killDeadline(); !t.Equal(saved) {
					saved = t
					w.saveKillAt(t)
				}
				return saved
			}
		}
		if !w.stopAll(ctx, w.all(), "pod deleted", deadline) {
			return false
		}
		w.stopped = true
	}
	if !removing && w.needsFinalDelete(p) {
		if !w.finalSent {
			// The final status goes first and synchronously: meta runs
			// remote operations in parallel, and the status of a pod the
			// cloud already deleted would be refused.
			w.send(ctx, p, w.computeStatus(p), true)
			w.finalSent = true
		}
		if time.Now().Before(w.delNext) || !w.finalDelete(ctx, p) {
			w.wakeAt(w.delNext)
			return false
		}
		w.deletedInCloud = true
	}
	w.teardown(ctx, p)
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	return true
}

// finalDelete asks the cloud, through meta, to delete p and reports
// whether it did. cloudcore answers "OK" also when the pod is already gone
// or was recreated under a new uid; anything else is retried with back-off.
func (w *worker) finalDelete(ctx context.Context, p *Pod) bool {
	resp, err := w.r.b.SendSync(ctx, bus.ModuleMeta, deleteMessage(p), w.r.cfg.QueryTimeout)
	if err == nil && resp.Route.Operation != bus.OpError && bus.IsOK(resp.Content) {
		w.r.log.Info("pod deleted in the cloud", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name)
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	w.delWait = min(max(2*w.delWait, deleteRetryMin), deleteRetryMax)
	// Jitter: pods deleted together do not all ask again at once.
	wait := w.delWait/2 + rand.N(w.delWait/2+1)
	w.delNext = time.Now().Add(wait)
	reason := string(resp.Content)
	if err != nil {
		reason = err.Error()
	}
	w.r.log.Debug("final pod delete not done, retrying", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name,
		"in", wait, "reason", reason)
	return false // the worker's next sync after delNext asks again
}

// all returns every container of the table.
func (w *worker) all() []*ctr {
	out := make([]*ctr, 0, len(w.ctrs))
	for _, st := range w.ctrs {
		out = append(out, st)
	}
	return out
}

// stopAll ends the given containers together, as the kubelet does: SIGTERM
// to all, SIGKILL to those still running at deadline(), then removes them
// from runc. deadline is read again on every poll, so a shorter grace
// that arrives meanwhile applies. It returns false, leaving the
// containers running, as soon as ctx ends: stopping edgenode never waits
// for a grace period.
func (w *worker) stopAll(ctx context.Context, sts []*ctr, why string, deadline func() time.Time) bool {
	p := w.cur
	var live []*ctr
	for _, st := range sts {
		if !st.running {
			_ = w.r.rt.remove(ctx, st.id)
			continue
		}
		live = append(live, st)
		w.r.log.Info("stopping container", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "container", st.spec.Name, "why", why)
		_ = w.r.rt.kill(ctx, st.id, syscall.SIGTERM)
	}
	if ctx.Err() != nil {
		return false
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var killedAt time.Time
	for {
		w.observe()
		running := 0
		for _, st := range live {
			if st.running {
				running++
			}
		}
		now := time.Now()
		if running == 0 || (!killedAt.IsZero() && now.Sub(killedAt) > 5*time.Second) {
			break
		}
		if killedAt.IsZero() && !now.Before(deadline()) {
			for _, st := range live {
				if st.running {
					_ = w.r.rt.kill(ctx, st.id, syscall.SIGKILL)
				}
			}
			killedAt = now
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	for _, st := range live {
		if st.running { // not seen to exit: record it as killed
			w.exited(st, 137, int32(syscall.SIGKILL), "Error", why)
		}
		_ = w.r.rt.remove(ctx, st.id)
	}
	return ctx.Err() == nil
}

// stop ends one container within the pod's grace period.
func (w *worker) stop(ctx context.Context, st *ctr, p *Pod, why string) bool {
	by := time.Now().Add(grace(p))
	return w.stopAll(ctx, []*ctr{st}, why, func() time.Time { return by })
}

// saveKillAt records the kill deadline of a pod being deleted.
func (w *worker) saveKillAt(t time.Time) {
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return
	}
	if err := durable.WriteFile(filepath.Join(w.dir, killAtFile), []byte(t.UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		w.r.log.Warn("kill deadline not saved", "pod", w.uid, "err", err)
	}
}

// loadKillAt reads the kill deadline saved under dir; zero if none.
func loadKillAt(dir string) time.Time {
	b, err := os.ReadFile(filepath.Join(dir, killAtFile))
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(b))
	return t
}
