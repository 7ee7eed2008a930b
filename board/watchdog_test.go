package board

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeHealth is a module health that the test sets.
type fakeHealth struct {
	mu     sync.Mutex
	bad    []string
	failed bool
}

func (h *fakeHealth) set(bad []string, failed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bad, h.failed = bad, failed
}

func (h *fakeHealth) Unhealthy() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad
}

func (h *fakeHealth) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed
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
		reg := &fakeHealth{}
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
		reg.set([]string{"metamanager"}, true)
		time.Sleep(10 * time.Second) // 15, 20 withheld
		synctest.Wait()
		if w.Pings() != 3 {
			t.Errorf("pings while unhealthy = %d, want still 3", w.Pings())
		}
		reg.set(nil, false)
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
		reg := &fakeHealth{}
		w := NewWatchdog(WatchdogConfig{Device: dev, Interval: time.Second}, reg, nil, nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(1500 * time.Millisecond)
		reg.set([]string{"edged"}, true)
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
		{"off", WatchdogOff, "no watchdog device is used"},
		{"not a device dir", t.TempDir(), "cannot open device"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWatchdog(WatchdogConfig{Device: tt.device}, &fakeHealth{}, logTo(&buf), nil)
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
	w := NewWatchdog(WatchdogConfig{Device: dev, Timeout: 15 * time.Second}, &fakeHealth{}, logTo(&buf), nil)
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
