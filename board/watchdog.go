package board

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// WatchdogConfig configures the hardware watchdog. The zero value uses
// /dev/watchdog with a 5 s keep-alive.
type WatchdogConfig struct {
	// Device is the watchdog device. Default /dev/watchdog; "off" turns
	// the watchdog off.
	Device string `yaml:"device"`
	// Interval between keep-alives. It must be well below the device's
	// timeout (BCM2835: 15 s at most). Default 5 s.
	Interval time.Duration `yaml:"interval"`
	// Timeout, when set, is programmed into the device at open
	// (WDIOC_SETTIMEOUT); zero keeps the driver's default.
	Timeout time.Duration `yaml:"timeout"`
}

// WatchdogOff is the Device value that disables the watchdog.
const WatchdogOff = "off"

// Validate returns the problems of c (after Defaults).
func (c WatchdogConfig) Validate() []error {
	var errs []error
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("watchdog.interval: %v is shorter than 100ms", c.Interval))
	}
	if c.Timeout != 0 && (c.Timeout < time.Second || c.Timeout < 2*c.Interval) {
		errs = append(errs, fmt.Errorf("watchdog.timeout: %v must be at least 1s and twice the interval %v", c.Timeout, c.Interval))
	}
	return errs
}

// Defaults returns c with zero fields filled.
func (c WatchdogConfig) Defaults() WatchdogConfig {
	if c.Device == "" {
		c.Device = "/dev/watchdog"
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	return c
}

// OpenFunc opens a watchdog device; the Linux driver API needs only Write
// (any byte is a keep-alive; 'V' before Close is the magic close) and Close.
type OpenFunc func(path string) (io.WriteCloser, error)

// OpenDevice opens path write-only, as the watchdog driver API expects.
func OpenDevice(path string) (io.WriteCloser, error) {
	return os.OpenFile(path, os.O_WRONLY, 0)
}

// Health is what the watchdog reads of the node's module health (main's
// registry).
type Health interface {
	// Unhealthy names the modules that are not healthy now.
	Unhealthy() []string
	// Failed reports whether a module failed, as opposed to stopping.
	Failed() bool
}

// Watchdog keeps a hardware watchdog alive while every module is healthy. When a module turns unhealthy it stops the
// keep-alives, so the board resets if edgenode cannot recover in time.
type Watchdog struct {
	cfg   WatchdogConfig
	reg   Health
	log   *slog.Logger
	open  OpenFunc
	pings atomic.Uint64
	armed atomic.Bool
}

// NewWatchdog returns a watchdog; it opens nothing until Run. open may be
// nil (OpenDevice).
func NewWatchdog(cfg WatchdogConfig, reg Health, log *slog.Logger, open OpenFunc) *Watchdog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if open == nil {
		open = OpenDevice
	}
	return &Watchdog{cfg: cfg.Defaults(), reg: reg, log: log, open: open}
}

// Pings returns the number of keep-alives written.
func (w *Watchdog) Pings() uint64 { return w.pings.Load() }

// Armed reports whether the device is open.
func (w *Watchdog) Armed() bool { return w.armed.Load() }

// Run opens the device and writes a keep-alive every Interval while the
// registry reports no unhealthy module, until ctx ends. A missing or busy
// device is one log line, and Run then just waits for ctx: the watchdog is
// optional hardware. When ctx ends, Run stops the watchdog with the
// magic close if no module has failed; after a failure it closes without
// it, leaving the timer running so a hung restart still resets the board.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.cfg.Device == WatchdogOff {
		w.log.Info("no watchdog device is used (device: off)")
		<-ctx.Done()
		return nil
	}
	dev, err := w.open(w.cfg.Device)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.log.Info("no device, running without one", "device", w.cfg.Device)
		} else {
			w.log.Warn("cannot open device, running without one", "device", w.cfg.Device, "err", err)
		}
		<-ctx.Done()
		return nil
	}
	w.armed.Store(true)
	if w.cfg.Timeout > 0 {
		// Only a real device takes the ioctl; anything else keeps its
		// default and says so.
		if err := setTimeout(dev, w.cfg.Timeout); err != nil {
			w.log.Warn("cannot set the timeout, keeping the driver's", "timeout", w.cfg.Timeout, "err", err)
		}
	}
	w.log.Info("armed", "device", w.cfg.Device, "interval", w.cfg.Interval)
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	var withheld bool
	for {
		if ctx.Err() != nil {
			// Modules read as stopped while the node shuts down; that is
			// not a reason to withhold the keep-alive.
			return w.close(dev)
		}
		if bad := w.reg.Unhealthy(); len(bad) == 0 {
			if withheld {
				w.log.Info("modules healthy again, keep-alive resumed")
				withheld = false
			}
			if _, err := dev.Write(keepAlive); err != nil {
				w.log.Warn("keep-alive failed", "err", err)
			} else {
				w.pings.Add(1)
			}
		} else if !withheld {
			withheld = true
			w.log.Error("modules unhealthy, keep-alive withheld", "modules", bad)
		}
		select {
		case <-ctx.Done():
			return w.close(dev)
		case <-t.C:
		}
	}
}

// keepAlive is the byte a kick writes, shared: a slice made at each kick
// escapes to the device's Write and was the kick's one allocation.
var keepAlive = []byte{0}

func (w *Watchdog) close(dev io.WriteCloser) error {
	defer w.armed.Store(false)
	if w.reg.Failed() {
		w.log.Warn("closing without magic close after a module failure; the timer keeps running")
		return dev.Close()
	}
	if _, err := dev.Write([]byte{'V'}); err != nil {
		w.log.Warn("magic close failed", "err", err)
	}
	if err := dev.Close(); err != nil {
		w.log.Warn("closing the device", "err", err)
	}
	w.log.Info("stopped")
	return nil
}
