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

var statTests = []struct {
	name    string
	in      string
	want    uint64
	wantErr bool
}{
	{"plain", "1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 2252800 180 18446744073709551615", 987654, false},
	{"name with spaces and parens", "77 (a b) (c)) R 1 77 77 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 42 0 0", 42, false},
	{"short", "1 (x) S 1 2 3", 0, true},
	{"no name", "1 x S", 0, true},
	{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 zz 0", 0, true},
	{"empty", "", 0, true},
}

func TestParseStartTime(t *testing.T) {
	for _, tt := range statTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStartTime([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStartTime(%q) = %d, %v, want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseStartTime(f *testing.F) {
	for _, tt := range statTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := parseStartTime(b); err != nil && v != 0 {
			t.Fatalf("parseStartTime(%q) = %d with error %v, want 0", b, v, err)
		}
	})
}

var runcStateTests = []struct {
	name   string
	in     string
	pid    int
	want   uint64
	wantOK bool
}{
	{"runc 1.1", `{"id":"c","init_process_pid":4242,"init_process_start":987654,"created":"2026-01-01T00:00:00Z"}`, 4242, 987654, true},
	{"string start", `{"init_process_pid":4242,"init_process_start":"987654"}`, 4242, 987654, true},
	{"other pid", `{"init_process_pid":4243,"init_process_start":987654}`, 4242, 0, false},
	{"no start", `{"init_process_pid":4242}`, 4242, 0, false},
	{"negative start", `{"init_process_pid":4242,"init_process_start":-1}`, 4242, 0, false},
	{"not json", `{"init_process_pid":`, 4242, 0, false},
}

func TestParseRuncState(t *testing.T) {
	for _, tt := range runcStateTests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRuncState([]byte(tt.in), tt.pid)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRuncState(%s, %d) = %d, %v, want %d, %v", tt.in, tt.pid, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRuncState(f *testing.F) {
	for _, tt := range runcStateTests {
		f.Add([]byte(tt.in), tt.pid)
	}
	f.Fuzz(func(t *testing.T, b []byte, pid int) {
		if v, ok := parseRuncState(b, pid); !ok && v != 0 {
			t.Fatalf("parseRuncState(%q, %d) = %d, false, want 0", b, pid, v)
		}
	})
}
