package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMQTTFlags: --mqtt-mode and --mqtt-listen reach the mqtt section, the
// both-mode default moves the broker to 1884, passwords print redacted, and
// bad values are config errors.
func TestMQTTFlags(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("mqtt:\n  internal:\n    username: dev\n    password: hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		wants  []string
		absent []string
	}{
		{"defaults", nil, 0, []string{"mode: internal", "listen: 127.0.0.1:1883", "password: (redacted)"}, []string{"hunter2"}},
		{"both", []string{"--mqtt-mode", "both"}, 0, []string{"mode: both", "listen: 127.0.0.1:1884"}, nil},
		{"listen", []string{"--mqtt-listen", "0.0.0.0:1999"}, 0, []string{"listen: 0.0.0.0:1999"}, nil},
		{"external", []string{"--mqtt-mode", "external"}, 0, []string{"mode: external", "server: tcp://127.0.0.1:1883"}, nil},
		{"bad mode", []string{"--mqtt-mode", "2"}, 1, []string{"mqtt.mode"}, nil},
		{"bad listen", []string{"--mqtt-listen", "nope"}, 1, []string{"mqtt.internal.listen"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"config", "--config", cfgPath, "--data-dir", dir, "--node-name", "n1"}, c.args...)
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
					t.Errorf("output shows %q", a)
				}
			}
		})
	}
}
