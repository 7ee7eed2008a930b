package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/hub"
	"edgenode/hub/hubtest"
	"edgenode/meta"
	"edgenode/pod"
	"edgenode/pod/podtest"
)

// TestPodDeleteThroughCloud deletes a pod as kubectl delete
// --grace-period=2 does against a v1.23 cloud: the cloud sends the pod
// with deletionTimestamp and deletionGracePeriodSeconds 2; edged stops its
// container (which ignores SIGTERM) in about 2 s, not the pod's 30 s,
// reports the final status and sends the final delete through meta and the
// hub; the cloud answers OK (KubeEdge v1.23.1
// cloud/pkg/edgecontroller/controller/upstream.go deletePod), and its pod
// delete that follows finds the node done with the pod.
func TestPodDeleteThroughCloud(t *testing.T) {
	dir := containerDir(t, "busybox:del")
	const node = "edge-del"
	isDelete := func(m bus.Message) bool {
		return m.Route.Operation == bus.OpDelete && m.Route.Resource == "default/pod/web"
	}
	srv := hubtest.NewServer(hubtest.Config{Retransmit: 200 * time.Millisecond, Answer: func(req bus.Message) (bus.Message, bool) {
		var resp bus.Message
		switch {
		case isDelete(req):
			resp = req.Resp(bus.OKContent)
		case req.Route.Operation == bus.OpPatch:
			// cloudcore answers a podpatch with the patched pod; no
			// object here, meta then keeps its row as it is.
			resp = req.Resp([]byte(`{"Object":null,"Err":null}`))
		default:
			return bus.Message{}, false
		}
		resp.Route.Source, resp.Route.Group = bus.SourceEdgeController, bus.GroupResource
		return resp, true
	}})
	defer srv.Close()

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	store, err := db.Open(ctx, filepath.Join(dir, db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	b := bus.New(bus.Config{QueueLen: 1024}, log)
	mm, err := meta.New(meta.Config{NodeName: node}, b, store, log)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{Server: srv.Addr, CertServer: srv.CertURL, Token: srv.Token(node), NodeName: node,
		DataDir: dir, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}, b, log)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := pod.New(pod.Config{DataDir: dir, NodeName: node, Era: bus.EraV123,
		RuntimeRoot: filepath.Join(dir, "runc"), ImagesDir: filepath.Join(dir, "ro"), ManifestsDir: filepath.Join(dir, "manifests"),
		Platform: "linux/" + podtest.BusyboxArch(), StatusInterval: time.Millisecond, SyncInterval: 50 * time.Millisecond}, b, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	for _, m := range []runner{mm, h, pr} {
		go func() { done <- m.Run(ctx) }()
	}
	defer func() {
		cancel()
		for range 3 {
			<-done
		}
		cleanupPods(dir)
	}()

	// No terminationGracePeriodSeconds: the pod's own grace is 30 s.
	podJSON := `{"metadata":{"name":"web","namespace":"default","uid":"uid-web","resourceVersion":"7"},
	  "spec":{"containers":[{"name":"main","image":"busybox:del","imagePullPolicy":"Never",
	    "command":["sh","-c","trap '' TERM; while true; do sleep 0.1; done"]}]}}`
	srv.Push(bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert, "default/pod/web", []byte(podJSON)))
	if _, err := srv.WaitFor(waitCtx(t), podPhase("Running")); err != nil {
		t.Fatalf("pod not running: %v", err)
	}

	var p map[string]any
	json.Unmarshal([]byte(podJSON), &p)
	md := p["metadata"].(map[string]any)
	md["deletionTimestamp"] = time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	md["deletionGracePeriodSeconds"] = 2
	deleting, _ := json.Marshal(p)
	start := time.Now()
	srv.Push(bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpUpdate, "default/pod/web", deleting))
	del, err := srv.WaitFor(waitCtx(t), isDelete)
	if err != nil {
		t.Fatalf("no final pod delete: %v", err)
	}
	// At least the 2 s grace (SIGTERM is ignored); 2+5 s tells it from
	// the pod's 30 s on a loaded machine.
	d := time.Since(start)
	t.Logf("final delete %s after the delete", d)
	if d < 2*time.Second || d > 7*time.Second {
		t.Errorf("final delete %s after the delete, want about 2 s", d)
	}
	if del.Route.Source != bus.ModulePod || del.Route.Group != bus.GroupMeta ||
		string(del.Content) != `{"gracePeriodSeconds":0,"preconditions":{"uid":"uid-web"}}` {
		t.Errorf("final delete = %+v %s, want edged/meta with DeleteOptions grace 0 and the uid", del.Route, del.Content)
	}
	// The final status went before it.
	if _, err := srv.WaitFor(waitCtx(t), podPhase("Failed")); err != nil {
		t.Errorf("no final status: %v", err)
	}
	// cloudcore deleted the pod in kube-apiserver; the watch sends the
	// delete to the edge, which acknowledges it.
	gone := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpDelete, "default/pod/web", deleting)
	srv.Push(gone)
	if err := srv.WaitAcked(waitCtx(t), gone.Header.ID); err != nil {
		t.Fatalf("cloud's pod delete not acknowledged: %v", err)
	}
	podDir := filepath.Join(pod.PodsDir(dir), "uid-web")
	for deadline := time.Now().Add(time.Minute); ; {
		_, err := os.Stat(podDir)
		if os.IsNotExist(err) && len(pr.Pods()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not removed: %v %+v", err, pr.Pods())
		}
		time.Sleep(20 * time.Millisecond) // no event marks the end of a delete; poll
	}
	if _, err := store.MetaByKey(ctx, "default/pod/web"); err == nil {
		t.Error("pod row still stored after the cloud's delete")
	}
}

// podPhase matches a podpatch of pod web with the given phase.
func podPhase(phase string) func(bus.Message) bool {
	return func(m bus.Message) bool {
		if m.Route.Resource != "default/podpatch/web" {
			return false
		}
		s, _ := bus.ContentString(m.Content)
		var p struct {
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		}
		return json.Unmarshal([]byte(s), &p) == nil && p.Status.Phase == phase
	}
}
