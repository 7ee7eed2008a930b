package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"edgenode/board"
)

// runInProcess runs the node as `edgenode run` does, in this process, on a
// fresh data dir, with health off, the broker on a free loopback port and
// neither the host's watchdog nor its /etc/kubeedge (DMI off); set adjusts
// the config further. The context ends when run ends before stop is
// called; stop ends run and returns what it returned.
func runInProcess(t *testing.T, node string, set func(*Config)) (context.Context, func() error) {
	t.Helper()
	dir := t.TempDir()
	o := &options{configPath: filepath.Join(dir, "absent.yaml"), dataDir: dir, nodeName: node, set: map[string]bool{}}
	o.extra = append(o.extra, func(c *Config) {
		c.Health.Listen = "off"
		c.MQTT.Internal.Listen = "127.0.0.1:0"
		c.Watchdog.Device = board.WatchdogOff
		c.DMI.Socket = DMIOff
		set(c)
	})
	cfg, err := loadConfig(o)
	if err != nil {
		t.Fatalf("loadConfig() = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	early, ended := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		err := run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		ended()
		done <- err
	}()
	stop := func() error {
		cancel()
		return <-done
	}
	return early, stop
}

// loadYAML loads yaml as the config file of node n1 with data dir /data.
func loadYAML(t *testing.T, yaml string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadConfig(&options{configPath: path, dataDir: "/data", nodeName: "n1", set: map[string]bool{"config": true}})
}
