package nodestatus

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgenode/board"
)

func pizeroFacts(t *testing.T) board.Facts {
	t.Helper()
	f, err := board.Collect(os.DirFS("../board/testdata/pizero"), board.Uname{Machine: "armv6l"})
	if err != nil {
		t.Fatal(err)
	}
	f.Disk = board.Disk{Total: 14 << 30, Free: 10 << 30, Inodes: 900000, InodesFree: 800000}
	return f
}

func TestBuildStatusPiZero(t *testing.T) {
	cfg := Config{NodeName: "edge-1", ReservedCPU: 100, ReservedMemory: 64 << 20}.Defaults()
	now := time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)
	in := Inputs{Facts: pizeroFacts(t), IP: net.ParseIP("192.168.1.23"), Runtime: "1.1.5"}
	got := BuildStatus(cfg, in, nil, now)
	ts := "2026-11-30T01:02:03Z"
	want := NodeStatus{
		Capacity:    ResourceList{"cpu": "1", "memory": "439592Ki", "pods": "110", "ephemeral-storage": "14680064Ki"},
		Allocatable: ResourceList{"cpu": "900m", "memory": "374056Ki", "pods": "110", "ephemeral-storage": "14680064Ki"},
		Phase:       "Running",
		Conditions: []NodeCondition{
			{Type: CondMemoryPressure, Status: "False", LastHeartbeatTime: ts, LastTransitionTime: ts, Reason: "EdgeHasSufficientMemory", Message: "edge has sufficient memory available"},
			{Type: CondDiskPressure, Status: "False", LastHeartbeatTime: ts, LastTransitionTime: ts, Reason: "EdgeHasNoDiskPressure", Message: "edge has no disk pressure"},
			{Type: CondPIDPressure, Status: "False", LastHeartbeatTime: ts, LastTransitionTime: ts, Reason: "EdgeHasSufficientPID", Message: "edge has sufficient PID available"},
			{Type: CondReady, Status: "True", LastHeartbeatTime: ts, LastTransitionTime: ts, Reason: "EdgeReady", Message: "edge is posting ready status"},
		},
		Addresses:       []NodeAddress{{"InternalIP", "192.168.1.23"}, {"Hostname", "edge-1"}},
		DaemonEndpoints: &NodeDaemonEndpoints{KubeletEndpoint: DaemonEndpoint{Port: 10350}},
		NodeInfo: NodeSystemInfo{
			MachineID: "0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0d", SystemUUID: "0b7e2c9d4a1f4e8b9c3d5e6f7a8b9c0d",
			BootID: "4b0a6f1e-3c2d-4e5f-8a9b-0c1d2e3f4a5b", KernelVersion: "6.6.51+rpt-rpi-v6",
			OSImage: "Raspbian GNU/Linux 12 (bookworm)", ContainerRuntimeVersion: "runc://1.1.5",
			KubeletVersion: "v1.32.10-kubeedge-v1.23.1", OperatingSystem: "linux", Architecture: "arm",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildStatus(pizero) mismatch (-want +got):\n%s", diff)
	}
	// The JSON uses Kubernetes' field names.
	b, _ := json.Marshal(got)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"capacity", "allocatable", "conditions", "addresses", "nodeInfo", "daemonEndpoints"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status JSON %s has no %q", b, k)
		}
	}
	if m["nodeInfo"].(map[string]any)["containerRuntimeVersion"] != "runc://1.1.5" {
		t.Errorf("status JSON nodeInfo = %v", m["nodeInfo"])
	}
}

func TestConditions(t *testing.T) {
	th := Thresholds{}
	th.defaults()
	base := Inputs{Runtime: "1.1.5", Facts: board.Facts{
		Memory: board.MemInfo{Total: 512 << 20, Available: 300 << 20},
		Disk:   board.Disk{Total: 1000, Free: 500, Inodes: 100, InodesFree: 50},
		Tasks:  100, PIDMax: 32768,
	}}
	tests := []struct {
		name   string
		change func(*Inputs)
		want   map[string]string // type -> status
		reason string            // reason of the changed condition
	}{
		{"all fine", func(*Inputs) {}, map[string]string{CondMemoryPressure: "False", CondDiskPressure: "False", CondPIDPressure: "False", CondReady: "True"}, ""},
		{"memory below 100Mi", func(in *Inputs) { in.Facts.Memory.Available = 99 << 20 },
			map[string]string{CondMemoryPressure: "True", CondDiskPressure: "False", CondPIDPressure: "False", CondReady: "True"}, "EdgeHasInsufficientMemory"},
		{"disk below 10%", func(in *Inputs) { in.Facts.Disk.Free = 99 },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "True", CondPIDPressure: "False", CondReady: "True"}, "EdgeHasDiskPressure"},
		{"disk at 10%", func(in *Inputs) { in.Facts.Disk.Free = 100 },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "False", CondPIDPressure: "False", CondReady: "True"}, ""},
		{"inodes below 5%", func(in *Inputs) { in.Facts.Disk.InodesFree = 4 },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "True", CondPIDPressure: "False", CondReady: "True"}, "EdgeHasDiskPressure"},
		{"pids above 90%", func(in *Inputs) { in.Facts.Tasks = 29600 },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "False", CondPIDPressure: "True", CondReady: "True"}, "EdgeHasInsufficientPID"},
		{"no runc", func(in *Inputs) { in.Runtime = "" },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "False", CondPIDPressure: "False", CondReady: "False"}, "EdgeNotReady"},
		{"module down", func(in *Inputs) { in.Unhealthy = []string{"eventbus"} },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "False", CondPIDPressure: "False", CondReady: "False"}, "EdgeNotReady"},
		{"unknown disk", func(in *Inputs) { in.Facts.Disk = board.Disk{} },
			map[string]string{CondMemoryPressure: "False", CondDiskPressure: "False", CondPIDPressure: "False", CondReady: "True"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.change(&in)
			got := map[string]string{}
			reason := ""
			for _, c := range conditions(th, in) {
				got[c.typ] = c.status
				if (c.typ == CondReady) == (c.status == "False") && tt.reason != "" {
					reason = c.reason
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("conditions(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
			if reason != tt.reason {
				t.Errorf("conditions(%s) reason = %q, want %q", tt.name, reason, tt.reason)
			}
		})
	}
}

func TestTransitionTime(t *testing.T) {
	cfg := Config{NodeName: "n"}.Defaults()
	in := Inputs{Facts: pizeroFacts(t), Runtime: "1.1.5"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s0 := BuildStatus(cfg, in, nil, t0)
	s1 := BuildStatus(cfg, in, &s0, t0.Add(10*time.Second))
	if !sameStatus(&s0, &s1) {
		t.Errorf("sameStatus(s0, s1 ten seconds later) = false, want true")
	}
	if got := s1.Conditions[3].LastTransitionTime; got != "2026-01-01T00:00:00Z" {
		t.Errorf("Ready lastTransitionTime = %s, want the first time", got)
	}
	if got := s1.Conditions[3].LastHeartbeatTime; got != "2026-01-01T00:00:10Z" {
		t.Errorf("Ready lastHeartbeatTime = %s, want now", got)
	}
	in.Runtime = ""
	s2 := BuildStatus(cfg, in, &s1, t0.Add(20*time.Second))
	if sameStatus(&s1, &s2) {
		t.Errorf("sameStatus(ready, not ready) = true, want false")
	}
	if got := s2.Conditions[3].LastTransitionTime; got != "2026-01-01T00:00:20Z" {
		t.Errorf("Ready lastTransitionTime after change = %s, want now", got)
	}
	if got := s2.Conditions[0].LastTransitionTime; got != "2026-01-01T00:00:00Z" {
		t.Errorf("MemoryPressure lastTransitionTime = %s, want unchanged", got)
	}
}

func TestQuantities(t *testing.T) {
	if got := milli(1000); got != "1" {
		t.Errorf("milli(1000) = %q", got)
	}
	if got := milli(3500); got != "3500m" {
		t.Errorf("milli(3500) = %q", got)
	}
	if got := kib(1 << 20); got != "1024Ki" {
		t.Errorf("kib(1Mi) = %q", got)
	}
	cfg := Config{NodeName: "n", ReservedCPU: 5000, ReservedMemory: 1 << 40}.Defaults()
	st := BuildStatus(cfg, Inputs{Facts: pizeroFacts(t)}, nil, time.Now())
	if st.Allocatable["cpu"] != "0" || st.Allocatable["memory"] != "0Ki" {
		t.Errorf("allocatable with reservations above capacity = %v, want zeros", st.Allocatable)
	}
}

func TestParseObjectResp(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		obj     string
		wantErr error
	}{
		{"ok", `"OK"`, "", nil},
		{"object", `{"Object":{"metadata":{"name":"n"}},"Err":null}`, `{"metadata":{"name":"n"}}`, nil},
		{"not found", `{"Object":null,"Err":{"ErrStatus":{"kind":"Status","status":"Failure","reason":"NotFound","code":404}}}`, "null", ErrNotFound},
		{"exists", `{"Object":null,"Err":{"ErrStatus":{"reason":"AlreadyExists","code":409}}}`, "null", ErrAlreadyExists},
		{"plain error", `{"Object":null,"Err":{}}`, "null", ErrRejected},
		{"garbage", `{"Object":`, "", ErrBadResponse},
		{"array", `[1]`, "", ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := ParseObjectResp([]byte(tt.in))
			if string(obj) != tt.obj || !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseObjectResp(%s) = %s, %v, want %s, %v", tt.in, obj, err, tt.obj, tt.wantErr)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{NodeName: "n", MaxPods: -1, ReservedCPU: -5, Thresholds: Thresholds{DiskFreePercent: 101, PIDsFreePercent: -1},
		UpdateFrequency: time.Millisecond, SyncTimeout: 500 * time.Millisecond}.Defaults()
	var got []string
	for _, e := range c.Validate() {
		got = append(got, e.Error())
	}
	want := []string{
		"board.maxPods: -1 is negative",
		"board.reservedCPU: -5 is negative",
		"board.thresholds.diskFreePercent: 101 is not 0-100",
		"board.thresholds.pidsFreePercent: -1 is not 0-100",
		"board.updateFrequency: 1ms is shorter than 1s",
		"board.syncTimeout: 500ms is shorter than 1s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() mismatch (-want +got):\n%s", diff)
	}
	if errs := (Config{NodeName: "n"}).Defaults().Validate(); len(errs) != 0 {
		t.Errorf("Validate(defaults) = %v", errs)
	}
}

// TestStatusKey: two inputs have the same statusKey exactly when the
// statuses built from them differ in their heartbeat times only, so that
// the status round may skip building a status whose key it has sent. Each
// case changes one thing that BuildStatus reads, or one fact that it
// reads only through a threshold.
func TestStatusKey(t *testing.T) {
	cfg := Config{NodeName: "edge-1"}.Defaults()
	base := Inputs{Facts: pizeroFacts(t), IP: net.ParseIP("192.168.1.23"), Runtime: "1.1.5"}
	tests := []struct {
		name   string
		change func(*Inputs)
		same   bool
	}{
		{"nothing", func(*Inputs) {}, true},
		{"free memory, above the threshold", func(in *Inputs) { in.Facts.Memory.Available -= 4 << 20; in.Facts.Memory.Free++ }, true},
		{"tasks, few", func(in *Inputs) { in.Facts.Tasks += 7 }, true},
		{"disk free, plenty", func(in *Inputs) { in.Facts.Disk.Free -= 1 << 20; in.Facts.Disk.InodesFree-- }, true},
		{"the host name, with a node name set", func(in *Inputs) { in.Facts.Hostname = "other" }, true},
		{"the same address, another slice", func(in *Inputs) { in.IP = net.ParseIP("192.168.1.23") }, true},
		{"free memory, below the threshold", func(in *Inputs) { in.Facts.Memory.Available = 50 << 20 }, false},
		{"disk free, below the threshold", func(in *Inputs) { in.Facts.Disk.Free = 1 << 20 }, false},
		{"inodes, below the threshold", func(in *Inputs) { in.Facts.Disk.InodesFree = 10 }, false},
		{"tasks, near pid_max", func(in *Inputs) { in.Facts.Tasks = in.Facts.PIDMax - 1 }, false},
		{"a module unhealthy", func(in *Inputs) { in.Unhealthy = []string{"twin"} }, false},
		{"no runtime", func(in *Inputs) { in.Runtime = "" }, false},
		{"another runtime", func(in *Inputs) { in.Runtime = "1.2.0" }, false},
		{"another address", func(in *Inputs) { in.IP = net.ParseIP("192.168.1.24") }, false},
		{"no address", func(in *Inputs) { in.IP = nil }, false},
		{"CPUs", func(in *Inputs) { in.Facts.CPUs = 4 }, false},
		{"memory total", func(in *Inputs) { in.Facts.Memory.Total += 1 << 20 }, false},
		{"disk total", func(in *Inputs) { in.Facts.Disk.Total += 1 << 30 }, false},
		{"machine id", func(in *Inputs) { in.Facts.MachineID = "ffff" }, false},
		{"boot id", func(in *Inputs) { in.Facts.BootID = "ffff" }, false},
		{"kernel", func(in *Inputs) { in.Facts.Uname.Release = "6.12.1" }, false},
		{"OS image", func(in *Inputs) { in.Facts.OSImage = "Debian 13" }, false},
		{"architecture", func(in *Inputs) { in.Facts.Arch = "arm64" }, false},
	}
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	prev := BuildStatus(cfg, base, nil, t0)
	for _, tt := range tests {
		in := base
		in.Facts.Memory = base.Facts.Memory
		tt.change(&in)
		st := BuildStatus(cfg, in, &prev, t0.Add(10*time.Second))
		same, keySame := sameStatus(&prev, &st), keyOf(cfg, base) == keyOf(cfg, in)
		if same != tt.same || keySame != tt.same {
			t.Errorf("%s: sameStatus = %v, equal keys = %v, want both %v", tt.name, same, keySame, tt.same)
		}
	}
}
