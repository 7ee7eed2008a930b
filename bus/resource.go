package bus

import (
	"errors"
	"strings"
)

// ErrBadResource is returned for a resource path that is not of the form
// <namespace>/<type>[/<name>] (docs/protocol.md 1.7).
var ErrBadResource = errors.New("bus: bad resource path")

// Resource is a resource path split into its parts (docs/protocol.md 1.7).
// Every Message carries its own in Message.Res, split once when the
// message is made or decoded, so that no module splits it again.
//
// An edge-side path <namespace>/<type>[/<name>] fills Namespace, Kind and
// Name. A device resource of twin or the device controller,
// device/<id>[/<what>] with <id> one level or <namespace>/<name>, has Kind
// KindDevice, the device id in Name and <what> (twin/edge_updated,
// twin/cloud_updated, state, state/update) in Rest. Any other path of two
// or more non-empty tokens is split like an edge-side path (for a topic
// or membership/detail the parts mean nothing); anything else gives the
// zero Resource. Valid tells an edge-side path from the rest.
type Resource struct {
	Namespace string
	Kind      Kind
	// Name is empty for a list (namespace/type) path; it may hold '/'.
	Name string
	// Rest is what follows the device id in a device resource.
	Rest string
}

// ParseResource splits an edge-side resource path. Three tokens give
// namespace, type and name (the name may itself hold '/'); two tokens are
// allowed only for query and response and give namespace and type
// (docs/protocol.md 1.7, ParseResourceEdge). No token may be empty. The
// one type that holds a '/', k8s/ca.crt (docs/protocol.md 1.6), is read as
// a type, with or without a namespace, named ca.crt.
func ParseResource(res string, op Op) (Resource, error) {
	r, ok := splitPath(res)
	if !ok || !r.Valid(op) {
		return Resource{}, ErrBadResource
	}
	return r, nil
}

// Valid reports whether r is an edge-side path that operation op may
// name: a namespace, a type and a name, or, for query and response, a
// namespace and a type.
func (r Resource) Valid(op Op) bool {
	switch {
	case r.Kind == KindKubeCA:
		return true
	case r.Namespace == "" || r.Kind == "" || r.Rest != "":
		return false
	case r.Name == "":
		return op == OpQuery || op == OpResponse
	}
	return true
}

// splitPath splits <namespace>/<type>[/<name>] with no empty token, and
// k8s/ca.crt with or without a namespace.
func splitPath(res string) (Resource, bool) {
	if res == string(KindKubeCA) {
		return Resource{Kind: KindKubeCA, Name: "ca.crt"}, true
	}
	ns, rest, ok := strings.Cut(res, "/")
	if !ok || ns == "" || rest == "" {
		return Resource{}, false
	}
	if rest == string(KindKubeCA) {
		return Resource{Namespace: ns, Kind: KindKubeCA, Name: "ca.crt"}, true
	}
	kind, name, hasName := strings.Cut(rest, "/")
	if kind == "" || (hasName && name == "") {
		return Resource{}, false
	}
	return Resource{Namespace: ns, Kind: Kind(kind), Name: name}, true
}

// deviceRests are what may follow the device id in a device resource,
// longest first, so that state/update is not taken for state.
var deviceRests = [...]string{ResTwinEdgeUpdated, ResTwinCloudUpdated, ResDeviceStateV123, ResDeviceState}

// splitDevice splits device/<id>[/<what>].
func splitDevice(res string) (Resource, bool) {
	id, ok := strings.CutPrefix(res, string(KindDevice)+"/")
	if !ok || id == "" {
		return Resource{}, false
	}
	for _, what := range deviceRests {
		if d, ok := strings.CutSuffix(id, "/"+what); ok && d != "" {
			return Resource{Kind: KindDevice, Name: d, Rest: what}, true
		}
	}
	return Resource{Kind: KindDevice, Name: id}, true
}

// resourceOf is the Res of a message from source with resource res: a
// device resource when twin or the device controller sends it, else the
// edge-side path, else the zero Resource. It does not allocate.
func resourceOf(source Module, res string) Resource {
	if source == ModuleTwin || source == ModuleTest || source.IsDeviceController() {
		if r, ok := splitDevice(res); ok {
			return r
		}
	}
	r, _ := splitPath(res)
	return r
}

// String joins the parts back into a path.
func (r Resource) String() string {
	switch {
	case r.Kind == KindDevice && r.Namespace == "":
		if r.Rest == "" {
			return string(KindDevice) + "/" + r.Name
		}
		return string(KindDevice) + "/" + r.Name + "/" + r.Rest
	case r.Kind == KindKubeCA && r.Namespace == "":
		return string(KindKubeCA)
	case r.Kind == KindKubeCA:
		return r.Namespace + "/" + string(KindKubeCA)
	case r.Name == "":
		return r.Namespace + "/" + string(r.Kind)
	}
	return r.Namespace + "/" + string(r.Kind) + "/" + r.Name
}

// ResourcePath builds <namespace>/<kind>/<name>.
func ResourcePath(ns string, kind Kind, name string) string {
	return Resource{Namespace: ns, Kind: kind, Name: name}.String()
}
