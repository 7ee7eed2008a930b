package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"edgenode/bus"
)

// ErrBadContent is the reason given for content that is not JSON or not
// the shape its resource needs.
var ErrBadContent = errors.New("meta: bad content")

// objectMeta is the part of Kubernetes' ObjectMeta meta reads.
type objectMeta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

// object is any Kubernetes object (v1.Pod, v1.ConfigMap, v1.Node, ...), as
// far as meta looks into it.
type object struct {
	Metadata *objectMeta `json:"metadata"`
}

// statusRequest is v0.3's PodStatusRequest and NodeStatusRequest: Go field
// names as keys, no json tags (docs/protocol.md 2.5).
type statusRequest struct {
	UID    string          `json:"UID"`
	Name   string          `json:"Name"`
	Status json.RawMessage `json:"Status"`
}

// namedKinds are the kinds whose objects must carry metadata.name when the
// cloud inserts or updates them.
var namedKinds = map[bus.Kind]bool{
	bus.KindPod: true, bus.KindConfigMap: true, bus.KindSecret: true, bus.KindNode: true,
}

// knownKinds are the resource types meta stores (docs/protocol.md 1.6).
var knownKinds = map[bus.Kind]bool{
	bus.KindPod: true, bus.KindConfigMap: true, bus.KindSecret: true, bus.KindNode: true,
	bus.KindPodList: true, bus.KindPodStatus: true, bus.KindNodeStatus: true, bus.KindEvent: true,
	bus.KindServiceAccountToken: true, bus.KindPodPatch: true, bus.KindNodePatch: true,
	bus.KindRule: true, bus.KindRuleEndpoint: true, bus.KindRuleStatus: true, bus.KindLease: true,
	bus.KindServiceAccountAccess: true, bus.KindCSR: true, bus.KindKubeCA: true, bus.KindService: true,
	bus.KindEndpoints: true, bus.KindPV: true, bus.KindPVC: true, bus.KindVolumeAttachment: true,
	bus.KindVolume: true, bus.KindDevice: true,
}

// isObject reports whether content is a JSON object (it must be valid JSON).
func isObject(content []byte) bool {
	c := bytes.TrimLeft(content, " \t\r\n")
	return len(c) > 0 && c[0] == '{'
}

// decodeObject checks that content is a Kubernetes object: a JSON object
// whose metadata, if present, is an object with string name, namespace and
// uid. needName also requires metadata.name.
func decodeObject(content []byte, needName bool) (object, error) {
	var o object
	if !isObject(content) {
		return o, fmt.Errorf("%w: want a JSON object", ErrBadContent)
	}
	if err := json.Unmarshal(content, &o); err != nil {
		return o, fmt.Errorf("%w: %v", ErrBadContent, err)
	}
	if needName && (o.Metadata == nil || o.Metadata.Name == "") {
		return o, fmt.Errorf("%w: metadata.name missing", ErrBadContent)
	}
	return o, nil
}

// deleteUID returns the pod uid of edged's final pod delete (docs/protocol.md
// 3.3): the precondition uid of a metav1.DeleteOptions, or the whole content
// when it is a string (older edges; KubeEdge v1.23.1
// cloud/pkg/edgecontroller/controller/upstream.go deletePod accepts both). ok
// is false for any other content; uid may be empty.
func deleteUID(content []byte) (uid string, ok bool) {
	if s, isString := bus.ContentString(content); isString {
		return s, true
	}
	if !isObject(content) {
		return "", false
	}
	var o struct {
		Preconditions *struct {
			UID *string `json:"uid"`
		} `json:"preconditions"`
	}
	if err := json.Unmarshal(content, &o); err != nil {
		return "", false
	}
	if o.Preconditions != nil && o.Preconditions.UID != nil {
		uid = *o.Preconditions.UID
	}
	return uid, true
}

// decodeStatus checks a v0.3 podstatus or nodestatus (docs/protocol.md 2.5): an
// object whose Status, if present, is an object.
func decodeStatus(content []byte) (statusRequest, error) {
	var s statusRequest
	if !isObject(content) {
		return s, fmt.Errorf("%w: want a JSON object", ErrBadContent)
	}
	if err := json.Unmarshal(content, &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrBadContent, err)
	}
	if len(s.Status) > 0 && !isObject(s.Status) && string(s.Status) != "null" {
		return s, fmt.Errorf("%w: Status must be an object", ErrBadContent)
	}
	return s, nil
}

// decodePatch returns the patch carried by a podpatch or nodepatch: the content
// is a JSON string holding the patch JSON (docs/protocol.md 2.5, 9 item 7); a
// patch sent as a JSON object is accepted as well. The patch must be a JSON
// object.
func decodePatch(content []byte) ([]byte, error) {
	p := content
	if s, ok := bus.ContentString(content); ok {
		p = []byte(s)
		if !json.Valid(p) {
			return nil, fmt.Errorf("%w: the patch string is not JSON", ErrBadContent)
		}
	}
	if !isObject(p) {
		return nil, fmt.Errorf("%w: a patch must be a JSON object or a string holding one", ErrBadContent)
	}
	return p, nil
}

// storedValue checks content against its resource type and returns the value to
// store in table meta: the content itself, or for a patch the patch bytes
// ("stored verbatim", docs/protocol.md 3.1). needName applies to objects.
func storedValue(kind bus.Kind, content []byte, needName bool) (string, error) {
	if len(content) == 0 {
		return "", fmt.Errorf("%w: empty", ErrBadContent)
	}
	if !json.Valid(content) {
		return "", fmt.Errorf("%w: not JSON", ErrBadContent)
	}
	if !knownKinds[kind] {
		// A kind meta does not know is kept as the cloud sent it
		// (metamanager handleMessage, docs/protocol.md 3.3).
		return string(content), nil
	}
	switch kind {
	case bus.KindPodPatch, bus.KindNodePatch:
		p, err := decodePatch(content)
		return string(p), err
	case bus.KindPodStatus, bus.KindNodeStatus:
		_, err := decodeStatus(content)
		return string(content), err
	case bus.KindKubeCA:
		// The cluster CA is PEM text: a JSON string.
		if _, ok := bus.ContentString(content); !ok && !isObject(content) {
			return "", fmt.Errorf("%w: want a string or an object", ErrBadContent)
		}
		return string(content), nil
	}
	if _, err := decodeObject(content, needName && namedKinds[kind]); err != nil {
		return "", err
	}
	return string(content), checkShape(kind, content)
}

// objectResp is v1.23's answer to a remote operation: {"Object","Err"}
// (docs/protocol.md 2.5, common/types ObjectResp).
type objectResp struct {
	Object json.RawMessage
	Err    json.RawMessage
}

// decodeObjectResp reports whether content is an {"Object","Err"} answer.
// Keys are matched exactly: Kubernetes objects have no such keys.
func decodeObjectResp(content []byte) (objectResp, bool) {
	if !isObject(content) {
		return objectResp{}, false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(content, &raw); err != nil {
		return objectResp{}, false
	}
	obj, hasObj := raw["Object"]
	e, hasErr := raw["Err"]
	if !hasObj && !hasErr {
		return objectResp{}, false
	}
	return objectResp{Object: obj, Err: e}, true
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// queryResult builds the content of a local query answer: a JSON array of
// the stored values, each encoded as a JSON string (docs/protocol.md 3.2).
func queryResult(values []string) []byte {
	n := 2
	for _, v := range values {
		n += len(v) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, bus.JSONString(v)...)
	}
	return append(b, ']')
}
