package meta

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"edgenode/bus"
	"edgenode/db"
)

// Reasons of error replies. The remote ones are KubeEdge's text
// (docs/protocol.md 3.3).
const (
	reasonNotConnected = "failed to process remote: not connected"
	reasonRemote       = "failed to process remote: "
	reasonBusy         = "failed to process remote: too many remote operations in flight"
	reasonBadResource  = "bad resource: "
	reasonUnknownKind  = "unknown resource type: "
	reasonBadOp        = "not supported operation: "
	reasonStore        = "failed to store: "
)

// handle processes one message. It runs on Run's goroutine and never blocks
// on the bus.
func (m *Meta) handle(ctx context.Context, msg bus.Message) {
	op := msg.Route.Operation
	if msg.Route.Resource == bus.ResNodeConnection && (op == bus.OpConnect || op == bus.OpPublish) {
		m.nodeConnection(msg)
		return
	}
	if op == bus.OpMetaSync {
		m.syncPodStatus(ctx)
		return
	}
	if len(msg.Content) > 0 && !json.Valid(msg.Content) {
		m.fail(msg, ErrBadContent.Error()+": not JSON")
		return
	}
	r := msg.Res
	if !r.Valid(op) || !validPath(msg.Route.Resource, r) {
		m.fail(msg, reasonBadResource+msg.Route.Resource)
		return
	}
	if !knownKinds[r.Kind] && !(anyKindOp(op) && m.fromCloud(msg)) {
		m.fail(msg, reasonUnknownKind+string(r.Kind))
		return
	}
	switch op {
	case bus.OpInsert:
		m.insert(ctx, msg, r)
	case bus.OpUpdate:
		m.update(ctx, msg, r)
	case bus.OpPatch:
		m.patch(ctx, msg, r)
	case bus.OpDelete:
		m.delete(ctx, msg, r)
	case bus.OpQuery:
		m.query(ctx, msg, r)
	case bus.OpResponse:
		m.response(ctx, msg, r)
	default:
		m.fail(msg, reasonBadOp+string(op))
	}
}

// anyKindOp reports whether op stores or deletes a cloud resource of any
// kind, known or not. KubeEdge's handleMessage keeps any resource the
// cloud sends under its path, with the kind token as type, and answers
// "OK"; an error reply is no ACK to cloudcore, which would resend it
// without end (edge/pkg/metamanager/process.go v1.23.1, processInsert,
// processUpdate, processDelete, processResponse; docs/protocol.md 3.2, 3.3).
func anyKindOp(op bus.Op) bool {
	switch op {
	case bus.OpInsert, bus.OpUpdate, bus.OpDelete, bus.OpResponse:
		return true
	}
	return false
}

// fromCloud reports whether msg came from the cloud: its source is not one
// of the edge's modules (docs/protocol.md 1.5).
func (m *Meta) fromCloud(msg bus.Message) bool {
	switch src := msg.Route.Source; src {
	case bus.ModuleHub, bus.ModuleMeta, bus.ModulePod, bus.ModuleTwin, bus.ModuleMQTT, bus.ModuleNodeStatus,
		bus.ModuleEdgeHub, bus.ModuleBusSrc, bus.ModuleTest:
		return false
	default:
		return isCloud(src) || !m.b.Has(src)
	}
}

// nodeConnection records the cloud link state the hub reports (docs/protocol.md
// 1.6, 3.2): operation publish (v0.3) or connect (v1.23).
func (m *Meta) nodeConnection(msg bus.Message) {
	s, _ := bus.ContentString(msg.Content)
	switch s {
	case bus.CloudConnected:
		m.connected.Store(true)
	case bus.CloudDisconnected:
		m.connected.Store(false)
	default:
		m.fail(msg, ErrBadContent.Error()+": want "+bus.CloudConnected+" or "+bus.CloudDisconnected)
		return
	}
	m.log.Info("cloud connection", "state", s)
}

// insert: docs/protocol.md 3.2 and 3.3.
func (m *Meta) insert(ctx context.Context, msg bus.Message, r bus.Resource) {
	cloud := m.fromCloud(msg)
	val, err := storedValue(r.Kind, msg.Content, cloud)
	if err != nil {
		m.fail(msg, err.Error())
		return
	}
	if r.Kind == bus.KindEvent {
		// Events are only passed on (docs/protocol.md 3.3).
		m.passOn(msg, cloud)
		return
	}
	if !cloud {
		// Node, lease, pod inserts of the edge are answered by the cloud.
		m.remote(ctx, msg, r, false)
		return
	}
	row := db.Meta{Key: msg.Route.Resource, Type: string(r.Kind), Value: val}
	if m.cfg.Era == bus.EraV03 {
		// v0.3 keeps an existing row (docs/protocol.md 3.1).
		_, err = m.d.InsertMeta(ctx, row)
	} else {
		err = m.d.UpsertMeta(ctx, row)
	}
	if err != nil {
		m.fail(msg, reasonStore+err.Error())
		return
	}
	m.toModules(msg, r)
	m.ack(msg)
}

// update: docs/protocol.md 3.2 and 3.3.
func (m *Meta) update(ctx context.Context, msg bus.Message, r bus.Resource) {
	cloud := m.fromCloud(msg)
	val, err := storedValue(r.Kind, msg.Content, cloud)
	if err != nil {
		m.fail(msg, err.Error())
		return
	}
	switch {
	case r.Kind == bus.KindEvent:
		m.passOn(msg, cloud)
	case cloud:
		if err := m.d.UpsertMeta(ctx, db.Meta{Key: msg.Route.Resource, Type: string(r.Kind), Value: val}); err != nil {
			m.fail(msg, reasonStore+err.Error())
			return
		}
		m.toModules(msg, r)
		m.ack(msg)
	case r.Kind == bus.KindLease:
		m.remote(ctx, msg, r, false)
	default:
		// An edge status: store, answer, hand to the hub even while
		// disconnected (the hub queues it).
		changed, err := m.store(ctx, msg.Route.Resource, r.Kind, val)
		if err != nil {
			m.fail(msg, reasonStore+err.Error())
			return
		}
		m.replyOK(msg)
		if changed {
			m.send(bus.ModuleHub, msg)
		}
	}
}

// patch: podpatch and nodepatch from the edge (docs/protocol.md 2.5, 3.3). The
// patch is stored; while connected it is a remote operation whose answer
// updates the pod or node row; without a cloud it is handed to the hub to queue
// and the asker gets KubeEdge's "not connected" error.
func (m *Meta) patch(ctx context.Context, msg bus.Message, r bus.Resource) {
	if m.fromCloud(msg) || (r.Kind != bus.KindPodPatch && r.Kind != bus.KindNodePatch) {
		m.fail(msg, reasonBadOp+string(msg.Route.Operation)+" of "+string(r.Kind))
		return
	}
	val, err := storedValue(r.Kind, msg.Content, false)
	if err != nil {
		m.fail(msg, err.Error())
		return
	}
	changed, err := m.store(ctx, msg.Route.Resource, r.Kind, val)
	if err != nil {
		m.fail(msg, reasonStore+err.Error())
		return
	}
	switch {
	case !changed:
		m.replyOK(msg)
	case m.connected.Load():
		m.remote(ctx, msg, r, false)
	default:
		// Answer first: the hub answers the waiter of a sync message it
		// cannot queue, and the asker should hear meta's reason.
		m.fail(msg, reasonNotConnected)
		m.send(bus.ModuleHub, msg)
	}
}

// store upserts a row of an edge status and reports whether it changed.
// Only podstatus and podpatch are compared: KubeEdge drops an unchanged
// podstatus (docs/protocol.md 2.5), while node statuses are heartbeats.
func (m *Meta) store(ctx context.Context, key string, kind bus.Kind, val string) (bool, error) {
	if kind == bus.KindPodStatus || kind == bus.KindPodPatch {
		old, err := m.d.MetaByKey(ctx, key)
		if err == nil && old.Value == val {
			return false, nil
		}
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return false, err
		}
	}
	return true, m.d.UpsertMeta(ctx, db.Meta{Key: key, Type: string(kind), Value: val})
}

// delete: docs/protocol.md 3.2 and 3.3.
func (m *Meta) delete(ctx context.Context, msg bus.Message, r bus.Resource) {
	cloud := m.fromCloud(msg)
	if !cloud && r.Kind == bus.KindPod {
		m.finalDelete(ctx, msg, r)
		return
	}
	var uid string
	if len(msg.Content) > 0 && string(msg.Content) != "null" {
		o, err := decodeObject(msg.Content, false)
		if err != nil {
			m.fail(msg, err.Error())
			return
		}
		if o.Metadata != nil {
			uid = o.Metadata.UID
		}
	}
	if !cloud {
		if _, err := m.d.DeleteMeta(ctx, msg.Route.Resource); err != nil {
			m.fail(msg, reasonStore+err.Error())
			return
		}
		m.send(bus.ModuleHub, msg)
		m.replyOK(msg)
		return
	}
	if err := m.deleteRows(ctx, msg.Route.Resource, r, uid); err != nil {
		m.fail(msg, reasonStore+err.Error())
		return
	}
	m.toModules(msg, r)
	m.ack(msg)
}

// finalDelete passes edged's pod delete, "the pod has terminated, delete
// it", to the cloud as a remote operation (KubeEdge v1.23.1
// edge/pkg/metamanager/process.go processDelete sends it on, and
// client/pod.go Delete waits for the answer). cloudcore deletes the pod in
// kube-apiserver with the DeleteOptions of the content and answers "OK"
// or the error (cloud/pkg/edgecontroller/controller/upstream.go
// deletePod); its pod delete to the edge follows. Without a cloud it fails
// at once and edged asks again later.
func (m *Meta) finalDelete(ctx context.Context, msg bus.Message, r bus.Resource) {
	if _, ok := deleteUID(msg.Content); !ok {
		m.fail(msg, ErrBadContent.Error()+": want DeleteOptions or a pod uid")
		return
	}
	m.remote(ctx, msg, r, false)
}

// deleteRows deletes the row of key. A pod is deleted only if the stored
// pod has the deleted pod's uid, so a late delete of an old incarnation
// keeps a newer pod of the same name; its podpatch and podstatus rows go
// with it (docs/protocol.md 3.3).
func (m *Meta) deleteRows(ctx context.Context, key string, r bus.Resource, uid string) error {
	if r.Kind != bus.KindPod {
		_, err := m.d.DeleteMeta(ctx, key)
		return err
	}
	var deleted bool
	var err error
	if uid != "" {
		deleted, err = m.d.DeleteMetaIfValueContains(ctx, key, uid)
	} else {
		deleted, err = m.d.DeleteMeta(ctx, key)
	}
	if err != nil || !deleted {
		return err
	}
	for _, k := range []bus.Kind{bus.KindPodPatch, bus.KindPodStatus} {
		if _, err := m.d.DeleteMeta(ctx, bus.ResourcePath(r.Namespace, k, r.Name)); err != nil {
			return err
		}
	}
	return nil
}

// toModules hands a cloud message to the edge modules that use it: device
// objects to twin, node objects to nobody, the rest to edged (docs/protocol.md
// 3.3). v1beta1 devices and device models also go to the DMI module when it
// runs (KubeEdge v1.23.1 edge/pkg/devicetwin/process.go, classifyMsg: they
// reach the DMI worker).
func (m *Meta) toModules(msg bus.Message, r bus.Resource) {
	switch {
	case msg.Route.Source.IsDeviceController():
		m.send(bus.ModuleTwin, msg)
		if (r.Kind == bus.KindDevice || r.Kind == bus.KindDeviceModel) && m.b.Has(bus.ModuleDMI) {
			m.send(bus.ModuleDMI, msg)
		}
	case msg.Route.Source == bus.SourcePolicyController:
	case r.Kind == bus.KindNode || r.Kind == bus.KindNodePatch || r.Kind == bus.KindNodeStatus:
	default:
		m.send(bus.ModulePod, msg)
	}
}

// passOn forwards a message meta does not store: edge to cloud, cloud to
// edged.
func (m *Meta) passOn(msg bus.Message, cloud bool) {
	if cloud {
		m.send(bus.ModulePod, msg)
		m.ack(msg)
		return
	}
	m.send(bus.ModuleHub, msg)
	m.replyOK(msg)
}

// response handles a response nobody waited for: from the cloud (stored,
// handed on, acknowledged; docs/protocol.md 3.2, 3.3, 9) or from an edge module
// answering the cloud (passed to the hub).
func (m *Meta) response(ctx context.Context, msg bus.Message, r bus.Resource) {
	if !m.fromCloud(msg) {
		m.send(bus.ModuleHub, msg)
		return
	}
	if err := m.storeResponse(ctx, msg.Route.Resource, r, msg.Content); err != nil {
		m.fail(msg, reasonStore+err.Error())
		return
	}
	m.toModules(msg, r)
	m.ack(msg)
}

// storeResponse stores what a cloud answer carries for the request's
// resource: the Object of a v1.23 {"Object","Err"} answer when Err is null
// (a podpatch or nodepatch answer holds the patched pod or node, stored
// under its own key), a v0.3 object as it is, and nothing for a string
// ("OK") or an error.
func (m *Meta) storeResponse(ctx context.Context, key string, r bus.Resource, content []byte) error {
	if r.Name == "" || len(content) == 0 || !json.Valid(content) {
		return nil
	}
	if r.Kind == bus.KindPodStatus || r.Kind == bus.KindNodeStatus {
		return nil // the edge's own reports; an answer does not replace them
	}
	if r.Kind == bus.KindLease {
		// Every renewal (each 10 s) returns a new lease, and nothing reads
		// it from the store: nodestatus keeps it in memory and asks the
		// cloud after a restart. Keeping it would be an fsync'd write on the
		// board's flash every 10 s (edgecore v1.23.1's metamanager does keep
		// it, process.go processRemote).
		return nil
	}
	val := content
	if or, ok := decodeObjectResp(content); ok {
		if !isNull(or.Err) || isNull(or.Object) {
			return nil
		}
		val = or.Object
	}
	if _, isString := bus.ContentString(val); !isObject(val) && !(isString && r.Kind == bus.KindKubeCA) {
		return nil // "OK", an error text, an array: nothing to keep
	}
	kind := r.Kind
	switch kind {
	case bus.KindPodPatch:
		kind = bus.KindPod
	case bus.KindNodePatch:
		kind = bus.KindNode
	}
	if kind != r.Kind {
		key = bus.ResourcePath(r.Namespace, kind, r.Name)
	}
	return m.d.UpsertMeta(ctx, db.Meta{Key: key, Type: string(kind), Value: string(val)})
}

// syncPodStatus is v0.3's podstatus resync (docs/protocol.md 2.5): every stored
// podstatus whose pod is still stored goes to the cloud in one update of
// "<ns>/podstatus" (ns of the first record), source metaManager, group
// resource; the others are deleted.
func (m *Meta) syncPodStatus(ctx context.Context) {
	rows, err := m.d.MetaByType(ctx, string(bus.KindPodStatus))
	if err != nil {
		m.errs.Add(1)
		m.log.Warn("podstatus sync", "err", err)
		return
	}
	var vals []string
	var ns string
	for _, row := range rows {
		podKey := strings.Replace(row.Key, "/"+string(bus.KindPodStatus)+"/", "/"+string(bus.KindPod)+"/", 1)
		if _, err := m.d.MetaByKey(ctx, podKey); errors.Is(err, db.ErrNotFound) {
			if _, err := m.d.DeleteMeta(ctx, row.Key); err != nil {
				m.log.Warn("podstatus sync: delete stale status", "key", row.Key, "err", err)
			}
			continue
		}
		if !json.Valid([]byte(row.Value)) {
			continue
		}
		if ns == "" {
			ns, _, _ = strings.Cut(row.Key, "/")
		}
		vals = append(vals, row.Value)
	}
	if len(vals) == 0 {
		return
	}
	content := []byte("[" + strings.Join(vals, ",") + "]")
	m.send(bus.ModuleHub, bus.NewMessage(bus.ModuleMeta, bus.GroupResource, bus.OpUpdate, ns+"/"+string(bus.KindPodStatus), content))
}
