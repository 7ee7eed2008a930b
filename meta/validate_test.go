package meta

import (
	"strings"
	"testing"

	"edgenode/bus"
)

var pathCases = []struct {
	res string
	ok  bool
}{
	{"default/pod/nginx", true},
	{"default/configmap/kube-root-ca.crt", true},
	{"default/podlist", true},
	{"k8s/ca.crt", true},
	{"default/k8s/ca.crt", true},
	{"default/device/ns/name", true},
	{"default/devicemodel/m_1", true},
	{"../../../etc/pod/passwd", false},
	{"default/pod/..", false},
	{"default/pod/./x", false},
	{"default/../x", false},
	{"default/pod/a\\b", false},
	{"default/pod/a\x00", false},
	{"default/pod/a\nb", false},
	{"default/pod/é", false},
	{"default/po:d/x", false},
	{"default/pod/" + strings.Repeat("a", 254), false},
}

// accepted reports whether meta accepts res as the path of a query from
// edged: the parts the message carries are valid, and so is the path.
func accepted(res string) bool {
	r := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, res, nil).Res
	return r.Valid(bus.OpQuery) && validPath(res, r)
}

func TestValidPath(t *testing.T) {
	for _, c := range pathCases {
		got := accepted(c.res)
		if got != c.ok {
			t.Errorf("validPath(%q) = %v, want %v", c.res, got, c.ok)
		}
	}
}

// FuzzValidPath: a path meta accepts never has a "." or ".." token, an
// empty token or a byte outside printable ASCII.
func FuzzValidPath(f *testing.F) {
	for _, c := range pathCases {
		f.Add(c.res)
	}
	f.Fuzz(func(t *testing.T, res string) {
		if !accepted(res) {
			return
		}
		for seg := range strings.SplitSeq(res, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("validPath(%q) = true with token %q", res, seg)
			}
		}
		for i := 0; i < len(res); i++ {
			if res[i] <= ' ' || res[i] > '~' {
				t.Fatalf("validPath(%q) = true with byte %#x", res, res[i])
			}
		}
	})
}

// FuzzCheckShape: no content panics the shape check.
func FuzzCheckShape(f *testing.F) {
	f.Add(`{"data":{"a":"b"}}`)
	f.Add(`{"data":["x"]}`)
	f.Add(`{"spec":{"containers":[{"name":"c","command":["sh"]}]}}`)
	f.Fuzz(func(t *testing.T, content string) {
		for _, k := range []bus.Kind{bus.KindConfigMap, bus.KindSecret, bus.KindPod} {
			_ = checkShape(k, []byte(content))
		}
	})
}
