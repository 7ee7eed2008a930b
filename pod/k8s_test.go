package pod

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"edgenode/bus"
)

// k8s.io/api is a test-only dependency: the binary carries its own trimmed
// types (types.go), and these tests check that what it sends is what
// kube-apiserver accepts. cloudcore hands a podpatch to kube-apiserver,
// which decodes it into v1.Pod: one bad field, such as "lastProbeTime": ""
// (metav1.Time wants RFC 3339 or null), fails the whole patch and the pod
// stays Pending in kubectl.

// strictDecode decodes b into v as kube-apiserver's strict decoding does
// (case-sensitive keys, no duplicate fields), and also rejects unknown
// fields: a field the API does not know is a field edgenode gets wrong.
func strictDecode(b []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(b, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return errors.Join(strict...)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// checkK8sStatus checks a status message of either era against
// k8s.io/api: the v1.23 podpatch body decodes into v1.Pod, the v0.3
// PodStatusRequest's Status into v1.PodStatus.
func checkK8sStatus(t testing.TB, m bus.Message) {
	t.Helper()
	res := m.Res
	if !res.Valid(m.Route.Operation) {
		t.Fatalf("status resource %q is not valid", m.Route.Resource)
	}
	switch res.Kind {
	case bus.KindPodPatch:
		s, ok := bus.ContentString(m.Content)
		if !ok {
			t.Fatalf("podpatch content %s: want a JSON string", m.Content)
		}
		var p corev1.Pod
		if err := strictDecode([]byte(s), &p); err != nil {
			t.Errorf("podpatch %s is not a v1.Pod: %v", s, err)
		}
	case bus.KindPodStatus:
		var req struct {
			UID, Name string
			Status    json.RawMessage
		}
		if err := json.Unmarshal(m.Content, &req); err != nil {
			t.Fatalf("podstatus content %s: %v", m.Content, err)
		}
		var st corev1.PodStatus
		if err := strictDecode(req.Status, &st); err != nil {
			t.Errorf("podstatus %s is not a v1.PodStatus: %v", req.Status, err)
		}
	}
}

// TestStatusIsK8s builds the statuses a worker reports in each state of a
// pod and checks them, in both eras, against k8s.io/api.
func TestStatusIsK8s(t *testing.T) {
	// runc is never needed: "true" stands in for the removal of exited containers.
	r := &Runner{cfg: Config{HostIP: "192.168.1.23", BackoffBase: time.Second}, rt: &ociRuntime{bin: "true"}}
	now := time.Now()
	probe := &Probe{Exec: &ExecAction{Command: []string{"true"}}}
	p := testPod("web", sh("main", "sleep 1"), sh("side", "sleep 1"))
	p.Spec.InitContainers = []Container{sh("init", "true")}
	p.Spec.Containers[0].ReadinessProbe = probe
	states := []struct {
		name string
		set  func(w *worker)
	}{
		{"new", func(w *worker) {}},
		{"waiting", func(w *worker) {
			w.setWaiting("ErrImagePull", "no such image")
		}},
		{"running", func(w *worker) {
			w.ctrFor("init").term = &ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				StartedAt: fmtTime(now), FinishedAt: fmtTime(now)}
			for _, n := range []string{"main", "side"} {
				st := w.ctrFor(n)
				st.running, st.started, st.startedAt, st.imageID = true, true, now, "sha256:abc"
			}
		}},
		{"crash loop", func(w *worker) {
			st := w.ctrFor("side")
			st.running = false
			w.exited(st, 1, 0, "", "")
			st.restarts = 3
		}},
		{"deleted", func(w *worker) {
			for _, n := range []string{"main", "side"} {
				w.exited(w.ctrFor(n), 143, 15, "", "")
			}
			w.stopped = true
		}},
	}
	w := newWorker(r, p, nil, nil)
	w.startTime = now
	for _, tt := range states {
		t.Run(tt.name, func(t *testing.T) {
			tt.set(w)
			s := w.computeStatus(p)
			for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
				m, err := statusMessage(era, p, &s)
				if err != nil {
					t.Fatal(err)
				}
				checkK8sStatus(t, m)
			}
		})
	}
	t.Run("invalid spec", func(t *testing.T) {
		s := w.failedStatus("InvalidSpec", "bad")
		m, err := statusMessage(bus.EraV123, p, &s)
		if err != nil {
			t.Fatal(err)
		}
		checkK8sStatus(t, m)
	})
}

// TestDeleteMessageIsK8s checks the final pod delete (KubeEdge v1.23.1
// edge/pkg/metamanager/client/pod.go Delete): source edged, group meta,
// <ns>/pod/<name>, operation delete, and a metav1.DeleteOptions with grace
// 0 and the pod's uid as precondition.
func TestDeleteMessageIsK8s(t *testing.T) {
	m := deleteMessage(testPod("web"))
	if m.Route.Source != bus.ModulePod || m.Route.Group != bus.GroupMeta || m.Route.Operation != bus.OpDelete ||
		m.Route.Resource != "default/pod/web" {
		t.Errorf("deleteMessage(web) route = %+v, want edged/meta delete default/pod/web", m.Route)
	}
	var o metav1.DeleteOptions
	if err := strictDecode(m.Content, &o); err != nil {
		t.Fatalf("deleteMessage(web) content %s: %v", m.Content, err)
	}
	if o.GracePeriodSeconds == nil || *o.GracePeriodSeconds != 0 || o.Preconditions == nil ||
		o.Preconditions.UID == nil || *o.Preconditions.UID != "uid-web" {
		t.Errorf("deleteMessage(web) content = %s, want gracePeriodSeconds 0 and uid precondition uid-web", m.Content)
	}
}
