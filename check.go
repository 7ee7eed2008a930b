package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"edgenode/board"
)

// checkOptions are the flags of `edgenode check`.
type checkOptions struct {
	runc   string
	broker string
}

// DefaultBrokerAddr is the internal MQTT broker's address (spec 4.1
// internal-server tcp://127.0.0.1:1884), checked to be free.
const DefaultBrokerAddr = "127.0.0.1:1884"

func addCheckFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.check.runc, "runc", "runc", "runc binary (path or name on PATH)")
	fs.StringVar(&o.check.broker, "broker", DefaultBrokerAddr, "address the internal MQTT broker listens on; empty skips the check")
}

// cmdCheck prints one PASS/WARN/FAIL line per preflight check and exits 1
// if any failed.
func cmdCheck(ctx context.Context, o *options, _ []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	rs := board.Preflight(ctx, board.PreflightConfig{DataDir: cfg.DataDir, Runc: o.check.runc, BrokerAddr: o.check.broker})
	for _, r := range rs {
		fmt.Fprintln(stdout, r)
	}
	if board.Failed(rs) {
		return 1
	}
	return 0
}
