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
	// collector's smallest heap goal is 4 MiB, so without a limit no
	// collection runs after start-up, its garbage (config, TLS handshake,
	// schema migration) stays resident and the idle churn adds to it: an
	// idle node on amd64 held RssAnon 5.7-6.2 MiB 5 s after connecting, 6.7-7.3
	// MiB after 20 s and 7.4-7.9 MiB after 40 s, over the 6 MiB budget. With
	// the 8 MiB limit: 4.6-4.8 MiB at 5 s, 4.6-4.7 MiB at 20 s, 4.9 MiB at 40 s.
	//
	// The cost: the limit counts what the runtime has mapped, not what is
	// resident, and an idle node's runtime already accounts for about 8 MiB
	// (GC metadata and the 1.4 MiB bucket table of the allocation profile
	// among it, mostly never touched). So at 8 MiB the collector runs about
	// once a second at idle (about 1 ms of CPU each on amd64, more on a
	// Pi Zero) and some 70 times during start-up. The limit is soft: when
	// the live heap grows towards it (many pods) the collector runs more
	// often, its CPU share capped at 50 %, and memory grows past the limit
	// instead of failing. On a board with RAM to spare and busy pods, raise
	// it or turn it off (-1). GODEBUG=memprofilerate=0 in the environment
	// drops the bucket table and leaves the limit more room (it must be set
	// before the process starts; main is too late).
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
