// Command edgenode is a KubeEdge-compatible edge node in one static binary.
//
// Subcommands: run (the default) starts the node; version prints the build;
// config prints the effective configuration as YAML; check runs the
// preflight checks of the host; image imports and lists pod images; logs
// prints a container's log. main is the only place
// that reads files, flags and the environment, knows every module, and
// exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is stamped by the Makefile (-X main.version=...).
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: its flags are parsed into opts, then run.
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) int
}

var commands = []command{
	{"run", "start the node (default)", cmdRun},
	{"version", "print the version", cmdVersion},
	{"config", "print the effective config as YAML", cmdConfig},
	{"check", "preflight checks of this host (PASS/WARN/FAIL lines, exit 1 on a FAIL)", cmdCheck},
	{"image", "image import FILE... | image list: the pod image store", cmdImage},
	{"logs", "logs POD [CONTAINER]: print a container's log", cmdLogs},
}

// options are the flags every subcommand shares.
type options struct {
	configPath string
	dataDir    string
	nodeName   string
	set        map[string]bool // which flags were given
	extra      []func(*Config) // overrides from subcommand flags
	check      checkOptions    // flags of the check command
	logs       logsOptions     // flags of the logs command
}

func realMain(args []string, stdout, stderr io.Writer) int {
	name, implicit := "run", true
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args, implicit = args[0], args[1:], false
	}
	if name == "help" {
		usage(stdout)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "edgenode: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("edgenode "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", DefaultConfigPath, "config file (absent is fine)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data dir (default "+DefaultDataDir+")")
	fs.StringVar(&o.nodeName, "node-name", "", "node name (default: the hostname)")
	addFlags(name, fs, o)
	if implicit {
		// "edgenode -h" asks about edgenode, not only about run.
		fs.Usage = func() {
			usage(stderr)
			fmt.Fprintf(stderr, "\nflags of run (the default command):\n")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	ctx := context.Background()
	return cmd.run(ctx, o, fs.Args(), stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: edgenode [command] [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nrun 'edgenode COMMAND -h' for the flags of a command")
}

func cmdVersion(_ context.Context, _ *options, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "edgenode %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return 0
}

func cmdConfig(_ context.Context, o *options, _ []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	b, err := cfg.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	stdout.Write(b)
	return 0
}

func cmdRun(ctx context.Context, o *options, _ []string, _, stderr io.Writer) int {
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	log.Debug("go runtime", "memoryLimit", applyRuntime(cfg.Runtime, os.Getenv("GOMEMLIMIT")),
		"gcPercent", applyGCPercent(cfg.Runtime, os.Getenv("GOGC")),
		"maxProcs", applyMaxProcs(cfg.Runtime, os.Getenv("GOMAXPROCS")))
	ctx, stop := signalContext(ctx, log)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("edgenode stopped", "err", err)
		return 1
	}
	log.Info("edgenode stopped")
	return 0
}

// signalContext returns a context cancelled by the first SIGTERM or SIGINT;
// a second signal exits at once.
func signalContext(parent context.Context, log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			log.Info("stopping", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			log.Warn("second signal, exiting now", "signal", s.String())
			os.Exit(1)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated in Config.validate
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
