package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestRuntimeMemoryLimit(t *testing.T) {
	cases := []struct {
		name   string
		mib    int // config value before defaults
		env    string
		want   int64
		wantOK bool
		desc   string
	}{
		{"default", 0, "", DefaultMemoryLimitMiB << 20, true, "8 MiB"},
		{"configured", 12, "", 12 << 20, true, "12 MiB"},
		{"off", -1, "", 0, false, "off"},
		{"env wins", 12, "64MiB", 0, false, "GOMEMLIMIT=64MiB"},
		{"env off wins", 0, "off", 0, false, "GOMEMLIMIT=off"},
	}
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := RuntimeConfig{MemoryLimitMiB: c.mib}
			cfg.defaults()
			got, ok := cfg.memoryLimit(c.env)
			if got != c.want || ok != c.wantOK {
				t.Fatalf("memoryLimit(%q) = %d, %v; want %d, %v", c.env, got, ok, c.want, c.wantOK)
			}
			debug.SetMemoryLimit(math.MaxInt64)
			if d := applyRuntime(cfg, c.env); d != c.desc {
				t.Errorf("applyRuntime = %q, want %q", d, c.desc)
			}
			want := int64(math.MaxInt64)
			if c.wantOK {
				want = c.want
			}
			if now := debug.SetMemoryLimit(-1); now != want {
				t.Errorf("runtime limit = %d, want %d", now, want)
			}
		})
	}
}

// TestConfigRuntimeDefault: `edgenode config` shows the memory limit.
func TestConfigRuntimeDefault(t *testing.T) {
	var c Config
	c.defaults()
	if c.Runtime.MemoryLimitMiB != DefaultMemoryLimitMiB {
		t.Errorf("runtime.memoryLimitMiB = %d, want %d", c.Runtime.MemoryLimitMiB, DefaultMemoryLimitMiB)
	}
}
