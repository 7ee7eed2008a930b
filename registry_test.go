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
