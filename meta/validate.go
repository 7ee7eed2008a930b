package meta

import (
	"encoding/json"
	"fmt"
	"strings"

	"edgenode/bus"
)

// maxSegment bounds each '/'-separated token of a resource path: a
// Kubernetes name is a DNS subdomain of at most 253 bytes.
const maxSegment = 253

// validPath reports whether every token of a resource path is something
// meta may store under: non-empty, not "." or "..", at most maxSegment
// printable ASCII bytes without '\'. The type token is also limited to
// letters, digits, '.', '_' and '-'. KubeEdge stores whatever path the
// cloud sends; a path such as ../../../etc/pod/passwd then becomes a row
// of type "..", and any module that joins a path from it (volumes, logs)
// would leave its folder.
func validPath(res string, r bus.Resource) bool {
	for seg := range strings.SplitSeq(res, "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > maxSegment {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c <= ' ' || c > '~' || c == '\\' {
				return false
			}
		}
	}
	for _, c := range string(r.Kind) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok && !(c == '/' && r.Kind == bus.KindKubeCA) {
			return false
		}
	}
	return true
}

// configMapShape, secretShape and podShape are the fields of a configmap,
// secret and pod whose JSON type pod relies on when it decodes the stored
// object (pod/types.go); decoding into them is the shape check.
type configMapShape struct {
	Data       map[string]string `json:"data"`
	BinaryData map[string][]byte `json:"binaryData"`
}

type secretShape struct {
	Data       map[string][]byte `json:"data"`
	StringData map[string]string `json:"stringData"`
	Type       string            `json:"type"`
}

type podShape struct {
	Spec *struct {
		Containers     []containerShape `json:"containers"`
		InitContainers []containerShape `json:"initContainers"`
		Volumes        []struct {
			Name string `json:"name"`
		} `json:"volumes"`
	} `json:"spec"`
}

type containerShape struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

// checkShape decodes content into the shape of its kind, for the kinds
// whose stored objects pod decodes: a configmap whose data is an array was
// stored, answered OK, and then could never be used.
func checkShape(kind bus.Kind, content []byte) error {
	var v any
	switch kind {
	case bus.KindConfigMap:
		v = &configMapShape{}
	case bus.KindSecret:
		v = &secretShape{}
	case bus.KindPod:
		v = &podShape{}
	default:
		return nil
	}
	if err := json.Unmarshal(content, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadContent, kind, err)
	}
	return nil
}
