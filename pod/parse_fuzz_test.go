package pod

import (
	"errors"
	"testing"

	"edgenode/bus"
)

var answerTests = []struct {
	name    string
	in      string
	want    string // data["k"]
	wantErr bool
}{
	{"local array of strings", `[` + string(bus.JSONString(`{"data":{"k":"v1"}}`)) + `]`, "v1", false},
	{"remote wrapped", `{"Object":{"data":{"k":"v2"}},"Err":null}`, "v2", false},
	{"plain object", `{"data":{"k":"v3"}}`, "v3", false},
	{"empty array", `[]`, "", true},
	{"error", `{"Object":null,"Err":{"ErrStatus":{"reason":"NotFound"}}}`, "", true},
	{"garbage", `[1,2`, "", true},
}

func TestDecodeAnswer(t *testing.T) {
	for _, tt := range answerTests {
		t.Run(tt.name, func(t *testing.T) {
			var cm ConfigMap
			err := decodeAnswer([]byte(tt.in), &cm)
			if (err != nil) != tt.wantErr || (err == nil && cm.Data["k"] != tt.want) {
				t.Fatalf("decodeAnswer(%s) = %v, %v; want %q, err %v", tt.in, cm.Data, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Errorf("decodeAnswer(%s) = %v, want ErrNotFound", tt.in, err)
			}
		})
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	for _, tt := range answerTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Secret
		if err := decodeAnswer(b, &s); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("decodeAnswer(%q) = %v, want nil or ErrNotFound", b, err)
		}
	})
}

var staticTests = []struct {
	name    string
	in      string
	wantErr bool
}{
	{"yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n", false},
	{"json", `{"metadata":{"name":"web"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`, false},
	{"yaml no containers", "metadata:\n  name: web\nspec: {}\n", true},
	{"bad yaml", "metadata: [\n", true},
}

func TestStaticPod(t *testing.T) {
	for _, tt := range staticTests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := StaticPod([]byte(tt.in), "n1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("StaticPod() = %v, want err %v", err, tt.wantErr)
			}
			if err == nil && (p.Metadata.Name != "web-n1" || p.Metadata.Annotations[annConfigSource] != "file" || !validUID(p.Metadata.UID)) {
				t.Errorf("StaticPod() = %+v, want web-n1 from a file with a uid", p.Metadata)
			}
		})
	}
}

func FuzzStaticPod(f *testing.F) {
	for _, tt := range staticTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := StaticPod(b, "n1")
		if err == nil && (p == nil || len(p.Spec.Containers) == 0) {
			t.Fatalf("StaticPod(%q) accepted a pod with no containers", b)
		}
	})
}

func TestDockerAuths(t *testing.T) {
	s := &Secret{Data: map[string][]byte{".dockerconfigjson": []byte(
		`{"auths":{"https://reg.example:5000/v1/":{"auth":"dTpw"},"other.example":{"username":"x","password":"y"}}}`)}}
	got := dockerAuths(s, "reg.example:5000")
	if len(got) != 1 || got[0].Username != "u" || got[0].Password != "p" {
		t.Errorf("dockerAuths() = %+v, want u/p for reg.example:5000", got)
	}
	if got := dockerAuths(&Secret{Data: map[string][]byte{".dockerconfigjson": []byte("{")}}, "x"); len(got) != 0 {
		t.Errorf("dockerAuths(broken) = %+v, want none", got)
	}
}
