package nodestatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"edgenode/bus"
)

// sendV123 registers the node until that succeeds, then sends nodepatch
// when the status changed, or at least every ReportFrequency (the order edgecore v1.23.1 follows
// on a new link: node insert, then nodepatch; KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go). A patch that fails is retried next round because n.last
// still holds what the cloud has.
//
// A node this edge registered before is not inserted again: cloudcore logs
// every insert of an existing node as an error ("create node ... already
// exists", KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go
// registerNode). The node object the cloud returned is kept by meta under
// null/node/<name>; when it is there, the node only patches its status,
// and a NotFound answer to the patch (the node was deleted in the cloud)
// brings the insert back.
//
// It reports whether the cloud now has st's status: sent in this round,
// or the same as the last one sent.
func (n *Node) sendV123(ctx context.Context, st *NodeStatus, now time.Time) bool {
	if !n.registered.Load() && n.register(ctx, st, now) {
		return n.last == st
	}
	if !n.registered.Load() {
		return false
	}
	if sameStatus(n.last, st) && now.Sub(n.lastSent) < n.cfg.ReportFrequency {
		return true
	}
	// The content is a strategic merge patch of the status, as a JSON
	// string (KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go
	// patchNode); conditions and addresses merge by type. daemonEndpoints is
	// left out: cloudstream sets its port when the node's stream tunnel
	// connects (KubeEdge v1.23.1 cloud/pkg/cloudstream/tunnelserver.go
	// updateNodeKubeletEndpoint), and a patch with ours would undo that, so
	// kube-apiserver could no longer reach logs, exec or metrics.
	body := *st
	body.DaemonEndpoints = nil
	patch, _ := json.Marshal(struct {
		Status *NodeStatus `json:"status"`
	}{&body})
	res := bus.ResourcePath(bus.NullNamespace, bus.KindNodePatch, n.cfg.NodeName)
	if _, err := n.request(ctx, bus.OpPatch, res, bus.JSONString(string(patch))); err != nil {
		n.failed.Add(1)
		if errors.Is(err, ErrNotFound) {
			n.log.Info("the node is gone from the cloud, registering it again", "node", n.cfg.NodeName)
			n.registered.Store(false)
			n.gone = true // meta's copy is stale: insert, do not trust it
			n.lease = nil
			return false
		}
		n.log.Debug("nodepatch failed, retrying next round", "err", err)
		return false
	}
	n.sent.Add(1)
	n.last, n.lastSent = st, now
	n.setKnown()
	return true
}

// register finds the node registered in an earlier run or inserts it. It
// reports whether this round's status went out with the insert.
func (n *Node) register(ctx context.Context, st *NodeStatus, now time.Time) bool {
	nodeRes := bus.ResourcePath(bus.NullNamespace, bus.KindNode, n.cfg.NodeName)
	if uid, ok := n.storedNode(ctx, nodeRes); ok && !n.gone {
		n.nodeUID = uid
		n.setRegistered()
		n.log.Info("node registered before, patching its status", "node", n.cfg.NodeName)
		return false
	}
	content, _ := json.Marshal(NodeObject(n.cfg, *st))
	obj, err := n.request(ctx, bus.OpInsert, nodeRes, content)
	switch {
	case err == nil:
		var created struct {
			Metadata ObjectMeta `json:"metadata"`
		}
		if json.Unmarshal(obj, &created) == nil {
			n.nodeUID = created.Metadata.UID
		}
		n.setRegistered()
		n.created, n.gone = true, false
		n.sent.Add(1)
		n.last, n.lastSent = st, now
		n.setKnown()
		n.log.Info("node registered", "node", n.cfg.NodeName)
		return true
	case errors.Is(err, ErrAlreadyExists):
		// Registered from elsewhere, or the store was lost: bring its
		// status up to date with a patch, as the kubelet does.
		n.setRegistered()
		n.log.Info("node already registered", "node", n.cfg.NodeName)
		return false
	default:
		n.failed.Add(1)
		n.log.Debug("node insert failed, retrying next round", "err", err)
		return true
	}
}

// storedNode asks meta for the node object kept from an earlier answer of
// the cloud (a local query: meta answers node queries from its store, as
// edgecore's MetaManager does) and returns its uid.
func (n *Node) storedNode(ctx context.Context, res string) (string, bool) {
	msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, res, nil)
	resp, err := n.b.SendSync(ctx, bus.ModuleMeta, msg, n.cfg.SyncTimeout)
	if err != nil || resp.Route.Operation == bus.OpError {
		return "", false
	}
	var rows []string
	if json.Unmarshal(resp.Content, &rows) != nil || len(rows) != 1 {
		return "", false
	}
	var node struct {
		Metadata ObjectMeta `json:"metadata"`
	}
	if json.Unmarshal([]byte(rows[0]), &node) != nil || node.Metadata.Name != n.cfg.NodeName {
		return "", false
	}
	return node.Metadata.UID, true
}

// NodeObject returns the v1.Node the v1.23 edge registers: name, labels the
// kubelet and KubeEdge set, and the status.
func NodeObject(cfg Config, st NodeStatus) KubeNode {
	labels := map[string]string{
		"kubernetes.io/arch":            st.NodeInfo.Architecture,
		"kubernetes.io/os":              "linux",
		"kubernetes.io/hostname":        cfg.NodeName,
		"node-role.kubernetes.io/edge":  "",
		"node-role.kubernetes.io/agent": "",
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	return KubeNode{Kind: "Node", APIVersion: "v1",
		Metadata: ObjectMeta{Name: cfg.NodeName, Labels: labels}, Status: st}
}

// renewLease keeps kube-node-lease/lease/<node> fresh (KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go
// queryLease and createOrUpdateLease): the first round queries it; a NotFound answer means insert; later
// rounds update the object the cloud returned, with a new renewTime. Any
// failure forgets the lease, so the next round queries again (this also
// recovers from a resourceVersion conflict).
func (n *Node) renewLease(ctx context.Context, now time.Time) {
	if !n.registered.Load() {
		return
	}
	res := n.leaseRes
	op := bus.OpUpdate
	if n.lease == nil && n.created {
		// A node this run created has no lease: insert it without the
		// query, whose NotFound cloudcore logs as an error (upstream.go
		// queryLease).
		op = bus.OpInsert
		n.lease = n.newLease()
	}
	if n.lease == nil {
		obj, err := n.request(ctx, bus.OpQuery, res, []byte("null"))
		switch {
		case errors.Is(err, ErrNotFound) || err == nil && isNull(obj):
			op = bus.OpInsert
			n.lease = n.newLease()
		case err != nil:
			n.leaseFailed.Add(1)
			n.log.Debug("lease query failed", "err", err)
			return
		default:
			var l Lease
			if err := json.Unmarshal(obj, &l); err != nil {
				n.leaseFailed.Add(1)
				n.log.Debug("lease query answer", "err", err)
				return
			}
			n.lease = &l
		}
	}
	l := *n.lease
	l.Kind, l.APIVersion = "Lease", "coordination.k8s.io/v1"
	l.Spec.HolderIdentity = n.cfg.NodeName
	l.Spec.LeaseDurationSeconds = int(n.cfg.LeaseDuration / time.Second)
	l.Spec.RenewTime = now.UTC().Format(microTimeFormat)
	content, _ := json.Marshal(l)
	obj, err := n.request(ctx, op, res, content)
	n.created = false
	if err != nil {
		n.lease = nil
		n.leaseFailed.Add(1)
		n.log.Debug("lease renew failed", "op", op, "err", err)
		return
	}
	var got Lease
	if !isNull(obj) && json.Unmarshal(obj, &got) == nil && got.Metadata.Name != "" {
		l = got
	}
	*n.lease = l // n.lease is this run's; a round allocates no new one
	n.leaseOK.Add(1)
}

func (n *Node) newLease() *Lease {
	l := &Lease{Metadata: ObjectMeta{Name: n.cfg.NodeName, Namespace: LeaseNamespace}}
	if n.nodeUID != "" {
		l.Metadata.OwnerReferences = []OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.cfg.NodeName, UID: n.nodeUID}}
	}
	return l
}

func isNull(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// request sends one sync request as edged to MetaManager and returns the
// Object of the answer (nil for a plain "OK").
func (n *Node) request(ctx context.Context, op bus.Op, res string, content []byte) (json.RawMessage, error) {
	msg := bus.NewMessage(bus.ModulePod, bus.GroupMeta, op, res, content)
	resp, err := n.b.SendSync(ctx, bus.ModuleMeta, msg, n.cfg.SyncTimeout)
	if err != nil {
		return nil, fmt.Errorf("nodestatus: %s %s: %w", op, res, err)
	}
	if resp.Route.Operation == bus.OpError {
		reason, _ := bus.ContentString(resp.Content)
		return nil, fmt.Errorf("nodestatus: %s %s: %w: %s", op, res, ErrRejected, reason)
	}
	obj, err := ParseObjectResp(resp.Content)
	if err != nil {
		return obj, fmt.Errorf("nodestatus: %s %s: %w", op, res, err)
	}
	return obj, nil
}

// StatusError is a Kubernetes metav1.Status carried in the Err of a cloud
// answer.
type StatusError struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Code    int    `json:"code"`
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Reason, e.Code, e.Message)
}

// Is maps the Kubernetes reasons this module acts on to sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Reason == "NotFound" || e.Reason == "" && e.Code == 404
	case ErrAlreadyExists:
		return e.Reason == "AlreadyExists"
	case ErrRejected:
		return true
	}
	return false
}

// ParseObjectResp reads an answer to a remote request (KubeEdge v1.23.1 cloud/pkg/edgecontroller/controller/upstream.go
// nodeMsgResponse): "OK"
// (nil, nil), or {"Object":...,"Err":...} where a non-null Err is returned
// as a *StatusError (or ErrRejected when it has no status).
func ParseObjectResp(content []byte) (json.RawMessage, error) {
	if bus.IsOK(content) || isNull(content) {
		return nil, nil
	}
	var r struct {
		Object json.RawMessage
		Err    json.RawMessage
	}
	if err := json.Unmarshal(content, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if isNull(r.Err) {
		return r.Object, nil
	}
	var e struct {
		ErrStatus *StatusError
	}
	if err := json.Unmarshal(r.Err, &e); err != nil || e.ErrStatus == nil {
		return r.Object, fmt.Errorf("%w: %s", ErrRejected, trunc(string(r.Err)))
	}
	return r.Object, e.ErrStatus
}

// trunc shortens s for an error message.
func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
