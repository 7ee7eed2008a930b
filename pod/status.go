package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"edgenode/bus"
)

// computeStatus derives the pod status from the container table.
func (w *worker) computeStatus(p *Pod) PodStatus {
	s := PodStatus{HostIP: w.r.cfg.HostIP, StartTime: fmtTime(w.startTime), QOSClass: qosClass(p)}
	if s.HostIP != "" {
		s.HostIPs = []PodIP{{IP: s.HostIP}}
		if p.Spec.HostNetwork {
			s.PodIP, s.PodIPs = s.HostIP, []PodIP{{IP: s.HostIP}}
		}
	}
	if w.podIP != "" && !p.Spec.HostNetwork {
		s.PodIP, s.PodIPs = w.podIP, []PodIP{{IP: w.podIP}}
	}
	initDone, initFailed := true, false
	for _, c := range p.Spec.InitContainers {
		st := w.ctrFor(c.Name)
		cs := w.containerStatus(p, st)
		s.InitContainerStatuses = append(s.InitContainerStatuses, cs)
		if st.term == nil || st.term.ExitCode != 0 || st.running {
			initDone = false
			if st.term != nil && st.term.ExitCode != 0 && !st.running && p.Spec.RestartPolicy == RestartNever {
				initFailed = true
			}
		}
	}
	allReady, anyRunning, allDone, anyFailed, anyStarted := true, false, true, false, false
	for _, c := range p.Spec.Containers {
		st := w.ctrFor(c.Name)
		cs := w.containerStatus(p, st)
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
		if !cs.Ready {
			allReady = false
		}
		if st.running {
			anyRunning = true
		}
		if !st.startedAt.IsZero() || st.term != nil {
			anyStarted = true
		}
		willRestart := st.term != nil && shouldRestart(p.Spec.RestartPolicy, st.term.ExitCode)
		if st.running || st.term == nil || willRestart {
			allDone = false
		} else if st.term.ExitCode != 0 {
			anyFailed = true
		}
	}
	switch {
	case w.stopped:
		// A deleted pod whose containers are gone is terminal: Succeeded
		// if every container that ran exited 0, else Failed (kubelet
		// v1.32 pkg/kubelet/kubelet_pods.go getPhase, podIsTerminal).
		s.Phase = "Succeeded"
		for _, c := range append(append([]Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			if st := w.ctrFor(c.Name); st.term != nil && st.term.ExitCode != 0 {
				s.Phase = "Failed"
			}
		}
	case initFailed:
		s.Phase = "Failed"
	case !initDone:
		s.Phase = "Pending"
	case allDone && anyFailed:
		s.Phase = "Failed"
	case allDone:
		s.Phase = "Succeeded"
	case anyRunning || anyStarted:
		s.Phase = "Running"
	default:
		s.Phase = "Pending"
	}
	ready := allReady && s.Phase == "Running"
	s.Conditions = []PodCondition{
		w.cond("Initialized", initDone, "ContainersNotInitialized"),
		w.cond("Ready", ready, "ContainersNotReady"),
		w.cond("ContainersReady", ready, "ContainersNotReady"),
		w.cond("PodScheduled", true, ""),
	}
	if w.prepErr != nil {
		s.Message = w.prepErr.Error()
	}
	return s
}

// cond returns a condition, keeping its transition time while its status
// stays the same.
func (w *worker) cond(typ string, ok bool, reason string) PodCondition {
	st := "False"
	if ok {
		st, reason = "True", ""
	}
	prev, have := w.conds[typ]
	if have && prev.Status == st {
		return prev
	}
	c := PodCondition{Type: typ, Status: st, Reason: reason, LastTransitionTime: fmtTime(time.Now())}
	w.conds[typ] = c
	return c
}

func (w *worker) containerStatus(p *Pod, st *ctr) ContainerStatus {
	started := st.started
	cs := ContainerStatus{Name: st.spec.Name, Image: st.spec.Image, ImageID: st.imageID,
		RestartCount: st.restarts, Ready: st.ready && st.running, Started: &started}
	if !st.startedAt.IsZero() || st.term != nil {
		cs.ContainerID = "runc://" + st.id
	}
	switch {
	case st.running:
		cs.State.Running = &ContainerStateRunning{StartedAt: fmtTime(st.startedAt)}
		if st.term != nil {
			cs.LastTerminationState.Terminated = st.term
		}
	case st.term != nil && !w.stopped && shouldRestart(p.Spec.RestartPolicy, st.term.ExitCode) && !(st.init && st.term.ExitCode == 0):
		reason := "CrashLoopBackOff"
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s", st.backoff, st.spec.Name, p.Metadata.Name, p.Metadata.Namespace)
		if st.waiting != nil {
			reason, msg = st.waiting.Reason, st.waiting.Message
		}
		cs.State.Waiting = &ContainerStateWaiting{Reason: reason, Message: msg}
		cs.LastTerminationState.Terminated = st.term
	case st.term != nil:
		cs.State.Terminated = st.term
	case st.waiting != nil:
		cs.State.Waiting = st.waiting
	default:
		reason := "ContainerCreating"
		if st.init {
			reason = "PodInitializing"
		}
		cs.State.Waiting = &ContainerStateWaiting{Reason: reason}
	}
	return cs
}

func qosClass(p *Pod) string {
	any, guaranteed := false, true
	for _, c := range append(append([]Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if len(c.Resources.Limits)+len(c.Resources.Requests) > 0 {
			any = true
		}
		for _, r := range []string{"cpu", "memory"} {
			l, ok := c.Resources.Limits[r]
			if !ok {
				guaranteed = false
				continue
			}
			if q, ok := c.Resources.Requests[r]; ok && q != l {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return "BestEffort"
	case guaranteed:
		return "Guaranteed"
	}
	return "Burstable"
}

// report stores the status and sends it to meta when it changed, at most
// every StatusInterval (docs/protocol.md 2.5). Static pods are not in the API server,
// so their status stays local.
func (w *worker) report(p *Pod, s PodStatus) { w.send(context.Background(), p, s, false) }

// send is report; final sends at once, whatever the interval, and waits
// for meta's answer (or QueryTimeout), so that it reaches the cloud before
// what the worker sends next.
func (w *worker) send(ctx context.Context, p *Pod, s PodStatus, final bool) {
	w.mu.Lock()
	prev := w.status.Phase
	w.status = s
	w.mu.Unlock()
	if s.Phase != prev {
		w.r.log.Info("pod phase", "pod", p.Metadata.Namespace+"/"+p.Metadata.Name, "phase", s.Phase)
	}
	if w.static || w.r.b == nil {
		return
	}
	b, err := json.Marshal(&s)
	if err != nil || string(b) == string(w.lastSent) {
		return
	}
	if !final && !w.lastSentAt.IsZero() && time.Since(w.lastSentAt) < w.r.cfg.StatusInterval {
		w.wakeAt(w.lastSentAt.Add(w.r.cfg.StatusInterval)) // that sync sends it
		return
	}
	msg, err := statusMessage(w.r.cfg.Era, p, &s)
	if err != nil {
		return
	}
	if final {
		// Meta's answer, even an error (no cloud: the hub queues the
		// status), means the status is on its way.
		_, err = w.r.b.SendSync(ctx, bus.ModuleMeta, msg, w.r.cfg.QueryTimeout)
	} else {
		err = w.r.b.Send(bus.ModuleMeta, msg)
	}
	if err != nil {
		w.r.log.Debug("pod status not sent", "pod", p.Metadata.Name, "err", err)
		return
	}
	w.lastSent, w.lastSentAt = b, time.Now()
}

// statusMessage builds the status message of either era (docs/protocol.md 2.5):
// v0.3 update <ns>/podstatus/<name> with {"UID","Name","Status"}; v1.23
// patch <ns>/podpatch/<name> whose content is the merge patch as a JSON
// string.
func statusMessage(era bus.Era, p *Pod, s *PodStatus) (bus.Message, error) {
	ns, name := p.Metadata.Namespace, p.Metadata.Name
	if era == bus.EraV03 {
		b, err := json.Marshal(struct {
			UID    string
			Name   string
			Status *PodStatus
		}{p.Metadata.UID, name, s})
		if err != nil {
			return bus.Message{}, err
		}
		return bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpUpdate, bus.ResourcePath(ns, bus.KindPodStatus, name), b), nil
	}
	// cloudcore applies the patch as a strategic merge patch (KubeEdge
	// v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go patchPod), in
	// which an absent field keeps its old value: a cleared message or
	// reason is sent as null, or kubectl would show the old one for ever.
	// (Container statuses are an atomic list and replaced whole.)
	type patchStatus struct {
		*PodStatus
		Message *string `json:"message"`
		Reason  *string `json:"reason"`
	}
	patch := struct {
		Metadata struct {
			UID string `json:"uid,omitempty"`
		} `json:"metadata"`
		Status patchStatus `json:"status"`
	}{Status: patchStatus{PodStatus: s, Message: nullIfEmpty(s.Message), Reason: nullIfEmpty(s.Reason)}}
	patch.Metadata.UID = p.Metadata.UID
	b, err := json.Marshal(&patch)
	if err != nil {
		return bus.Message{}, err
	}
	return bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpPatch, bus.ResourcePath(ns, bus.KindPodPatch, name), bus.JSONString(string(b))), nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
