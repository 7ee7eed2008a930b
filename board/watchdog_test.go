package board

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

func TestWatchdogKeepAliveAndMagicClose(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry()
		reg.Set("metamanager", StateRunning, "")
		var buf bytes.Buffer
		w := NewWatchdog(WatchdogConfig{Device: dev}, reg, logTo(&buf), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(12 * time.Second) // pings at 0, 5, 10
		synctest.Wait()
		if !w.Armed() || w.Pings() != 3 {
			t.Errorf("after 12 s: armed %v pings %d, want armed, 3", w.Armed(), w.Pings())
		}
		reg.Set("metamanager", StateFailed, "stuck")
		time.Sleep(10 * time.Second) // 15, 20 withheld
		synctest.Wait()
		if w.Pings() != 3 {
			t.Errorf("pings while unhealthy = %d, want still 3", w.Pings())
		}
		reg.Set("metamanager", StateRunning, "")
		time.Sleep(5 * time.Second) // 25
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		if w.Armed() {
			t.Error("Armed() after Run = true")
		}
		if n := strings.Count(buf.String(), "keep-alive withheld"); n != 1 {
			t.Errorf("log has %d 'withheld' lines, want 1:\n%s", n, buf.String())
		}
	})
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x00\x00\x00\x00V"; string(got) != want {
		t.Errorf("device got %q, want %q (4 keep-alives, then the magic close)", got, want)
	}
}

func TestWatchdogNoMagicCloseAfterFailure(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		reg := NewRegistry()
		reg.Set("edged", StateRunning, "")
		w := NewWatchdog(WatchdogConfig{Device: dev, Interval: time.Second}, reg, nil, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(1500 * time.Millisecond)
		reg.Set("edged", StateFailed, "runc: exit 1")
		cancel()
		<-done
	})
	got, _ := os.ReadFile(dev)
	if string(got) != "\x00\x00" {
		t.Errorf("device got %q, want two keep-alives and no magic close", got)
	}
}

func TestWatchdogNoDevice(t *testing.T) {
	for _, tt := range []struct {
		name, device, log string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope"), "no device"},
		{"off", WatchdogOff, "watchdog: off"},
		{"not a device dir", t.TempDir(), "cannot open device"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWatchdog(WatchdogConfig{Device: tt.device}, NewRegistry(), logTo(&buf), nil)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := w.Run(ctx); err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
			if lines := strings.Count(buf.String(), "\n"); lines != 1 || !strings.Contains(buf.String(), tt.log) {
				t.Errorf("log = %q, want one line with %q", buf.String(), tt.log)
			}
			if w.Armed() || w.Pings() != 0 {
				t.Errorf("armed %v pings %d, want neither", w.Armed(), w.Pings())
			}
		})
	}
}

func TestWatchdogTimeoutOnAFile(t *testing.T) {
	// A regular file refuses WDIOC_SETTIMEOUT: one warning, and the
	// keep-alives go on.
	dev := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWatchdog(WatchdogConfig{Device: dev, Timeout: 15 * time.Second}, NewRegistry(), logTo(&buf), nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "cannot set the timeout") {
		t.Errorf("log = %q, want the timeout warning", buf.String())
	}
	if got, _ := os.ReadFile(dev); string(got) != "V" {
		t.Errorf("device got %q, want the magic close", got)
	}
}

func TestWatchdogValidate(t *testing.T) {
	for _, tt := range []struct {
		c  WatchdogConfig
		ok bool
	}{
		{WatchdogConfig{}.Defaults(), true},
		{WatchdogConfig{Timeout: 15 * time.Second}.Defaults(), true},
		{WatchdogConfig{Timeout: 8 * time.Second}.Defaults(), false},
		{WatchdogConfig{Interval: time.Millisecond}.Defaults(), false},
	} {
		if errs := tt.c.Validate(); (len(errs) == 0) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tt.c, errs, tt.ok)
		}
	}
}
