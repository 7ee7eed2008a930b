package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitScript drives init/edgenode.init (start, status, stop) with the
// built binary, under /bin/sh and under busybox sh when present.
func TestInitScript(t *testing.T) {
	bin := buildEdgenode(t)
	shells := [][]string{{"/bin/sh"}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		shells = append(shells, []string{bb, "sh"})
	} else {
		t.Log("busybox not installed: testing the init script with /bin/sh only")
	}
	for _, sh := range shells {
		t.Run(filepath.Base(sh[0]), func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("version: 1\nnodeName: init-node\ndataDir: %s/data\nwatchdog:\n  device: off\ndmi:\n  socket: none\nhealth:\n  listen: 127.0.0.1:0\nmqtt:\n  internal:\n    listen: 127.0.0.1:0\n", dir)), 0o600)
			script := func(arg string) (int, string) {
				cmd := exec.Command(sh[0], append(sh[1:], "init/edgenode.init", arg)...)
				cmd.Env = append(os.Environ(), "DAEMON="+bin, "CONFIG="+cfg,
					"PIDFILE="+dir+"/edgenode.pid", "LOGFILE="+dir+"/edgenode.log", "STOP_TIMEOUT=20")
				out, err := cmd.CombinedOutput()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatalf("%s %s: %v", sh, arg, err)
				}
				return code, string(out)
			}
			if code, out := script("status"); code != 3 {
				t.Errorf("status before start = %d %q, want 3", code, out)
			}
			if code, out := script("start"); code != 0 {
				log, _ := os.ReadFile(dir + "/edgenode.log")
				t.Fatalf("start = %d %q, want 0\nlog:\n%s", code, out, log)
			}
			defer script("stop")
			if code, out := script("status"); code != 0 || !strings.Contains(out, "is running") {
				t.Errorf("status after start = %d %q, want 0 running", code, out)
			}
			readLog := func() string { b, _ := os.ReadFile(dir + "/edgenode.log"); return string(b) }
			health, err := waitHealthAddr(t.Context(), readLog, nil)
			if err == nil {
				_, err = waitHealthy(t.Context(), "http://"+health+"/healthz", nil)
			}
			if err != nil {
				t.Errorf("edgenode started by the init script never served /healthz: %v\nlog:\n%s", err, readLog())
			}
			if code, out := script("start"); code != 0 || !strings.Contains(out, "already running") {
				t.Errorf("second start = %d %q, want 0 already running", code, out)
			}
			if code, out := script("stop"); code != 0 || strings.Contains(out, "killing") {
				t.Errorf("stop = %d %q, want 0 and a clean SIGTERM stop", code, out)
			}
			if code, out := script("status"); code != 3 {
				t.Errorf("status after stop = %d %q, want 3", code, out)
			}
			log, _ := os.ReadFile(dir + "/edgenode.log")
			if !strings.Contains(string(log), "edgenode stopped") {
				t.Errorf("log does not show a clean stop:\n%s", log)
			}
		})
	}
}

// TestSystemdUnit checks init/edgenode.service with systemd-analyze verify.
func TestSystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	b, err := os.ReadFile("init/edgenode.service")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "edgenode")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	unit := filepath.Join(t.TempDir(), "edgenode.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/edgenode", bin)), 0o644)
	if out, err := exec.Command(sa, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/edgenode run --config /etc/edgenode/config.yaml", "KillSignal=SIGTERM", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}
