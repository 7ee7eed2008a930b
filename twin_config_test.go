package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
	"edgenode/twin"
)

// file is the twin config main hands twin on node n1 with data dir /data:
// the file's section, the top level's node, era and data dir, defaults.
func file(era bus.Era, override, dir string, queueLen, maxPayload int) twin.Config {
	return twin.Config{NodeName: "n1", Era: era, EraOverride: override, DataDir: "/data",
		DevicesDir: dir, QueueLen: queueLen, MaxPayload: maxPayload}.Defaults()
}

// TestTwinConfig: main assembles twin's section with the top level, and
// twin.Config.Validate's problems come back naming their keys.
func TestTwinConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       twin.Config
		err        string
	}{
		{"defaults", "", file(bus.EraV123, "", "", 256, 65536), ""},
		{"top-level era", "era: v0.3\n", file(bus.EraV03, "", "", 256, 65536), ""},
		{"twin era overrides", "era: v0.3\ntwin:\n  era: v1.23\n", file(bus.EraV123, "v1.23", "", 256, 65536), ""},
		{"no device files", "twin:\n  devicesDir: none\n  queueLen: 8\n  maxPayload: 1024\n", file(bus.EraV123, "", twin.DevicesOff, 8, 1024), ""},
		{"payload limit follows mqtt", "mqtt:\n  maxPayload: 1000\n", file(bus.EraV123, "", "", 256, 1000), ""},
		{"twin limit over mqtt's", "twin:\n  maxPayload: 70000\n", twin.Config{}, "twin.maxPayload: 70000 is larger than mqtt.maxPayload (65536)"},
		{"twin limit under mqtt's", "twin:\n  maxPayload: 1000\n", file(bus.EraV123, "", "", 256, 1000), ""},
		{"bad era", "twin:\n  era: v9\n", twin.Config{}, "twin.era"},
		{"relative dir", "twin:\n  devicesDir: devs\n", twin.Config{}, "twin.devicesDir"},
		{"unknown key", "twin:\n  color: red\n", twin.Config{}, "color"},
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
			if diff := cmp.Diff(tc.want, cfg.Twin); diff != "" {
				t.Errorf("Twin diff (-want +got):\n%s", diff)
			}
		})
	}
}
