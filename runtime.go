package main

import (
	"fmt"
	"runtime/debug"
)

// RuntimeConfig tunes the Go runtime of the node process.
type RuntimeConfig struct {
	// MemoryLimitMiB is the Go runtime's soft memory limit in MiB
	// (runtime/debug.SetMemoryLimit). 0 means the default,
	// DefaultMemoryLimitMiB; a negative value leaves the runtime without a
	// limit. The GOMEMLIMIT environment variable, when set, wins.
	//
	// Why a limit: the idle node's live heap is about 1 MiB, but the
	// collector's smallest heap goal is 4 MiB, so the garbage of start-up
	// (config, TLS handshake, schema migration) stays resident and the
	// scavenger keeps about 10 % over that goal. With a limit the scavenger
	// returns freed pages to stay under it. Idle node A/B on amd64, same
	// minute, 5 s after connect: RssAnon 5.8-5.9 MiB without a limit, 4.6-4.7
	// MiB with 6 MiB, 4.6-5.0 MiB with 8 MiB, 5.1 MiB with 10 MiB. The limit
	// is soft: when the live heap grows towards it (many pods), the
	// collector runs more often, its CPU share capped at 50 %, and memory
	// grows past the limit instead of failing. 8 MiB keeps that well above
	// the idle and 30-pod live heaps; raise it on a board with spare RAM and
	// busy pods.
	MemoryLimitMiB int `yaml:"memoryLimitMiB"`
}

// DefaultMemoryLimitMiB is runtime.memoryLimitMiB's default.
const DefaultMemoryLimitMiB = 8

func (c *RuntimeConfig) defaults() {
	if c.MemoryLimitMiB == 0 {
		c.MemoryLimitMiB = DefaultMemoryLimitMiB
	}
}

// memoryLimit returns the limit in bytes to set, and false when the runtime
// is to be left alone: no limit configured, or GOMEMLIMIT set (the runtime
// has read it already).
func (c RuntimeConfig) memoryLimit(goMemLimit string) (int64, bool) {
	if goMemLimit != "" || c.MemoryLimitMiB <= 0 {
		return 0, false
	}
	return int64(c.MemoryLimitMiB) << 20, true
}

// applyRuntime sets the runtime limits of cfg; goMemLimit is the value of
// GOMEMLIMIT. It returns a description for the start-up log.
func applyRuntime(cfg RuntimeConfig, goMemLimit string) string {
	if n, ok := cfg.memoryLimit(goMemLimit); ok {
		debug.SetMemoryLimit(n)
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if goMemLimit != "" {
		return "GOMEMLIMIT=" + goMemLimit
	}
	return "off"
}
