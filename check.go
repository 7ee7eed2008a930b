package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"edgenode/board"
	"edgenode/dmi"
	"edgenode/mqtt"
)

// checkOptions are the flags of `edgenode check`.
type checkOptions struct {
	runc   string
	broker string
}

func addCheckFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.check.runc, "runc", "", "runc binary, a path or a name on PATH (default: pod.runtime of the config)")
	fs.StringVar(&o.check.broker, "broker", "", "`ADDR` the embedded MQTT broker will listen on (default: mqtt.internal.listen of the config; \"off\" skips the check)")
}

// cmdCheck prints one PASS/WARN/FAIL line per preflight check and exits 1
// if any failed.
func cmdCheck(ctx context.Context, o *options, _ []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	broker := o.check.broker
	switch {
	case broker == "off":
		broker = ""
	case broker == "" && cfg.MQTT.Mode != mqtt.ModeExternal:
		broker = cfg.MQTT.Internal.Listen
	}
	runc := o.check.runc
	if runc == "" {
		runc = cfg.Pod.Runtime
	}
	rs := board.Preflight(ctx, board.PreflightConfig{DataDir: cfg.DataDir, Runc: runc, BrokerAddr: broker})
	rs = append(rs, checkDMI(cfg.DMI.Socket))
	for _, r := range rs {
		fmt.Fprintln(stdout, r)
	}
	if board.Failed(rs) {
		return 1
	}
	return 0
}

// checkDMI says whether the DMI socket can be created where mappers will
// look. A WARN, not a FAIL: the node runs without DMI, only mappers
// cannot register. On a read-only root /etc cannot hold a socket; the
// README shows the path to give both sides.
func checkDMI(socket string) board.CheckResult {
	if socket == DMIOff {
		return board.CheckResult{Status: board.Pass, Name: "dmi", Detail: "off (dmi.socket: none)"}
	}
	if err := dmi.Check(socket); err != nil {
		return board.CheckResult{Status: board.Warn, Name: "dmi",
			Detail: err.Error() + ": mappers cannot register; set dmi.socket to a writable path (e.g. /run/kubeedge/dmi.sock) and the same path as the mappers' common.edgecore_sock"}
	}
	return board.CheckResult{Status: board.Pass, Name: "dmi", Detail: socket + " can be created"}
}
