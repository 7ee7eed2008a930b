package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"edgenode/board"
	"edgenode/bus"
	"edgenode/db"
)

// errEOF is what the YAML decoder returns for an empty document.
var errEOF = io.EOF

// addFlags adds the flags of one subcommand beyond the shared ones. Each
// module's command-line settings are wired here.
func addFlags(cmd string, fs *flag.FlagSet, o *options) {
	if cmd == "check" {
		addCheckFlags(fs, o)
	}
}

// validateModules checks each module's section of the config.
func (c *Config) validateModules() []error {
	var errs []error
	errs = append(errs, c.Board.Validate()...)
	if err := c.Health.validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// boardDefaults fills the board, watchdog and health sections; the board
// takes node name, era and data dir from the top level.
func (c *Config) boardDefaults() {
	c.Board.NodeName, c.Board.DataDir, c.Board.Era = c.NodeName, c.DataDir, c.EraValue()
	c.Board = c.Board.Defaults()
	c.Watchdog = c.Watchdog.Defaults()
	c.Health.defaults()
}

// runner is what every module is to main: Run blocks until ctx ends and
// returns after all its goroutines have exited.
type runner interface {
	Run(ctx context.Context) error
}

// run wires the modules and runs them under one errgroup until ctx ends.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	// Everything edgenode writes lives under the data dir, so that the
	// root may be read-only; say clearly when it is not writable.
	if err := board.CheckDataDir(cfg.DataDir); err != nil {
		return err
	}
	store, err := db.Open(ctx, filepath.Join(cfg.DataDir, db.FileName), db.Config{})
	if err != nil {
		return err
	}
	defer store.Close()
	b := bus.New(cfg.Bus, log.With("module", "bus"))

	reg := board.NewRegistry()
	hs := newHealth(cfg.Health, cfg.NodeName, b, cfg.Bus.QueueLen, reg, log.With("module", "health"))

	var mods []runner
	// Modules are wired here, one block each. A module with counters adds
	// them to /metrics with hs.stats("<package>", func() any { return m.Stats() }).

	// board: node facts, node status and lease through meta.
	node, err := board.New(cfg.Board, b, log.With("module", "board"), board.Host{Unhealthy: reg.Unhealthy})
	if err != nil {
		return err
	}
	mods = append(mods, node)
	hs.stats("board", func() any { return node.Stats() })

	g, gctx := errgroup.WithContext(ctx)
	for _, m := range mods {
		name := moduleName(m)
		reg.Add(name)
		probeQueue(reg, b, name, cfg.Bus.QueueLen)
		g.Go(func() error { return runTracked(gctx, reg, name, m) })
	}
	// The health server and the watchdog serve the modules; they are not
	// modules themselves.
	hs.wd = board.NewWatchdog(cfg.Watchdog, reg, log.With("module", "watchdog"), nil)
	g.Go(func() error { return hs.wd.Run(gctx) })
	g.Go(func() error { return hs.Run(gctx) })
	log.Info("edgenode ready", "node", cfg.NodeName, "data_dir", cfg.DataDir, "db", store.Path(), "version", version)
	<-gctx.Done()
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	_ = b
	return err
}
