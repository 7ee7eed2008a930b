package bus

import (
	"errors"
	"strings"
)

// ErrBadResource is returned for a resource path that is not of the form
// <namespace>/<type>[/<name>] (docs/protocol.md 1.7).
var ErrBadResource = errors.New("bus: bad resource path")

// Resource is an edge-side resource path split into its parts (docs/protocol.md
// 1.7).
type Resource struct {
	Namespace string
	Kind      Kind
	// Name is empty for a list (namespace/type) path.
	Name string
}

// ParseResource splits an edge-side resource path. Three tokens give
// namespace, type and name (the name may itself hold '/'); two tokens are
// allowed only for query and response and give namespace and type
// (docs/protocol.md 1.7, ParseResourceEdge). No token may be empty.
func ParseResource(res string, op Op) (Resource, error) {
	ns, rest, ok := strings.Cut(res, "/")
	if !ok || ns == "" || rest == "" {
		return Resource{}, ErrBadResource
	}
	kind, name, hasName := strings.Cut(rest, "/")
	if kind == "" {
		return Resource{}, ErrBadResource
	}
	if !hasName {
		if op != OpQuery && op != OpResponse {
			return Resource{}, ErrBadResource
		}
		return Resource{Namespace: ns, Kind: Kind(kind)}, nil
	}
	if name == "" {
		return Resource{}, ErrBadResource
	}
	return Resource{Namespace: ns, Kind: Kind(kind), Name: name}, nil
}

// String joins the parts back into a path.
func (r Resource) String() string {
	if r.Name == "" {
		return r.Namespace + "/" + string(r.Kind)
	}
	return r.Namespace + "/" + string(r.Kind) + "/" + r.Name
}

// ResourcePath builds <namespace>/<kind>/<name>.
func ResourcePath(ns string, kind Kind, name string) string {
	return Resource{Namespace: ns, Kind: kind, Name: name}.String()
}
