package hubtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"

	"edgenode/bus"
)

// The API side of a v1.23 cloud: what EdgeController's upstream does with
// the node's requests (KubeEdge v1.23.1
// cloud/pkg/edgecontroller/controller/upstream.go) and what kube-apiserver
// accepts. Every object the node sends is decoded strictly into the
// k8s.io/api type (unknown or misspelt fields, wrong types and time
// strings that are not RFC 3339 are errors) and patches are applied as
// strategic merge patches, as kube-apiserver does. An object that fails is
// answered with the API's error, as the real cloud answers, and is kept in
// Invalid so that a test can fail on it.
//
// The API holds nodes, pods and leases. Pods come from Push (a pod insert
// or update stores it) or SetPod; DeletePod marks one deleted as kubectl
// delete does. Tests may still answer a request first with Config.Answer.

var (
	gvrNodes  = schema.GroupResource{Resource: "nodes"}
	gvrPods   = schema.GroupResource{Resource: "pods"}
	gvrLeases = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
)

// api is the object store; Server.mu guards it.
type api struct {
	nodes  map[string]*corev1.Node
	pods   map[string]*corev1.Pod // key ns/name
	leases map[string]*coordinationv1.Lease
	rv     int

	invalid       []error
	nodeCreates   int // node inserts that created a node
	nodeConflicts int // node inserts of a node that existed
	podDeletes    int // final pod deletes that removed a pod

	followUps []bus.Message // pushed after the answer, as watch events are

	// deviceTwins is each device's twins as its status lists them, by
	// device id and twin name (deviceReport).
	deviceTwins map[string]map[string]*DeviceTwin
}

// DeviceTwin is one twin in a device's status: the reported value (from
// the edge's actual value) and the observed desired one (its expected).
type DeviceTwin struct{ Reported, ObservedDesired string }

func newAPI() api {
	return api{nodes: map[string]*corev1.Node{}, pods: map[string]*corev1.Pod{}, leases: map[string]*coordinationv1.Lease{},
		deviceTwins: map[string]map[string]*DeviceTwin{}}
}

func (a *api) nextRV() string {
	a.rv++
	return strconv.Itoa(a.rv)
}

// strictDecode decodes data into v as kube-apiserver's strict field
// validation does: case-sensitive names, no unknown or duplicate fields.
func strictDecode(data []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// contentData is the request body as cloudcore's GetContentData reads it:
// a JSON string is the bytes it holds, anything else is itself.
func contentData(content []byte) []byte {
	if s, ok := bus.ContentString(content); ok {
		return []byte(s)
	}
	return content
}

// apiRequest answers m if it is a request the API side serves. s.mu is
// held.
func (s *Server) apiRequest(m bus.Message) (bus.Message, bool) {
	if isDeviceReport(m) {
		s.deviceReport(m)
		// The device controller confirms each twin and state report
		// (KubeEdge v1.23.1 cloud/pkg/devicecontroller/controller/upstream.go
		// updateDeviceStatus): group twin, parent the report's id, "OK".
		resp := m.Resp(bus.JSONString("OK"))
		resp.Route.Source, resp.Route.Group = bus.SourceDeviceController, bus.GroupTwin
		resp.SetResource(bus.ResTwin)
		return resp, true
	}
	r := m.Res
	if !r.Valid(m.Route.Operation) || r.Name == "" {
		return bus.Message{}, false
	}
	op := m.Route.Operation
	var obj any
	var err error
	switch {
	case r.Kind == bus.KindNode && op == bus.OpInsert:
		obj, err = s.createNode(r.Name, contentData(m.Content))
	case r.Kind == bus.KindNode && op == bus.OpQuery:
		obj, err = s.nodeCopy(r.Name)
		return s.queryResp(m, obj, err)
	case r.Kind == bus.KindNodePatch && op == bus.OpPatch:
		obj, err = s.patchNode(r.Name, contentData(m.Content))
	case r.Kind == bus.KindPodPatch && op == bus.OpPatch:
		obj, err = s.patchPod(r.Namespace, r.Name, contentData(m.Content))
	case r.Kind == bus.KindPod && op == bus.OpDelete:
		return s.deletePodResp(m, r.Namespace, r.Name)
	case r.Kind == bus.KindLease && op == bus.OpQuery:
		obj, err = s.leaseCopy(r.Namespace, r.Name)
	case r.Kind == bus.KindLease && (op == bus.OpInsert || op == bus.OpUpdate):
		obj, err = s.putLease(r.Namespace, r.Name, op == bus.OpInsert, contentData(m.Content))
	default:
		return bus.Message{}, false
	}
	return s.objectResp(m, obj, err)
}

func (s *Server) respond(req bus.Message, content []byte) bus.Message {
	resp := req.Resp(content)
	resp.Route.Source, resp.Route.Group = bus.SourceEdgeController, bus.GroupResource
	return resp
}

// objectResp answers with {"Object":...,"Err":...} (KubeEdge v1.23.1
// common/types/types.go ObjectResp).
func (s *Server) objectResp(req bus.Message, obj any, err error) (bus.Message, bool) {
	var body struct {
		Object any
		Err    any
	}
	body.Object = obj
	if err != nil {
		body.Object = nil
		body.Err = err
		var se *apierrors.StatusError
		if !errors.As(err, &se) {
			body.Err = apierrors.NewInternalError(err)
		}
	}
	b, _ := json.Marshal(body)
	return s.respond(req, b), true
}

// queryResp answers a query as queryInner does: the object itself, or
// the error itself (no ObjectResp).
func (s *Server) queryResp(req bus.Message, obj any, err error) (bus.Message, bool) {
	var b []byte
	if err != nil {
		b, _ = json.Marshal(err)
	} else {
		b, _ = json.Marshal(obj)
	}
	return s.respond(req, b), true
}

// rejectObject records an object the API refused and returns the API's error.
func (s *Server) rejectObject(kind schema.GroupResource, name string, err error) error {
	err = fmt.Errorf("%s %q: %w", kind.Resource, name, err)
	s.api.invalid = append(s.api.invalid, err)
	return apierrors.NewBadRequest(err.Error())
}

func (s *Server) createNode(name string, data []byte) (any, error) {
	var n corev1.Node
	if err := strictDecode(data, &n); err != nil {
		return nil, s.rejectObject(gvrNodes, name, err)
	}
	if err := validateNode(&n, name); err != nil {
		return nil, s.rejectObject(gvrNodes, name, err)
	}
	if _, ok := s.api.nodes[name]; ok {
		s.api.nodeConflicts++
		return nil, apierrors.NewAlreadyExists(gvrNodes, name)
	}
	n.UID = types.UID(fmt.Sprintf("node-uid-%d", len(s.api.nodes)+1))
	n.ResourceVersion = s.api.nextRV()
	n.CreationTimestamp = metav1.Now()
	s.api.nodes[name] = &n
	s.api.nodeCreates++
	return n.DeepCopy(), nil
}

func (s *Server) nodeCopy(name string) (any, error) {
	n, ok := s.api.nodes[name]
	if !ok {
		return nil, apierrors.NewNotFound(gvrNodes, name)
	}
	c := n.DeepCopy()
	c.Kind, c.APIVersion = "Node", "v1"
	return c, nil
}

func (s *Server) patchNode(name string, patch []byte) (any, error) {
	old, ok := s.api.nodes[name]
	if !ok {
		return nil, apierrors.NewNotFound(gvrNodes, name)
	}
	oldJSON, _ := json.Marshal(old)
	var n corev1.Node
	if err := s.applyPatch(oldJSON, patch, &n); err != nil {
		return nil, s.rejectObject(gvrNodes, name, err)
	}
	if err := validateNode(&n, name); err != nil {
		return nil, s.rejectObject(gvrNodes, name, err)
	}
	n.Spec, n.ObjectMeta = old.Spec, old.ObjectMeta // the status subresource
	n.ResourceVersion = s.api.nextRV()
	s.api.nodes[name] = &n
	return n.DeepCopy(), nil
}

// applyPatch applies a strategic merge patch to old as kube-apiserver
// does and decodes the result strictly into out.
func (s *Server) applyPatch(old, patch []byte, out any) error {
	var probe map[string]json.RawMessage
	if err := strictDecode(patch, &probe); err != nil {
		return fmt.Errorf("patch is not a JSON object: %w", err)
	}
	merged, err := strategicpatch.StrategicMergePatch(old, patch, out)
	if err != nil {
		return fmt.Errorf("strategic merge patch: %w", err)
	}
	return strictDecode(merged, out)
}

func (s *Server) patchPod(ns, name string, patch []byte) (any, error) {
	key := ns + "/" + name
	old, ok := s.api.pods[key]
	if !ok {
		return nil, apierrors.NewNotFound(gvrPods, name)
	}
	oldJSON, _ := json.Marshal(old)
	var p corev1.Pod
	if err := s.applyPatch(oldJSON, patch, &p); err != nil {
		return nil, s.rejectObject(gvrPods, key, err)
	}
	if err := validatePodStatus(&p.Status); err != nil {
		return nil, s.rejectObject(gvrPods, key, err)
	}
	p.Spec, p.ObjectMeta = old.Spec, old.ObjectMeta // the status subresource
	p.ResourceVersion = s.api.nextRV()
	s.api.pods[key] = &p
	return p.DeepCopy(), nil
}

// deletePodResp is the final delete of a pod (upstream.go deletePod): the
// content is a DeleteOptions, or (older edges) a string with the pod UID.
// A pod that is gone is success; the deletion is then sent to the node as
// the downstream controller does.
func (s *Server) deletePodResp(req bus.Message, ns, name string) (bus.Message, bool) {
	key := ns + "/" + name
	var opts metav1.DeleteOptions
	if uid, ok := bus.ContentString(req.Content); ok {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
		opts.Preconditions = metav1.NewUIDPreconditions(uid)
	} else if err := strictDecode(req.Content, &opts); err != nil {
		err = s.rejectObject(gvrPods, key, fmt.Errorf("DeleteOptions: %w", err))
		b, _ := json.Marshal(err)
		return s.respond(req, b), true
	}
	p, ok := s.api.pods[key]
	switch {
	case !ok:
	case opts.Preconditions != nil && opts.Preconditions.UID != nil && *opts.Preconditions.UID != p.UID:
		err := apierrors.NewConflict(gvrPods, name, fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s",
			*opts.Preconditions.UID, p.UID))
		b, _ := json.Marshal(err)
		return s.respond(req, b), true
	case opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0:
		// Not the final delete: kube-apiserver would only mark the pod.
		err := s.rejectObject(gvrPods, key, errors.New("a node's pod delete must have gracePeriodSeconds 0"))
		b, _ := json.Marshal(err)
		return s.respond(req, b), true
	default:
		delete(s.api.pods, key)
		s.api.podDeletes++
		obj, _ := json.Marshal(p)
		del := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpDelete, req.Route.Resource, obj)
		s.api.followUps = append(s.api.followUps, del)
	}
	return s.respond(req, bus.JSONString("OK")), true
}

func (s *Server) leaseCopy(ns, name string) (any, error) {
	l, ok := s.api.leases[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(gvrLeases, name)
	}
	return l.DeepCopy(), nil
}

func (s *Server) putLease(ns, name string, create bool, data []byte) (any, error) {
	key := ns + "/" + name
	var l coordinationv1.Lease
	if err := strictDecode(data, &l); err != nil {
		return nil, s.rejectObject(gvrLeases, key, err)
	}
	if l.Name != name || l.Namespace != ns {
		return nil, s.rejectObject(gvrLeases, key, fmt.Errorf("metadata names %s/%s", l.Namespace, l.Name))
	}
	if l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return nil, s.rejectObject(gvrLeases, key, errors.New("holderIdentity, renewTime and leaseDurationSeconds are required"))
	}
	old, ok := s.api.leases[key]
	switch {
	case create && ok:
		return nil, apierrors.NewAlreadyExists(gvrLeases, name)
	case !create && !ok:
		return nil, apierrors.NewNotFound(gvrLeases, name)
	case !create && l.ResourceVersion != old.ResourceVersion:
		return nil, apierrors.NewConflict(gvrLeases, name, errors.New("the object has been modified"))
	}
	if create {
		l.UID = types.UID("lease-uid-" + name)
		l.CreationTimestamp = metav1.Now()
	} else {
		l.UID, l.CreationTimestamp = old.UID, old.CreationTimestamp
	}
	l.ResourceVersion = s.api.nextRV()
	s.api.leases[key] = &l
	return l.DeepCopy(), nil
}

// storePushed keeps a pod the test pushes to the node, as the API holds
// the pods the cloud sends, and drops the status of a device it removes
// (devicesPushed).
func (s *Server) storePushed(m bus.Message) {
	s.devicesPushed(m)
	r := m.Res
	if !r.Valid(m.Route.Operation) || r.Kind != bus.KindPod || r.Name == "" {
		return
	}
	key := r.Namespace + "/" + r.Name
	switch m.Route.Operation {
	case bus.OpInsert, bus.OpUpdate:
		var p corev1.Pod
		if json.Unmarshal(m.Content, &p) == nil {
			s.api.pods[key] = &p
		}
	case bus.OpDelete:
		delete(s.api.pods, key)
	}
}

// validateNode checks what kube-apiserver's node validation would refuse
// among the fields the edge fills.
func validateNode(n *corev1.Node, name string) error {
	var errs []error
	if n.Name != "" && n.Name != name {
		errs = append(errs, fmt.Errorf("metadata.name %q is not %q", n.Name, name))
	}
	for k, v := range n.Labels {
		for _, e := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("label %q: %s", k, e))
		}
		for _, e := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("label %q value %q: %s", k, v, e))
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "" || !validConditionStatus(c.Status) {
			errs = append(errs, fmt.Errorf("condition %q: status %q", c.Type, c.Status))
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type == "" || a.Address == "" {
			errs = append(errs, fmt.Errorf("address %+v: type and address are required", a))
		}
	}
	return errors.Join(errs...)
}

// validatePodStatus checks what kube-apiserver's pod status validation
// would refuse among the fields the edge fills.
func validatePodStatus(st *corev1.PodStatus) error {
	var errs []error
	switch st.Phase {
	case "", corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown:
	default:
		errs = append(errs, fmt.Errorf("phase %q", st.Phase))
	}
	for _, c := range st.Conditions {
		if c.Type == "" || !validConditionStatus(c.Status) {
			errs = append(errs, fmt.Errorf("condition %q: status %q", c.Type, c.Status))
		}
	}
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for _, cs := range list {
			n := 0
			for _, set := range []bool{cs.State.Waiting != nil, cs.State.Running != nil, cs.State.Terminated != nil} {
				if set {
					n++
				}
			}
			if cs.Name == "" || n > 1 || cs.RestartCount < 0 {
				errs = append(errs, fmt.Errorf("container status %q: name, one state and a restart count >= 0 are required", cs.Name))
			}
		}
	}
	for _, ip := range st.PodIPs {
		if validation.IsValidIP(nil, ip.IP) != nil {
			errs = append(errs, fmt.Errorf("podIP %q", ip.IP))
		}
	}
	return errors.Join(errs...)
}

func validConditionStatus(s corev1.ConditionStatus) bool {
	return s == corev1.ConditionTrue || s == corev1.ConditionFalse || s == corev1.ConditionUnknown
}

// Invalid returns the objects the API refused so far (nil when the node
// sent nothing the real API would reject).
func (s *Server) Invalid() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.api.invalid...)
}

// NodeCreates returns how many node inserts created a node, and how many
// came for a node that existed already (cloudcore logs those as errors).
func (s *Server) NodeCreates() (created, existed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.nodeCreates, s.api.nodeConflicts
}

// APINode returns the node as the API holds it.
func (s *Server) APINode(name string) (corev1.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.api.nodes[name]
	if !ok {
		return corev1.Node{}, false
	}
	return *n.DeepCopy(), true
}

// Pod returns the pod as the API holds it, status patches applied.
func (s *Server) Pod(ns, name string) (corev1.Pod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.api.pods[ns+"/"+name]
	if !ok {
		return corev1.Pod{}, false
	}
	return *p.DeepCopy(), true
}

// PodDeletes returns how many final pod deletes removed a pod.
func (s *Server) PodDeletes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.api.podDeletes
}

// DeletePod marks the pod deleted as kubectl delete does: it sets
// deletionTimestamp and deletionGracePeriodSeconds (grace < 0: the pod's
// terminationGracePeriodSeconds, default 30) and pushes the update to the
// node. The pod stays until the node sends the final delete. It reports
// whether the pod existed.
func (s *Server) DeletePod(ns, name string, grace int64) bool {
	s.mu.Lock()
	p, ok := s.api.pods[ns+"/"+name]
	if !ok {
		s.mu.Unlock()
		return false
	}
	if grace < 0 {
		grace = 30
		if p.Spec.TerminationGracePeriodSeconds != nil {
			grace = *p.Spec.TerminationGracePeriodSeconds
		}
	}
	now := metav1.NewTime(time.Now().Add(time.Duration(grace) * time.Second))
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	p.ResourceVersion = s.api.nextRV()
	obj, _ := json.Marshal(p)
	s.mu.Unlock()
	m := bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpUpdate, ns+"/pod/"+name, obj)
	m.Header.ResourceVersion = p.ResourceVersion
	s.Push(m)
	return true
}

// isDeviceReport reports whether m is a twin or state report of a device
// (device/<id>/twin/edge_updated, device/<id>/state/update).
func isDeviceReport(m bus.Message) bool {
	res := m.Route.Resource
	return m.Route.Operation == bus.OpUpdate && strings.HasPrefix(res, string(bus.KindDevice)+"/") &&
		(strings.HasSuffix(res, "/"+bus.ResTwinEdgeUpdated) || strings.HasSuffix(res, "/state/update"))
}

// deviceReport applies a twin report (device/<id>/twin/edge_updated) to
// the device's status as cloudcore v1.23.1 does, with its flaw: a twin
// the status does not list yet is added without the report's values,
// because findOrCreateTwinByName returns a copy of the entry it appends
// (cloud/pkg/devicecontroller/controller/upstream.go). The next report
// of the twin sets them. s.mu is held.
func (s *Server) deviceReport(m bus.Message) {
	id, ok := strings.CutPrefix(m.Route.Resource, string(bus.KindDevice)+"/")
	if id, ok = strings.CutSuffix(id, "/"+bus.ResTwinEdgeUpdated); !ok {
		return
	}
	var report struct {
		Twin map[string]*struct {
			Expected, Actual *struct{ Value *string }
		}
	}
	if json.Unmarshal(m.Content, &report) != nil {
		return
	}
	twins := s.api.deviceTwins[id]
	if twins == nil {
		twins = map[string]*DeviceTwin{}
		s.api.deviceTwins[id] = twins
	}
	for name, tw := range report.Twin {
		st, ok := twins[name]
		switch {
		case !ok:
			twins[name] = &DeviceTwin{}
			continue
		case tw == nil:
			continue
		}
		if tw.Actual != nil && tw.Actual.Value != nil {
			st.Reported = *tw.Actual.Value
		}
		if tw.Expected != nil && tw.Expected.Value != nil {
			st.ObservedDesired = *tw.Expected.Value
		}
	}
}

// devicesPushed drops the status of the devices a pushed membership
// message takes off the node: a Device deleted in the cloud takes its
// status with it, and a Device applied again starts with an empty one
// (checked against a real v1.23.1 cloud). A membership update names them
// in removed_devices; a detail reply is the whole list. s.mu is held.
func (s *Server) devicesPushed(m bus.Message) {
	if !m.Route.Source.IsDeviceController() || !strings.Contains(m.Route.Resource, bus.ResMembership) {
		return
	}
	type device struct{ ID string }
	var msg struct {
		Removed []device `json:"removed_devices"`
		Devices []device `json:"devices"`
	}
	if json.Unmarshal(m.Content, &msg) != nil {
		return
	}
	if strings.Contains(m.Route.Resource, bus.ResMembershipDetail) {
		listed := map[string]bool{}
		for _, d := range msg.Devices {
			listed[d.ID] = true
		}
		for id := range s.api.deviceTwins {
			if !listed[id] {
				delete(s.api.deviceTwins, id)
			}
		}
		return
	}
	for _, d := range msg.Removed {
		delete(s.api.deviceTwins, d.ID)
	}
}

// RecreateDevice drops the status of device id as kubectl delete and
// apply of its Device do, without telling the node: as while the node is
// offline, whose membership detail after it reconnects lists the device
// as before (the list carries no UID).
func (s *Server) RecreateDevice(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.api.deviceTwins, id)
}

// DeviceTwinStatus returns twin name of device id as the device's status
// lists it, and whether it lists it.
func (s *Server) DeviceTwinStatus(id, name string) (DeviceTwin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tw, ok := s.api.deviceTwins[id][name]
	if !ok {
		return DeviceTwin{}, false
	}
	return *tw, true
}
