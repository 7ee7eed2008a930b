package main

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
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
		{"default none", 0, "", 0, false, "off"},
		{"configured", 12, "", 12 << 20, true, "12 MiB"},
		{"negative none", -1, "", 0, false, "off"},
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

// setting is one runtime setting of RuntimeConfig as the tests drive it.
type setting struct {
	key   string                             // its config key
	cfg   func(v int) RuntimeConfig          // a config with the value v
	apply func(RuntimeConfig, string) string // applyGCPercent, applyMaxProcs
	set   func(v int) int                    // sets the runtime's value, returns the old one
	bad   int                                // a value the config refuses
	cases []settingCase
}

type settingCase struct {
	name string
	val  int    // config value before defaults
	env  string // the environment variable's value
	want int    // the runtime's value afterwards
	desc string // what apply returns for the log
}

// testSetting runs s's cases: the runtime's value starts at standIn (what
// it read at start), apply sets the configured one unless the environment
// names one; the bad value is refused.
func testSetting(t *testing.T, s setting, standIn int) {
	old := s.set(standIn)
	t.Cleanup(func() { s.set(old) })
	for _, c := range s.cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := s.cfg(c.val)
			cfg.defaults()
			if errs := cfg.validate(); len(errs) > 0 {
				t.Fatal(errs)
			}
			s.set(standIn)
			if d := s.apply(cfg, c.env); d != c.desc {
				t.Errorf("apply = %q, want %q", d, c.desc)
			}
			if now := s.set(standIn); now != c.want {
				t.Errorf("the runtime's %s = %d, want %d", s.key, now, c.want)
			}
		})
	}
	cfg := s.cfg(s.bad)
	cfg.defaults()
	if errs := cfg.validate(); len(errs) != 1 {
		t.Errorf("%s %d: errors %v, want one", s.key, s.bad, errs)
	}
}

// TestRuntimeGCPercent: the node sets the collector's pace it is
// configured with (DefaultGCPercent if none), unless GOGC is set.
func TestRuntimeGCPercent(t *testing.T) {
	testSetting(t, setting{
		key:   "gcPercent",
		cfg:   func(v int) RuntimeConfig { return RuntimeConfig{GCPercent: v} },
		apply: applyGCPercent,
		set:   debug.SetGCPercent,
		bad:   -1,
		cases: []settingCase{
			{"default", 0, "", DefaultGCPercent, "100%"},
			{"configured low", 50, "", 50, "50%"},
			{"configured", 80, "", 80, "80%"},
			{"env wins", 80, "200", 100, "GOGC=200"},
		},
	}, 100)
}

// TestConfigRuntimeDefault: `edgenode config` shows the runtime settings.
func TestConfigRuntimeDefault(t *testing.T) {
	var c Config
	c.defaults()
	if c.Runtime.MemoryLimitMiB != 0 || c.Runtime.IdleTrim != DefaultIdleTrim || c.Runtime.GCPercent != DefaultGCPercent ||
		c.Runtime.MaxProcs != DefaultMaxProcs {
		t.Errorf("runtime = %+v, want no memory limit, idleTrim %v, gcPercent %d and maxProcs %d",
			c.Runtime, DefaultIdleTrim, DefaultGCPercent, DefaultMaxProcs)
	}
}

// TestMaxProcs: the node runs Go code on one thread unless the config
// sets more, or -1 for the runtime's choice (7 here); GOMAXPROCS in the
// environment wins.
func TestMaxProcs(t *testing.T) {
	testSetting(t, setting{
		key:   "maxProcs",
		cfg:   func(v int) RuntimeConfig { return RuntimeConfig{MaxProcs: v} },
		apply: applyMaxProcs,
		set:   runtime.GOMAXPROCS,
		bad:   -2,
		cases: []settingCase{
			{"default", 0, "", DefaultMaxProcs, "1"},
			{"the runtime's", -1, "", 7, "7 (the runtime's)"},
			{"configured", 3, "", 3, "3"},
			{"env wins", 3, "2", 7, "GOMAXPROCS=2"},
		},
	}, 7)
}

// TestTrimmerQuiet: a trim runs once the node has been quiet for the
// period after a collection, only when enough was allocated, and a quiet
// node without collections never trims.
func TestTrimmerQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTrimmer(30 * time.Second)
		var nfree atomic.Int32
		tr.free = func() { nfree.Add(1) }
		frees := func() int32 { return nfree.Load() }
		var allocs atomic.Uint64 // the heap's count, which other tests move
		tr.alloc = allocs.Load
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { tr.loop(ctx); close(done) }()

		// Start-up: allocation, then quiet. The timer started at Run.
		allocs.Add(2 * trimMinAlloc)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if frees() != 0 {
			t.Fatalf("frees after 29 s = %d, want 0", frees())
		}
		// A collection restarts the quiet period.
		tr.gc <- struct{}{}
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if frees() != 0 {
			t.Fatalf("frees 29 s after a collection = %d, want 0", frees())
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if frees() != 1 {
			t.Fatalf("frees 31 s after a collection = %d, want 1", frees())
		}
		// Still allocating: another trim a period later.
		allocs.Add(2 * trimMinAlloc)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if frees() != 2 {
			t.Fatalf("frees a period after the first trim, still allocating = %d, want 2", frees())
		}
		// The trim's own collection: nothing allocated since, no trim,
		// and no more looking.
		tr.gc <- struct{}{}
		time.Sleep(time.Hour)
		synctest.Wait()
		if frees() != 2 {
			t.Fatalf("frees after an idle hour = %d, want 2", frees())
		}
		if n := tr.trims.Load(); n != 2 {
			t.Errorf("trims = %d, want 2", n)
		}
		cancel()
		<-done
	})
}

// TestTrimmerAfterBurst: a trim that follows a burst (burstAlloc
// allocated since the last trim) collects burstPasses times; the next,
// after only the idle trickle, once.
func TestTrimmerAfterBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTrimmer(30 * time.Second)
		var nfree atomic.Int32
		tr.free = func() { nfree.Add(1) }
		var allocs atomic.Uint64
		tr.alloc = allocs.Load
		// The release (bus.Bus.Trim) comes once per trim, before its
		// collections, so that they collect what it let go.
		var released []int32
		tr.release = func() { released = append(released, nfree.Load()) }
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { tr.loop(ctx); close(done) }()

		allocs.Add(burstAlloc)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if n := nfree.Load(); n != burstPasses {
			t.Fatalf("collections of the trim after a burst = %d, want %d", n, burstPasses)
		}
		allocs.Add(2 * trimMinAlloc)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if n := nfree.Load(); n != burstPasses+1 {
			t.Fatalf("collections after the next trim = %d, want %d (one more)", n, burstPasses+1)
		}
		if n := tr.trims.Load(); n != 2 {
			t.Errorf("trims = %d, want 2", n)
		}
		cancel()
		<-done
		if want := []int32{0, burstPasses}; !slices.Equal(released, want) {
			t.Errorf("collections done at each release = %v, want %v", released, want)
		}
	})
}

// TestTrimmerSeesCollections: the sentinel's cleanup reports each
// collection and re-arms itself.
func TestTrimmerSeesCollections(t *testing.T) {
	tr := newTrimmer(time.Hour)
	tr.arm()
	t.Cleanup(func() { tr.stopped.Store(true) })
	for i := range 3 {
		deadline := time.After(time.Minute)
		for seen := false; !seen; {
			runtime.GC()
			select {
			case <-tr.gc:
				seen = true
			case <-time.After(10 * time.Millisecond):
			case <-deadline:
				t.Fatalf("collection %d not reported within a minute", i)
			}
		}
	}
}
