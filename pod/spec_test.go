package pod

import (
	"errors"
	"strings"
	"testing"
)

var specTests = []struct {
	name    string
	in      string
	wantErr string // substring; "" means valid
}{
	{"minimal", `{"metadata":{"name":"a","uid":"u-1"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`, ""},
	{"full", `{"metadata":{"name":"web.x","namespace":"ns"},"spec":{"restartPolicy":"OnFailure",
	  "volumes":[{"name":"cfg","configMap":{"name":"c","items":[{"key":"k","path":"d/k"}]}},{"name":"e","emptyDir":{"sizeLimit":"10Mi"}}],
	  "containers":[{"name":"c","image":"busybox","ports":[{"name":"http","containerPort":80}],
	   "resources":{"limits":{"cpu":"500m","memory":"64Mi"}},"volumeMounts":[{"name":"cfg","mountPath":"/cfg"}],
	   "livenessProbe":{"httpGet":{"port":"http","path":"/"}},"readinessProbe":{"tcpSocket":{"port":80}}}]}}`, ""},
	{"not json", `{"metadata":`, "bad spec"},
	{"no containers", `{"metadata":{"name":"a"},"spec":{}}`, "spec.containers"},
	{"bad name", `{"metadata":{"name":"A_b"},"spec":{"containers":[{"name":"c","image":"i"}]}}`, "metadata.name"},
	{"bad restart", `{"metadata":{"name":"a"},"spec":{"restartPolicy":"Sometimes","containers":[{"name":"c","image":"i"}]}}`, "restartPolicy"},
	{"no image", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c"}]}}`, ".image"},
	{"dup container", `{"metadata":{"name":"a"},"spec":{"initContainers":[{"name":"c","image":"i"}],"containers":[{"name":"c","image":"i"}]}}`, "used twice"},
	{"bad pull", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i","imagePullPolicy":"Maybe"}]}}`, "imagePullPolicy"},
	{"bad quantity", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"memory":"lots"}}}]}}`, "limits.memory"},
	{"unknown volume", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i","volumeMounts":[{"name":"v","mountPath":"/v"}]}]}}`, "no volume"},
	{"nfs volume", `{"metadata":{"name":"a"},"spec":{"volumes":[{"name":"v","nfs":{"server":"s"}}],"containers":[{"name":"c","image":"i"}]}}`, "not supported"},
	{"traversal item", `{"metadata":{"name":"a"},"spec":{"volumes":[{"name":"v","secret":{"secretName":"s","items":[{"key":"k","path":"../x"}]}}],"containers":[{"name":"c","image":"i"}]}}`, "item path"},
	{"relative hostPath", `{"metadata":{"name":"a"},"spec":{"volumes":[{"name":"v","hostPath":{"path":"tmp"}}],"containers":[{"name":"c","image":"i"}]}}`, "hostPath.path"},
	{"probe port name", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i","livenessProbe":{"tcpSocket":{"port":"nope"}}}]}}`, "no container port"},
	{"two probe handlers", `{"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i","livenessProbe":{"tcpSocket":{"port":1},"exec":{"command":["true"]}}}]}}`, "exactly one"},
	{"bad uid", `{"metadata":{"name":"a","uid":"../x"},"spec":{"containers":[{"name":"c","image":"i"}]}}`, "metadata.uid"},
}

func TestDecodePod(t *testing.T) {
	for _, tt := range specTests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePod([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodePod() = %v, want nil", err)
				}
				if p.Metadata.Namespace == "" {
					t.Errorf("DecodePod() namespace empty, want default filled")
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("DecodePod() = %v, want ErrBadSpec containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"500m", 500, false},
		{"1", 1000, false},
		{"1.5", 1500, false},
		{"64Mi", 64 << 20 * 1000, false},
		{"1k", 1000 * 1000, false},
		{"2e3", 2000 * 1000, false},
		{"", 0, true},
		{"abc", 0, true},
		{"1Zi", 0, true},
		{"9Ei", 0, true},
		{"NaN", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseQuantity(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseQuantity(%q) = %d, %v, want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzDecodePod(f *testing.F) {
	for _, tt := range specTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePod(b)
		if err == nil && (p == nil || len(p.Spec.Containers) == 0) {
			t.Fatalf("DecodePod(%q) accepted a pod with no containers", b)
		}
		if err != nil && !errors.Is(err, ErrBadSpec) {
			t.Fatalf("DecodePod(%q) = %v, want ErrBadSpec", b, err)
		}
	})
}

func TestResources(t *testing.T) {
	c := &Container{Resources: ResourceRequirements{
		Limits:   map[string]string{"cpu": "500m", "memory": "64Mi"},
		Requests: map[string]string{"cpu": "250m"}}}
	r := resources(c, false)
	if r.Memory == nil || *r.Memory.Limit != 64<<20 {
		t.Errorf("memory = %+v, want %d", r.Memory, 64<<20)
	}
	if r.CPU == nil || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.CPU.Shares != 256 {
		t.Errorf("cpu = quota %v period %v shares %v, want 50000/100000/256", *r.CPU.Quota, *r.CPU.Period, *r.CPU.Shares)
	}
}
