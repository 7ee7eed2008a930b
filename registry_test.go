package main

import (
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	r.Add("metamanager")
	r.Add("eventbus")
	r.Add("metamanager")
	if got := r.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy() while starting = %v, want none", got)
	}
	r.Set("metamanager", StateRunning, "")
	r.Set("eventbus", StateRunning, "")
	var probeErr error
	var mu sync.Mutex
	r.Probe("eventbus", func() error { mu.Lock(); defer mu.Unlock(); return probeErr })
	if got := r.Unhealthy(); len(got) != 0 {
		t.Errorf("Unhealthy() all running = %v, want none", got)
	}
	mu.Lock()
	probeErr = errors.New("queue full")
	mu.Unlock()
	if diff := cmp.Diff([]string{"eventbus"}, r.Unhealthy()); diff != "" {
		t.Errorf("Unhealthy() with failing probe (-want +got):\n%s", diff)
	}
	mods := r.Modules()
	if mods[1].State != StateFailed || mods[1].Detail != "queue full" {
		t.Errorf("Modules()[1] = %+v, want failed: queue full", mods[1])
	}
	r.Set("metamanager", StateFailed, "db: corrupt")
	if diff := cmp.Diff([]string{"eventbus", "metamanager"}, r.Unhealthy()); diff != "" {
		t.Errorf("Unhealthy() (-want +got):\n%s", diff)
	}
	r.Set("twin", StateStopped, "")
	if got := r.Modules(); len(got) != 3 || got[2].Name != "twin" {
		t.Errorf("Set of an unknown name did not add it: %+v", got)
	}
}

func TestRegistryStartTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRegistry()
		r.Add("eventbus")
		time.Sleep(StartTimeout - time.Second)
		if got := r.Unhealthy(); len(got) != 0 {
			t.Errorf("Unhealthy() while starting = %v, want none", got)
		}
		time.Sleep(time.Second)
		if diff := cmp.Diff([]string{"eventbus"}, r.Unhealthy()); diff != "" {
			t.Errorf("Unhealthy() after StartTimeout (-want +got):\n%s", diff)
		}
		r.Set("eventbus", StateRunning, "")
		if got := r.Unhealthy(); len(got) != 0 {
			t.Errorf("Unhealthy() once running = %v, want none", got)
		}
	})
}

// TestRegistryHealthyAllocatesNothing: the watchdog asks Failed and
// Unhealthy at every kick and the node status asks Unhealthy every round;
// with every module running and its probe passing, neither allocates.
func TestRegistryHealthyAllocatesNothing(t *testing.T) {
	r := NewRegistry()
	for _, m := range []string{"eventbus", "metamanager", "edgehub", "devicetwin", "edged", "nodestatus",
		"mqtt", "stream", "dmi", "servicebus", "health", "watchdog"} {
		r.Set(m, StateRunning, "")
		r.Probe(m, func() error { return nil })
	}
	if n := testing.AllocsPerRun(100, func() {
		if r.Failed() || len(r.Unhealthy()) > 0 {
			t.Fatal("a healthy registry reads as unhealthy")
		}
	}); n != 0 {
		t.Errorf("Failed and Unhealthy allocated %v times a call, want 0", n)
	}
	r.Set("mqtt", StateFailed, "listener closed")
	if !r.Failed() || !cmp.Equal(r.Unhealthy(), []string{"mqtt"}) {
		t.Errorf("Failed() = %v, Unhealthy() = %v after mqtt failed, want true, [mqtt]", r.Failed(), r.Unhealthy())
	}
}
