package pod

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"edgenode/bus"
)

// TestSeccompAndMaskedPaths runs real containers under runc: RuntimeDefault
// (on the container, or on the pod) and a Localhost profile get a seccomp
// filter (/proc/self/status "Seccomp: 2"), no profile and Unconfined get
// none, and containerd's masked path /sys/devices/virtual/powercap is
// hidden when the host has it.
func TestSeccompAndMaskedPaths(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, "", func(c *Config) { c.SeccompDir = dir })
	if err := os.MkdirAll(filepath.Join(dir, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Everything allowed but mkdir, which fails with EPERM.
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(filepath.Join(dir, "profiles", "nomkdir.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `grep Seccomp: /proc/self/status; mkdir /tmp/d 2>/dev/null && echo mkdir=ok || echo mkdir=denied; ` +
		`if [ -d /sys/devices/virtual/powercap ]; then ls /sys/devices/virtual/powercap | wc -l; else echo none; fi; exec sleep 1000`
	local := "profiles/nomkdir.json"
	cases := []struct {
		name    string
		c, pod  *SeccompProfile
		seccomp string
		mkdir   string
	}{
		{"none", nil, nil, "0", "ok"},
		{"unconfined", &SeccompProfile{Type: "Unconfined"}, nil, "0", "ok"},
		{"runtime-default", &SeccompProfile{Type: "RuntimeDefault"}, nil, "2", "ok"},
		{"pod-default", nil, &SeccompProfile{Type: "RuntimeDefault"}, "2", "ok"},
		{"localhost", &SeccompProfile{Type: "Localhost", LocalhostProfile: &local}, nil, "2", "denied"},
	}
	_, powercap := os.Stat("/sys/devices/virtual/powercap")
	for _, tc := range cases {
		c := sh("main", script)
		c.SecurityContext = &SecurityContext{SeccompProfile: tc.c}
		p := testPod(tc.name, c)
		if tc.pod != nil {
			p.Spec.SecurityContext = &PodSecurityContext{SeccompProfile: tc.pod}
		}
		h.send(bus.OpInsert, bus.KindPod, "default", tc.name, p)
		h.waitStatus(tc.name, 2*time.Minute, running("main"))
		want := "Seccomp:\t" + tc.seccomp + "\nmkdir=" + tc.mkdir + "\n"
		if powercap == nil {
			want += "0\n" // masked: an empty tmpfs or /dev/null
		}
		h.waitLog(tc.name, "main", want)
	}
}

// TestSeccompChoice: the container's profile wins over the pod's; a
// Localhost path must stay inside the profile dir; unknown types are bad
// specs.
func TestSeccompChoice(t *testing.T) {
	up, abs, ok := "../x.json", "/etc/x.json", "a/b.json"
	cases := []struct {
		name    string
		c, pod  *SeccompProfile
		kind    string
		file    string
		badSpec bool
	}{
		{"none", nil, nil, seccompUnconfined, "", false},
		{"pod", nil, &SeccompProfile{Type: "RuntimeDefault"}, seccompRuntimeDefault, "", false},
		{"container wins", &SeccompProfile{Type: "Unconfined"}, &SeccompProfile{Type: "RuntimeDefault"}, seccompUnconfined, "", false},
		{"localhost", &SeccompProfile{Type: "Localhost", LocalhostProfile: &ok}, nil, seccompLocalhost, "/sec/a/b.json", false},
		{"localhost up", &SeccompProfile{Type: "Localhost", LocalhostProfile: &up}, nil, "", "", true},
		{"localhost absolute", &SeccompProfile{Type: "Localhost", LocalhostProfile: &abs}, nil, "", "", true},
		{"localhost no path", &SeccompProfile{Type: "Localhost"}, nil, "", "", true},
		{"unknown", &SeccompProfile{Type: "Strict"}, nil, "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Container{Name: "c", SecurityContext: &SecurityContext{SeccompProfile: tc.c}}
			p := testPod("p", c)
			if tc.pod != nil {
				p.Spec.SecurityContext = &PodSecurityContext{SeccompProfile: tc.pod}
			}
			kind, file, err := seccompChoice(bundleInput{pod: p, c: &p.Spec.Containers[0], seccompDir: "/sec"})
			if kind != tc.kind || file != tc.file || errors.Is(err, ErrBadSpec) != tc.badSpec {
				t.Errorf("seccompChoice = %q, %q, %v, want %q, %q, bad spec %v", kind, file, err, tc.kind, tc.file, tc.badSpec)
			}
		})
	}
}

// TestRuntimeDefaultProfile: the default profile is an allow list (default
// action errno) for this architecture, fitted to the capabilities: without
// CAP_SYS_BOOT, no kexec_load.
func TestRuntimeDefaultProfile(t *testing.T) {
	rt := &SeccompProfile{Type: "RuntimeDefault"}
	p := testPod("p", Container{Name: "c", SecurityContext: &SecurityContext{SeccompProfile: rt}})
	prof, err := seccompProfile(bundleInput{pod: p, c: &p.Spec.Containers[0]}, defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	// The moby profile names 32-bit ARM only as a sub-architecture of
	// arm64, so an ARM build gets no architecture list, which runc reads
	// as the native one (the kernel's, ARM on a Pi Zero).
	wantArch := runtime.GOARCH != "arm"
	if prof == nil || prof.DefaultAction != "SCMP_ACT_ERRNO" || len(prof.Syscalls) < 10 || (len(prof.Architectures) > 0) != wantArch {
		t.Fatalf("default profile = %+v, want an allow list for this architecture", prof)
	}
	allowed := func(name string) bool {
		for _, s := range prof.Syscalls {
			if slices.Contains(s.Names, name) && s.Action == "SCMP_ACT_ALLOW" && len(s.Args) == 0 {
				return true
			}
		}
		return false
	}
	if !allowed("read") {
		t.Error("default profile does not allow read")
	}
	if allowed("kexec_load") {
		t.Error("default profile allows kexec_load without CAP_SYS_BOOT")
	}
}

// TestSpecSandbox: a container that is not privileged gets containerd's
// masked and read-only paths and the seccomp profile it asks for; a
// privileged one gets none of them, as in containerd.
func TestSpecSandbox(t *testing.T) {
	yes := true
	rt := &SeccompProfile{Type: "RuntimeDefault"}
	for _, privileged := range []bool{false, true} {
		c := Container{Name: "c", Command: []string{"sh"}, SecurityContext: &SecurityContext{SeccompProfile: rt}}
		if privileged {
			c.SecurityContext.Privileged = &yes
		}
		p := testPod("p", c)
		s, err := buildSpec(bundleInput{pod: p, c: &p.Spec.Containers[0], rootfs: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		l := s.Linux
		sandboxed := slices.Contains(l.MaskedPaths, "/sys/devices/virtual/powercap") &&
			slices.Contains(l.ReadonlyPaths, "/proc/sysrq-trigger") && l.Seccomp != nil
		if sandboxed == privileged || (privileged && (len(l.MaskedPaths) > 0 || l.Seccomp != nil)) {
			t.Errorf("privileged %v: masked %q, read-only %q, seccomp %v", privileged, l.MaskedPaths, l.ReadonlyPaths, l.Seccomp != nil)
		}
	}
}
