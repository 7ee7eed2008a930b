package board

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := CheckDataDir(dir); err != nil {
		t.Fatalf("CheckDataDir(new dir) = %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("CheckDataDir left %d files behind", len(ents))
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if err := CheckDataDir(file); !errors.Is(err, ErrDataDir) {
		t.Errorf("CheckDataDir(a file) = %v, want ErrDataDir", err)
	}
	err := CheckDataDir(filepath.Join(file, "sub"))
	if !errors.Is(err, ErrDataDir) || !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), "parent") {
		t.Errorf("CheckDataDir(under a file) = %v, want ErrDataDir, ENOTDIR and a hint", err)
	}
}

func TestDataDirHints(t *testing.T) {
	tests := []struct {
		err  error
		hint string
	}{
		{syscall.EROFS, "read-only"},
		{syscall.EACCES, "permission denied"},
		{syscall.ENOSPC, "full"},
		{syscall.EIO, "check the mount"},
	}
	for _, tt := range tests {
		err := dataDirError("/var/lib/edgenode", "cannot create a file in it", &os.PathError{Op: "open", Path: "x", Err: tt.err})
		if !errors.Is(err, ErrDataDir) || !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.hint) {
			t.Errorf("dataDirError(%v) = %v, want ErrDataDir, the errno and %q", tt.err, err, tt.hint)
		}
	}
}

func TestParseKernel(t *testing.T) {
	tests := []struct {
		in       string
		maj, min int
		ok       bool
	}{
		{"6.6.51+rpt-rpi-v6", 6, 6, true},
		{"5.10.103+", 5, 10, true},
		{"4.19-rc1", 4, 19, true},
		{"6", 0, 0, false},
		{"x.y", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		maj, min, err := ParseKernel(tt.in)
		if maj != tt.maj || min != tt.min || (err == nil) != tt.ok {
			t.Errorf("ParseKernel(%q) = %d, %d, %v, want %d, %d, ok %v", tt.in, maj, min, err, tt.maj, tt.min, tt.ok)
		}
	}
}

func TestPreflightChecks(t *testing.T) {
	nsAll := fstest.MapFS{}
	for _, n := range []string{"mnt", "pid", "ipc", "uts", "net", "cgroup", "user"} {
		nsAll["proc/self/ns/"+n] = &fstest.MapFile{}
	}
	with := func(extra fstest.MapFS) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range nsAll {
			m[k] = v
		}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	v2 := &fstest.MapFile{Data: []byte("cpuset cpu io memory pids\n")}
	fsok := &fstest.MapFile{Data: []byte("nodev\tsysfs\nnodev\ttmpfs\nnodev\toverlay\n")}
	tests := []struct {
		name   string
		fs     fstest.MapFS
		kernel string
		want   map[string]CheckStatus
		detail string
	}{
		{"pi zero all good", with(fstest.MapFS{"sys/fs/cgroup/cgroup.controllers": v2, "proc/filesystems": fsok}), "6.6.51+rpt-rpi-v6",
			map[string]CheckStatus{"kernel": Pass, "cgroup": Pass, "overlayfs": Pass, "namespaces": Pass}, ""},
		{"pi os memory cgroup off", with(fstest.MapFS{"sys/fs/cgroup/cgroup.controllers": {Data: []byte("cpu io pids\n")}, "proc/filesystems": fsok}), "6.1.21-v7+",
			map[string]CheckStatus{"kernel": Pass, "cgroup": Fail, "overlayfs": Pass, "namespaces": Pass}, "cgroup_enable=memory"},
		{"v1 hierarchy", with(fstest.MapFS{"proc/cgroups": {Data: []byte("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t1\npids\t4\t1\t1\n")}, "proc/filesystems": fsok}), "5.10.103+",
			map[string]CheckStatus{"kernel": Pass, "cgroup": Pass, "overlayfs": Pass, "namespaces": Pass}, ""},
		{"v1 no cpu", with(fstest.MapFS{"proc/cgroups": {Data: []byte("cpu\t2\t1\t0\nmemory\t3\t1\t1\npids\t4\t1\t1\n")}, "proc/filesystems": fsok}), "4.19.0",
			map[string]CheckStatus{"kernel": Pass, "cgroup": Warn, "overlayfs": Pass, "namespaces": Pass}, "cpu"},
		{"old kernel, no overlay, no user ns", with(fstest.MapFS{"sys/fs/cgroup/cgroup.controllers": v2, "proc/filesystems": {Data: []byte("nodev\tsysfs\n")}, "proc/self/ns/user": nil}), "4.9.80",
			map[string]CheckStatus{"kernel": Warn, "cgroup": Pass, "overlayfs": Warn, "namespaces": Warn}, "user"},
		{"no pid namespace, ancient kernel", with(fstest.MapFS{"sys/fs/cgroup/cgroup.controllers": v2, "proc/filesystems": fsok, "proc/self/ns/pid": nil}), "3.4.0",
			map[string]CheckStatus{"kernel": Fail, "cgroup": Pass, "overlayfs": Pass, "namespaces": Fail}, "pid"},
		{"no cgroup files", with(fstest.MapFS{"proc/filesystems": fsok}), "6.1.0",
			map[string]CheckStatus{"kernel": Pass, "cgroup": Fail, "overlayfs": Pass, "namespaces": Pass}, "/proc/cgroups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := Preflight(t.Context(), PreflightConfig{FS: tt.fs, Kernel: tt.kernel, Runc: "/nonexistent/runc", Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
			got := map[string]CheckStatus{}
			var details []string
			for _, r := range rs[:4] {
				got[r.Name] = r.Status
				details = append(details, r.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Preflight mismatch (-want +got):\n%s", diff)
			}
			if tt.detail != "" && !strings.Contains(strings.Join(details, "\n"), tt.detail) {
				t.Errorf("Preflight details %q do not mention %q", details, tt.detail)
			}
			if r := rs[4]; r.Name != "runc" || r.Status != Fail {
				t.Errorf("runc check with no runc = %v, want FAIL", r)
			}
			if !Failed(rs) {
				t.Error("Failed() = false with runc missing")
			}
		})
	}
}

func TestPreflightHost(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not on PATH (apt-get install runc)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	rs := Preflight(t.Context(), PreflightConfig{DataDir: dir, Runc: runc, BrokerAddr: l.Addr().String(), Now: time.Unix(0, 0)})
	byName := map[string]CheckResult{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	for name, want := range map[string]CheckStatus{"runc": Pass, "data dir": Pass, "clock": Fail, "broker port": Fail} {
		if got := byName[name]; got.Status != want {
			t.Errorf("%s = %v, want %s", name, got, want)
		}
	}
	if d := byName["runc"].Detail; !strings.HasPrefix(d, "runc://1.") {
		t.Errorf("runc detail = %q, want runc://<version>", d)
	}
	if d := byName["broker port"].Detail; !strings.Contains(d, "in use") {
		t.Errorf("broker port detail = %q, want 'in use'", d)
	}
	free := l.Addr().String()
	l.Close()
	if r := checkPort(free); r.Status != Pass {
		t.Errorf("checkPort(free %s) = %v, want PASS", free, r)
	}
}
