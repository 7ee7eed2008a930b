package main

import (
	"strings"
	"testing"
)

func TestStreamConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		server     string // "" means off
		err        string
	}{
		{"no cloud: off", "", "", ""},
		{"on with a cloud", "hub:\n  server: 192.0.2.1:10000\n", "192.0.2.1:10004", ""},
		{"off", "hub:\n  server: 192.0.2.1:10000\nstream:\n  server: \"off\"\n", "", ""},
		{"own server", "hub:\n  server: 192.0.2.1:10000\nstream:\n  server: 192.0.2.9:30004\n", "192.0.2.9:30004", ""},
		{"bad server", "stream:\n  server: nohostport\n", "", "stream.server"},
		{"negative", "stream:\n  server: 192.0.2.9:1\n  maxConns: -1\n", "", "maxConns"},
		{"unknown key", "stream:\n  color: red\n", "", "color"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadYAML(t, tc.yaml)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("loadConfig(%q) = %v, want an error naming %s", tc.yaml, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig(%q) = %v", tc.yaml, err)
			}
			sc := cfg.streamConfig()
			if got := map[bool]string{true: sc.Server}[sc.Enabled()]; got != tc.server {
				t.Errorf("streamConfig().Server = %q (enabled %v), want %q", sc.Server, sc.Enabled(), tc.server)
			}
			if sc.Enabled() && (sc.NodeName != "n1" || sc.CertFile != "/data/certs/edge.crt" || sc.KeyFile != "/data/certs/edge.key" || sc.Ping == 0) {
				t.Errorf("streamConfig() = %+v, want node n1, the hub's certificate and defaults", sc)
			}
		})
	}
}
