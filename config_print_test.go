package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrintAndErrors: `edgenode config` shows twin's limits (its
// payload limit following mqtt.maxPayload), hides the join token, and a bad
// flag with no config file is not blamed on a file that does not exist.
func TestConfigPrintAndErrors(t *testing.T) {
	skipIfDefaultConfig(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(small, []byte("mqtt:\n  maxPayload: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := strings.Repeat("a", 64) + ".eyJh.eyJi.c2ln"
	cases := []struct {
		name   string
		args   []string
		code   int
		wants  []string
		absent []string
	}{
		{"twin defaults", nil, 0, []string{"twin:\n  queueLen: 256\n  maxPayload: 65536\n"}, nil},
		{"twin follows mqtt", []string{"--config", small}, 0, []string{"twin:\n  queueLen: 256\n  maxPayload: 1000\n"}, nil},
		{"token hidden", []string{"--cloud", "127.0.0.1:10000", "--token", token}, 0, []string{"token: (redacted)"}, []string{token}},
		{"bad flag, no file", []string{"--data-dir", "relative"}, 1,
			[]string{"no file " + DefaultConfigPath, `dataDir: "relative" must be an absolute path`},
			[]string{"config " + DefaultConfigPath + ": invalid"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"config", "--data-dir", dir, "--node-name", "n1"}, c.args...)
			if code := realMain(args, &out, &errb); code != c.code {
				t.Fatalf("edgenode %s = %d, want %d; stderr:\n%s", strings.Join(args, " "), code, c.code, errb.String())
			}
			all := out.String() + errb.String()
			for _, w := range c.wants {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(all, a) {
					t.Errorf("output shows %q:\n%s", a, all)
				}
			}
		})
	}
}

// TestHelp: "edgenode -h" lists the commands as well as run's flags;
// "edgenode run -h" shows run's flags only.
func TestHelp(t *testing.T) {
	cases := []struct {
		args          []string
		wants, absent []string
	}{
		{[]string{"-h"}, []string{"commands:", "  version ", "-data-dir", "-cloud"}, nil},
		{[]string{"--help"}, []string{"commands:", "-cloud"}, nil},
		{[]string{"run", "-h"}, []string{"-data-dir", "-cloud"}, []string{"commands:"}},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := realMain(c.args, &out, &errb); code != 0 {
			t.Errorf("edgenode %s = %d, want 0", strings.Join(c.args, " "), code)
		}
		all := out.String() + errb.String()
		for _, w := range c.wants {
			if !strings.Contains(all, w) {
				t.Errorf("edgenode %s: output lacks %q:\n%s", strings.Join(c.args, " "), w, all)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(all, a) {
				t.Errorf("edgenode %s: output shows %q", strings.Join(c.args, " "), a)
			}
		}
	}
}
