package twin

import (
	"strings"
	"testing"

	"edgenode/bus"
)

func TestConfigDevicesDir(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"default under the data dir", Config{DataDir: "/data"}, "/data/devices"},
		{"no data dir, no files", Config{}, ""},
		{"off", Config{DataDir: "/data", DevicesDir: DevicesOff}, ""},
		{"given", Config{DataDir: "/data", DevicesDir: "/etc/devices"}, "/etc/devices"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Defaults().devicesDir(); got != tt.want {
				t.Errorf("devicesDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := Config{Era: bus.EraV123, EraOverride: "v0.3"}.Defaults()
	if c.Era != bus.EraV03 || c.QueueLen != DefaultQueueLen || c.ClientShare != DefaultQueueLen/4 {
		t.Errorf("Defaults() = era %v queueLen %d clientShare %d, want v0.3 %d %d", c.Era, c.QueueLen, c.ClientShare, DefaultQueueLen, DefaultQueueLen/4)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // "" for no problem; else a key every problem names
	}{
		{"ok", Config{DevicesDir: "/d"}, ""},
		{"off", Config{DevicesDir: DevicesOff}, ""},
		{"bad era", Config{EraOverride: "v9"}, "twin.era"},
		{"relative dir", Config{DevicesDir: "d"}, "twin.devicesDir"},
		{"negative", Config{QueueLen: -1}, "twin.queueLen"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate()
			if (len(errs) == 0) != (tt.want == "") {
				t.Fatalf("Validate() = %v, want problems naming %q", errs, tt.want)
			}
			for _, err := range errs {
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Validate() error %q does not name %s", err, tt.want)
				}
			}
		})
	}
}
