package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// RuntimeConfig tunes the Go runtime of the node process.
type RuntimeConfig struct {
	// MemoryLimitMiB is the Go runtime's soft memory limit in MiB
	// (runtime/debug.SetMemoryLimit); 0 or negative means none, the
	// default. The GOMEMLIMIT environment variable, when set, wins.
	//
	// Why none by default: the limit counts everything the runtime has
	// mapped (GC metadata, the allocation profile's bucket table, stacks),
	// not what is resident, and on an idle node that is already about the
	// size of any limit worth setting. A limit near it (the former
	// default) made the collector run about once a second at idle and
	// continuously once a burst of twin updates had grown the runtime's own
	// memory past it (README "Bench" compares the idle CPU before and
	// after). Start-up and burst garbage is returned to the kernel by the
	// idle trim instead.
	MemoryLimitMiB int `yaml:"memoryLimitMiB"`
	// IdleTrim is how long the node must go without a collection, after
	// a collection or start-up, before it collects (once, burstPasses
	// times after a burst) and returns the freed memory to the kernel
	// (debug.FreeOSMemory), if it has allocated at least trimMinAlloc
	// since the last trim. 0 means the default, DefaultIdleTrim;
	// negative turns it off. An idle node that allocates nothing never
	// collects and never trims.
	IdleTrim time.Duration `yaml:"idleTrim"`
	// GCPercent is the collector's pace (runtime/debug.SetGCPercent): a
	// collection starts once the heap has grown this many percent over
	// what the previous one left live. 0 means the default,
	// DefaultGCPercent. The GOGC environment variable, when set, wins.
	GCPercent int `yaml:"gcPercent"`
	// MaxProcs is how many threads may run Go code at once
	// (runtime.GOMAXPROCS). 0 means the default, DefaultMaxProcs; -1
	// leaves the runtime's own choice (the CPUs the node may use). The
	// GOMAXPROCS environment variable, when set, wins.
	MaxProcs int `yaml:"maxProcs"`
}

// DefaultMaxProcs is runtime.maxProcs's default: one thread runs Go code
// at a time, whatever the CPUs.
//
// The node's work is a chain of short hand-offs (a broker read, the bus,
// a twin worker, a commit, a publish) and waits on the disk and the
// network, not computation to spread over cores; its pods are other
// processes. With one, every hand-off stays on the thread that made it;
// with more, each wakes a thread on another core that sleeps again a few
// microseconds later, and each P keeps caches of its own. On the host (2
// cores, README "Bench"), 1 against the runtime's 2: a 10,000-update twin
// burst took 44 clock ticks of the node's CPU against 60-71, and left
// RssAnon at 5.35 against 5.74-5.79 MiB and VmRSS at 19.8 against
// 20.2-20.4 MiB (the budget is 20). While one client floods twin updates,
// another client's twin/get took 15-16 ms at p99 with 1 and 17 ms with 2
// (mqtt's pace; 92-170 ms with 1 before it). The Pi Zero has one core in
// any case. A board whose node has CPU-heavy work to spread (hundreds of
// pods' statuses, frequent scrapes) may set more, or -1.
const DefaultMaxProcs = 1

// DefaultGCPercent is runtime.gcPercent's default: Go's own.
//
// An idle node allocates almost nothing, so the pace costs nothing at
// idle; it matters in a burst (twin updates, pod starts). The heap then
// grows to about (100 + pace) % of what is live between collections, and
// not all the runtime takes on for that peak comes back after the idle
// trim (span sets and mark bitmaps of the size classes the burst used,
// partly filled spans). A lower pace keeps less after a burst for more
// CPU during it. After a 10,000-update twin burst on the host (README
// "Bench"), 50 against 100: RssAnon 5.65-5.75 against 6.10-6.23 MiB
// once idle again, and the burst took 88-97 against 62-84 clock ticks of
// the node's CPU. Trading CPU in every burst for memory is the user's
// choice to make, so the default stays Go's.
const DefaultGCPercent = 100

// DefaultIdleTrim is runtime.idleTrim's default.
const DefaultIdleTrim = 30 * time.Second

// trimMinAlloc is how much the heap must have allocated since the last
// trim for the next one to run: less than this is not worth a collection.
const trimMinAlloc = 256 << 10

// After a burst (burstAlloc allocated since the last trim: a twin burst,
// pod starts) a trim collects burstPasses times: one collection does not
// give back all that a burst leaves (sync.Pool entries outlive one in the
// pools' victim caches; in a test of 10,000 commits each further pass
// returned about 80 KiB more). After a 10,000-update twin burst on the
// host, three runs with it against three without: about 0.08 MiB less
// RssAnon on average, within the spread between runs, for two more
// collections once per burst. The idle trickle, well under burstAlloc a
// period, keeps one pass.
const (
	burstAlloc  = 8 << 20
	burstPasses = 3
)

func (c *RuntimeConfig) defaults() {
	if c.IdleTrim == 0 {
		c.IdleTrim = DefaultIdleTrim
	}
	if c.GCPercent == 0 {
		c.GCPercent = DefaultGCPercent
	}
	if c.MaxProcs == 0 {
		c.MaxProcs = DefaultMaxProcs
	}
}

// validate returns the problems of c, each naming its key.
func (c RuntimeConfig) validate() []error {
	var errs []error
	if c.GCPercent < 0 {
		errs = append(errs, fmt.Errorf("runtime.gcPercent: %d must not be negative (GOGC=off turns the collector off)", c.GCPercent))
	}
	if c.MaxProcs < -1 {
		errs = append(errs, fmt.Errorf("runtime.maxProcs: %d must be at least 1, or -1 for the runtime's choice", c.MaxProcs))
	}
	return errs
}

// applyMaxProcs sets the threads that run Go code at once to cfg's unless
// GOMAXPROCS (goMaxProcs) is set, which the runtime has read already. It
// returns a description for the start-up log.
func applyMaxProcs(cfg RuntimeConfig, goMaxProcs string) string {
	switch {
	case goMaxProcs != "":
		return "GOMAXPROCS=" + goMaxProcs
	case cfg.MaxProcs > 0:
		runtime.GOMAXPROCS(cfg.MaxProcs)
		return fmt.Sprint(cfg.MaxProcs)
	}
	return fmt.Sprintf("%d (the runtime's)", runtime.GOMAXPROCS(0))
}

// applyGCPercent sets the collector's pace of cfg unless GOGC (goGC) is
// set, which the runtime has read already. It returns a description for
// the start-up log.
func applyGCPercent(cfg RuntimeConfig, goGC string) string {
	if goGC != "" {
		return "GOGC=" + goGC
	}
	debug.SetGCPercent(cfg.GCPercent)
	return fmt.Sprintf("%d%%", cfg.GCPercent)
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

// trimmer returns freed memory to the kernel once the node has gone
// quiet. It learns of collections from a cleanup (runtime.AddCleanup) on a
// sentinel object, re-armed at each collection, so it wakes only when the
// heap has grown enough for a collection: nothing polls. Each collection
// (re)starts a timer of quiet; when the timer fires and enough has been
// allocated since the last trim, it trims (several times after a burst)
// and looks again one period later. Once a period has allocated less
// than trimMinAlloc it stops until the next collection: a node that
// allocates nothing never wakes it.
type trimmer struct {
	quiet   time.Duration
	gc      chan struct{} // a collection has run; 1 slot
	stopped atomic.Bool
	trims   atomic.Int64
	sample  [1]metrics.Sample
	free    func()        // debug.FreeOSMemory; replaced in tests
	alloc   func() uint64 // heapAllocs; replaced in tests
	// release, if set, lets go of what the node grew for a burst
	// (bus.Bus.Trim) just before the trim collects it.
	release func()
}

func newTrimmer(quiet time.Duration) *trimmer {
	t := &trimmer{quiet: quiet, gc: make(chan struct{}, 1), free: debug.FreeOSMemory}
	t.sample[0].Name = "/gc/heap/allocs:bytes"
	t.alloc = t.heapAllocs
	return t
}

// arm allocates a sentinel whose cleanup runs after the next collection
// that finds it unreachable: it signals t.gc and arms the next one.
func (t *trimmer) arm() {
	s := new([16]byte) // a tiny object is batched with others; 16 bytes has its own slot
	runtime.AddCleanup(s, func(t *trimmer) {
		if t.stopped.Load() {
			return
		}
		select {
		case t.gc <- struct{}{}:
		default:
		}
		t.arm()
	}, t)
}

// heapAllocs returns the bytes the heap has allocated since the start.
func (t *trimmer) heapAllocs() uint64 {
	metrics.Read(t.sample[:])
	return t.sample[0].Value.Uint64()
}

// Run trims until ctx ends. The timer starts at once, so start-up garbage
// is returned once start-up has been quiet for t.quiet.
func (t *trimmer) Run(ctx context.Context) {
	defer t.stopped.Store(true)
	t.arm()
	t.loop(ctx)
}

func (t *trimmer) loop(ctx context.Context) {
	var last uint64
	tm := time.NewTimer(t.quiet)
	defer tm.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.gc:
			tm.Reset(t.quiet)
		case <-tm.C:
			if now := t.alloc(); now-last >= trimMinAlloc {
				passes := 1
				if now-last >= burstAlloc {
					passes = burstPasses
				}
				if t.release != nil {
					t.release()
				}
				for range passes {
					t.free()
				}
				t.trims.Add(1)
				last = t.alloc()
				// The node still allocates (a status report every few
				// seconds): look again after another quiet period rather
				// than let the heap grow to the collector's goal.
				tm.Reset(t.quiet)
			}
		}
	}
}
