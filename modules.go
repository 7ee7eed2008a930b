package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/mqtt"
)

// errEOF is what the YAML decoder returns for an empty document.
var errEOF = io.EOF

// addFlags adds the flags of one subcommand beyond the shared ones. Each
// module's command-line settings are wired here.
func addFlags(cmd string, fs *flag.FlagSet, o *options) {
	if cmd == "run" || cmd == "config" {
		fs.Func("mqtt-mode", "MQTT mode: internal, external or both (default internal)", func(s string) error {
			o.extra = append(o.extra, func(c *Config) { c.MQTT.Mode = mqtt.Mode(s) })
			return nil
		})
		fs.Func("mqtt-listen", "`ADDR` of the embedded MQTT broker (default "+mqtt.DefaultListen+", "+mqtt.DefaultListenBoth+" in both mode)", func(s string) error {
			o.extra = append(o.extra, func(c *Config) { c.MQTT.Internal.Listen = s })
			return nil
		})
	}
}

// validateModules checks each module's section of the config.
func (c *Config) validateModules() []error {
	var errs []error
	if err := c.MQTT.Validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("mqtt.%w", e))
		}
	}
	return errs
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// runner is what every module is to main: Run blocks until ctx ends and
// returns after all its goroutines have exited.
type runner interface {
	Run(ctx context.Context) error
}

// run wires the modules and runs them under one errgroup until ctx ends.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	store, err := db.Open(ctx, filepath.Join(cfg.DataDir, db.FileName), db.Config{})
	if err != nil {
		return err
	}
	defer store.Close()
	b := bus.New(cfg.Bus, log.With("module", "bus"))

	var mods []runner
	// Modules are wired here, one block each.

	// mqtt: EventBus, the embedded and/or external MQTT broker.
	eb, err := mqtt.New(cfg.MQTT, b, store, log.With("module", "mqtt"))
	if err != nil {
		return err
	}
	mods = append(mods, eb)

	g, gctx := errgroup.WithContext(ctx)
	for _, m := range mods {
		g.Go(func() error { return m.Run(gctx) })
	}
	log.Info("edgenode ready", "node", cfg.NodeName, "data_dir", cfg.DataDir, "db", store.Path(), "version", version)
	<-gctx.Done()
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	_ = b
	return err
}
