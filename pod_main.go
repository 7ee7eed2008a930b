package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"edgenode/pod"
	"edgenode/pod/image"
)

// podConfig is the pod section with the top-level facts it needs.
func (c *Config) podConfig() pod.Config {
	pc := c.Pod
	pc.DataDir, pc.NodeName, pc.Era = c.DataDir, c.NodeName, c.EraValue()
	return pc
}

// cmdImage: "image import FILE..." adds docker-save or OCI archives to the
// store (safe beside a running node); "image list" prints the store.
func cmdImage(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "import" && args[0] != "list") || (args[0] == "import" && len(args) < 2) {
		fmt.Fprintln(stderr, "usage: edgenode image import FILE... | edgenode image list")
		return 2
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := image.Open(image.Config{Dir: pod.ImagesStoreDir(cfg.DataDir), Platform: cfg.Pod.Platform}, log)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	if args[0] == "list" {
		for _, img := range store.List() {
			fmt.Fprintf(stdout, "%s\t%s\t%d\t%s\n", img.ID, img.Platform, img.Size, strings.Join(img.Refs, ","))
		}
		return 0
	}
	rc := 0
	for _, f := range args[1:] {
		imgs, err := store.Import(ctx, f, false)
		if err != nil {
			fmt.Fprintf(stderr, "edgenode: %v\n", err)
			rc = 1
			continue
		}
		for _, img := range imgs {
			fmt.Fprintf(stdout, "imported %s %s\n", strings.Join(img.Refs, ","), img.ID)
		}
	}
	return rc
}

// logsOptions are the flags of the logs command.
type logsOptions struct {
	follow     bool
	timestamps bool
}

// cmdLogs prints the log of one container of a pod, rotated files first;
// with -f it then follows the log until interrupted.
func cmdLogs(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || len(args) > 2 {
		fmt.Fprintln(stderr, "usage: edgenode logs POD [CONTAINER]   (POD is name or namespace/name)")
		return 2
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	container := ""
	if len(args) == 2 {
		container = args[1]
	}
	if o.logs.follow {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := pod.FollowLogs(ctx, stdout, cfg.DataDir, args[0], container, o.logs.timestamps); err != nil {
			fmt.Fprintf(stderr, "edgenode: %v\n", err)
			return 1
		}
		return 0
	}
	if err := pod.WriteLogs(stdout, cfg.DataDir, args[0], container, o.logs.timestamps); err != nil {
		fmt.Fprintf(stderr, "edgenode: %v\n", err)
		return 1
	}
	return 0
}
