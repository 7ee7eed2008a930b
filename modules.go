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
	"edgenode/meta"
)

// errEOF is what the YAML decoder returns for an empty document.
var errEOF = io.EOF

// addFlags adds the flags of one subcommand beyond the shared ones. Each
// module's command-line settings are wired here.
func addFlags(cmd string, fs *flag.FlagSet, o *options) {
	_ = cmd
	_ = fs
	_ = o
}

// validateModules checks each module's section of the config.
func (c *Config) validateModules() []error {
	var errs []error
	errs = append(errs, c.Meta.Validate()...)
	return errs
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

	// meta: MetaManager, the store's keeper between edged, twin and hub.
	metaCfg := cfg.Meta
	metaCfg.Era = cfg.EraValue()
	metaCfg.NodeName = cfg.NodeName
	mm, err := meta.New(metaCfg, b, store, log.With("module", "meta"))
	if err != nil {
		return err
	}
	mods = append(mods, mm)

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
