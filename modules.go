package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"edgenode/board"
	"edgenode/bus"
	"edgenode/db"
	"edgenode/dmi"
	"edgenode/hub"
	"edgenode/meta"
	"edgenode/mqtt"
	"edgenode/nodestatus"
	"edgenode/pod"
	"edgenode/stream"
	"edgenode/twin"
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
	if cmd == "check" {
		addCheckFlags(fs, o)
	}
	if cmd == "logs" {
		fs.BoolVar(&o.logs.follow, "f", false, "follow: keep printing what the container writes (until interrupted)")
		fs.BoolVar(&o.logs.timestamps, "timestamps", false, "prefix each line with the time it was written (RFC 3339)")
	}
	if cmd == "run" || cmd == "config" {
		addHubFlags(fs, o)
	}
}

// EnvToken is the environment variable that may hold the join token.
const EnvToken = "EDGENODE_TOKEN"

// addHubFlags adds the flags that join a cloud; each overrides its key in
// the hub section of the config file.
func addHubFlags(fs *flag.FlagSet, o *options) {
	set := func(name, usage string, apply func(*Config, string)) {
		fs.Func(name, usage, func(v string) error {
			o.extra = append(o.extra, func(c *Config) { apply(c, v) })
			return nil
		})
	}
	set("cloud", "CloudHub websocket address HOST:PORT to join (hub.server); without it the node runs on its own",
		func(c *Config, v string) { c.Hub.Server = v })
	// The join token also comes from a file or the environment: a flag's
	// value is visible to every local user in /proc/<pid>/cmdline. Later
	// sources win: hub.token in the file, then EnvToken, then the flags.
	if v := os.Getenv(EnvToken); v != "" {
		o.extra = append(o.extra, func(c *Config) { c.Hub.Token = strings.TrimSpace(v) })
	}
	set("token", "KubeEdge join token <CA hash>.<JWT> (hub.token), used when there is no node certificate; "+
		"local users can read it in /proc: prefer --token-file or $"+EnvToken,
		func(c *Config, v string) { c.Hub.Token = v })
	fs.Func("token-file", "`FILE` holding the join token (instead of --token)", func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return fmt.Errorf("token file %s is empty", path)
		}
		o.extra = append(o.extra, func(c *Config) { c.Hub.Token = tok })
		return nil
	})
	set("cert-server", "certificate server URL (hub.certServer; default https://HOST:10002 of --cloud)",
		func(c *Config, v string) { c.Hub.CertServer = v })
	set("project-id", "project id in the link's path and headers (hub.projectID; default "+hub.DefaultProjectID+")",
		func(c *Config, v string) { c.Hub.ProjectID = v })
}

// validateModules checks each module's section of the config.
func (c *Config) validateModules() []error {
	var errs []error
	errs = append(errs, c.MQTT.Validate()...)
	errs = append(errs, c.Twin.Validate()...)
	if c.DMI.Socket != DMIOff {
		errs = append(errs, c.DMI.Validate()...)
	}
	if c.Twin.MaxPayload > c.MQTT.MaxPayload {
		// EventBus cuts longer payloads to mqtt.maxPayload+1 bytes, so
		// twin could not serve them anyway.
		errs = append(errs, fmt.Errorf("twin.maxPayload: %d is larger than mqtt.maxPayload (%d), whose larger payloads never reach twin",
			c.Twin.MaxPayload, c.MQTT.MaxPayload))
	}
	errs = append(errs, c.Hub.Validate()...)
	errs = append(errs, c.Stream.Validate()...)
	errs = append(errs, c.NodeStatus.Validate()...)
	errs = append(errs, c.Watchdog.Validate()...)
	errs = append(errs, c.DB.Validate()...)
	errs = append(errs, c.Meta.Validate()...)
	errs = append(errs, c.Pod.Validate()...)
	if err := c.Health.validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// boardDefaults fills the node status, watchdog and health sections; node
// status takes node name, era and data dir from the top level.
func (c *Config) boardDefaults() {
	c.NodeStatus.NodeName, c.NodeStatus.DataDir, c.NodeStatus.Era = c.NodeName, c.DataDir, c.EraValue()
	c.NodeStatus = c.NodeStatus.Defaults()
	c.Watchdog = c.Watchdog.Defaults()
	c.Health.defaults()
}

// restrictDataDir makes the data dir 0700 and the files in it that hold
// secrets 0600 (board.RestrictPerms), at every start: the database and its
// WAL (the cloud's secrets), the certificate dir (the node's key), the MQTT
// credentials and the pods dir (secret volumes). It runs after db.Open, so
// a database SQLite has just created (0644) is covered; SQLite gives the
// WAL the database's mode from then on.
func restrictDataDir(cfg *Config, log *slog.Logger) error {
	paths := []string{db.FileName, db.FileName + "-wal", db.FileName + "-shm", db.FileName + "-journal",
		hub.CertDir, filepath.Join(hub.CertDir, "edge.key"), mqtt.DefaultCredentials, "pods"}
	for _, p := range []string{cfg.hubConfig().KeyFile, cfg.MQTT.Internal.CredentialsFile} {
		if rel, err := filepath.Rel(cfg.DataDir, p); err == nil && filepath.IsLocal(rel) {
			paths = append(paths, rel)
		}
	}
	changed, err := board.RestrictPerms(cfg.DataDir, paths...)
	for _, p := range changed {
		log.Warn("took group and other access away from a data dir path", "path", p)
	}
	return err
}

// runner is what every module is to main: Run blocks until ctx ends and
// returns after all its goroutines have exited.
type runner interface {
	Run(ctx context.Context) error
}

// afterNode runs a module once the cloud has the node with this run's
// first status (nodestatus Node.Known). The stream tunnel waits so:
// cloudstream writes its port into the node object when the tunnel
// connects; a fresh node not yet inserted would keep the kubelet port,
// which kube-apiserver cannot reach through the tunnel, and a status
// patch that lands during that write makes it fail for 20 s.
type afterNode struct {
	known <-chan struct{}
	runner
}

func (a afterNode) Run(ctx context.Context) error {
	select {
	case <-a.known:
	case <-ctx.Done():
		return nil
	}
	return a.runner.Run(ctx)
}

// module is one module as main runs it.
type module struct {
	name  string     // its name in logs, /healthz and /metrics
	queue bus.Module // the bus queue it reads; "" for none
	r     runner
}

// run wires the modules and runs them under one errgroup until ctx ends.
func run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	// Everything edgenode writes lives under the data dir, so that the
	// root may be read-only; say clearly when it is not writable.
	if err := board.CheckDataDir(cfg.DataDir); err != nil {
		// A full disk still lets the node serve what it stored: it runs
		// read-only (db.ErrFull) and says so in /healthz.
		if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
			return err
		}
		log.Error("data dir full: running read-only until space returns", "err", err)
	}
	store, err := db.Open(ctx, filepath.Join(cfg.DataDir, db.FileName), cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := restrictDataDir(cfg, log); err != nil {
		return err
	}
	b := bus.New(cfg.Bus, log.With("module", "bus"))

	reg := NewRegistry()
	hs := newHealth(cfg.Health, cfg.NodeName, b, cfg.Bus.QueueLen, reg, log.With("module", "health"))
	hs.readOnly = store.ReadOnly

	var mods []module
	// Modules are wired here, one block each: each is added with its name,
	// its bus queue and its counters for /metrics.
	add := func(name string, queue bus.Module, r runner, stats func() any) {
		mods = append(mods, module{name: name, queue: queue, r: r})
		hs.stats(name, stats)
	}

	// nodestatus: the board's facts as node status and lease, through meta.
	runtime := cfg.Pod.Runtime // the OCI runtime the pod module drives
	// Its rounds run only while the hub, made below, has the cloud; with
	// no cloud configured, never after the first.
	var cloudUp func() bool
	node, err := nodestatus.New(cfg.NodeStatus, b, log.With("module", "nodestatus"), nodestatus.Host{Unhealthy: reg.Unhealthy,
		Runtime:   func(ctx context.Context) (string, error) { return board.RuncVersion(ctx, runtime) },
		Connected: func() bool { return cloudUp != nil && cloudUp() }})
	if err != nil {
		return err
	}
	add("nodestatus", bus.ModuleNodeStatus, node, func() any { return node.Stats() })

	// twin: DeviceTwin, the device API on the $hw/events topics. It asks
	// the eventbus, made below, whether anyone subscribes to a twin's
	// document and delta before it publishes them.
	var eb *mqtt.EventBus
	twinCfg := cfg.Twin
	twinCfg.Subscribed = func(topic string) bool { return eb.Subscribed(topic) }
	twinCfg.Publish = func(topic string, payload []byte) error { return eb.Publish(topic, payload) }
	// The fair share per MQTT client of the path to twin: the eventbus
	// takes it, twin releases it.
	twinCfg.Share = bus.NewShare(twinCfg.ClientShare)
	mqttCfg := cfg.MQTT
	mqttCfg.TwinShare = twinCfg.Share
	tw, err := twin.New(twinCfg, b, store, log.With("module", "twin"))
	if err != nil {
		return err
	}
	add("twin", bus.ModuleTwin, tw, func() any { return tw.Stats() })

	// dmi: KubeEdge's DMI for mapper-framework mappers, beside twin.
	if cfg.DMI.Socket != DMIOff {
		dm, err := dmi.New(cfg.DMI, b, store, log.With("module", "dmi"))
		if err != nil {
			return err
		}
		add("dmi", bus.ModuleDMI, dm, func() any { return dm.Stats() })
	}

	// meta: MetaManager, the store's keeper between edged, twin and hub.
	metaCfg := cfg.Meta
	metaCfg.Era = cfg.EraValue()
	metaCfg.NodeName = cfg.NodeName
	mm, err := meta.New(metaCfg, b, store, log.With("module", "meta"))
	if err != nil {
		return err
	}
	add("meta", bus.ModuleMeta, mm, func() any { return mm.Stats() })

	// hub: EdgeHub, the link to the cloud, when one is configured.
	if cfg.Hub.Enabled() {
		h, err := hub.New(cfg.hubConfig(), b, log.With("module", "hub"))
		if err != nil {
			return err
		}
		add("hub", bus.ModuleHub, h, func() any { return h.Stats() })
		hs.connected = h.Connected
		cloudUp = h.Connected
	} else {
		log.Info("no cloud configured (hub.server or --cloud): running on its own")
	}

	// mqtt: EventBus, the embedded and/or external MQTT broker.
	eb, err = mqtt.New(mqttCfg, b, store, log.With("module", "mqtt"))
	if err != nil {
		return err
	}
	add("mqtt", bus.ModuleMQTT, eb, func() any { return eb.Stats() })

	// pod: Edged, the pods on runc.
	pr, err := pod.New(cfg.podConfig(), b, log.With("module", "pod"))
	if err != nil {
		return err
	}
	add("pod", bus.ModulePod, pr, func() any { return pr.Stats() })
	hs.podPhases = func() map[string]int {
		n := map[string]int{}
		for _, p := range pr.Pods() {
			n[p.Status.Phase]++
		}
		return n
	}

	// stream: EdgeStream, kubectl logs and top through cloudstream's
	// tunnel, served by the pod module's kubelet paths.
	if sc := cfg.streamConfig(); sc.Enabled() {
		// The InternalIP of the node's last status, picked again each
		// round, as edgecore asks the board at every dial when
		// edged.nodeIP is empty; the board itself before the first.
		iface := cfg.NodeStatus.Interface
		sc.NodeIP = func() string {
			if ip := node.InternalIP(); ip != "" {
				return ip
			}
			return pickAddress(iface)
		}
		st, err := stream.New(sc, pr.Handler(), log.With("module", "stream"))
		if err != nil {
			return err
		}
		add("stream", "", afterNode{node.Known(), st}, func() any { return st.Stats() })
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, m := range mods {
		reg.Add(m.name)
		if m.queue != "" {
			hs.queues = append(hs.queues, m.queue)
			probeQueue(reg, b, m, cfg.Bus.QueueLen)
		}
		g.Go(func() error { return runTracked(gctx, reg, m.name, m.r) })
	}
	// The health server and the watchdog serve the modules; they are not
	// modules themselves.
	hs.wd = board.NewWatchdog(cfg.Watchdog, reg, log.With("module", "watchdog"), nil)
	g.Go(func() error { return hs.wd.Run(gctx) })
	if cfg.Runtime.IdleTrim > 0 {
		tr := newTrimmer(cfg.Runtime.IdleTrim)
		tr.release = b.Trim
		hs.trims = tr.trims.Load
		g.Go(func() error { tr.Run(gctx); return nil })
	}
	g.Go(func() error { return hs.Run(gctx) })
	// "ready" means every module that can say so is serving: a module
	// with a Ready channel (the MQTT broker binds its port) is waited for.
	waitReady(gctx, mods, log)
	if gctx.Err() == nil {
		log.Info("edgenode ready", "node", cfg.NodeName, "data_dir", cfg.DataDir, "db", store.Path(), "version", version)
	}
	<-gctx.Done()
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// waitReady blocks until every module with a Ready channel has closed it, or
// ctx ends. A module that is slow to become ready (a port still taken) is
// named in the log every 10 s; the others keep running meanwhile.
func waitReady(ctx context.Context, mods []module, log *slog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for _, m := range mods {
		r, ok := m.r.(interface{ Ready() <-chan struct{} })
		if !ok {
			continue
		}
		for waiting := true; waiting; {
			select {
			case <-r.Ready():
				waiting = false
			case <-ctx.Done():
				return
			case <-t.C:
				log.Warn("edgenode not ready yet: waiting for a module", "module", m.name)
			}
		}
	}
}

// hubConfig is the hub's Config: the file's hub section with node name,
// data dir and era from the top level, defaults filled.
func (c *Config) hubConfig() hub.Config {
	h := c.Hub
	h.NodeName, h.DataDir, h.Era = c.NodeName, c.DataDir, c.EraValue()
	return h.Defaults()
}

// streamDefaults turns the stream tunnel on with a cloud: its server
// defaults to the CloudHub host with cloudstream's tunnel port (KubeEdge
// v1.23.1 CloudStream.tunnelPort 10004); "off" keeps it off.
func (c *Config) streamDefaults() {
	if c.Stream.Server == "" && c.Hub.Server != "" {
		if h, _, err := net.SplitHostPort(c.Hub.Server); err == nil {
			c.Stream.Server = net.JoinHostPort(h, stream.DefaultPort)
		}
	}
	if c.Stream.Enabled() {
		c.Stream = c.Stream.Defaults()
	}
}

// pickAddress returns the address the board picks as the node's
// InternalIP on iface ("" for its own choice), or "" if none.
func pickAddress(iface string) string {
	ifs, err := board.Interfaces()
	if err != nil {
		return ""
	}
	ip, err := board.PickAddress(ifs, iface)
	if err != nil {
		return ""
	}
	return ip.String()
}

// streamConfig is the stream module's Config: the file's stream section
// with the node name and the hub's node certificate. run adds the node's
// InternalIP.
func (c *Config) streamConfig() stream.Config {
	s := c.Stream
	hc := c.hubConfig()
	s.NodeName, s.CertFile, s.KeyFile = c.NodeName, hc.CertFile, hc.KeyFile
	return s
}
