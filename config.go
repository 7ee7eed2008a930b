package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

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

// Defaults for the files on the board (design "Files on the board").
const (
	DefaultConfigPath = "/etc/edgenode/config.yaml"
	DefaultDataDir    = "/var/lib/edgenode"
	ConfigVersion     = 1
)

// Config is the whole configuration: the file's shape, compiled-in defaults
// for every zero field. Each module's section is that module's own Config.
type Config struct {
	Version  int        `yaml:"version"`
	NodeName string     `yaml:"nodeName"`
	DataDir  string     `yaml:"dataDir"`
	Era      string     `yaml:"era"` // KubeEdge era of wire and payload shapes: v1.23 (default) or v0.3
	Log      LogConfig  `yaml:"log"`
	Bus      bus.Config `yaml:"bus"`
	DB       db.Config  `yaml:"db"`
	// NodeStatus was called board before; that key is still read.
	NodeStatus nodestatus.Config    `yaml:"nodeStatus"`
	OldBoard   nodestatus.Config    `yaml:"board,omitempty"`
	Watchdog   board.WatchdogConfig `yaml:"watchdog"`
	Health     HealthConfig         `yaml:"health"`
	Twin       twin.Config          `yaml:"twin"`
	DMI        dmi.Config           `yaml:"dmi"`
	Meta       meta.Config          `yaml:"meta"`
	Hub        hub.Config           `yaml:"hub"`
	MQTT       mqtt.Config          `yaml:"mqtt"`
	Pod        pod.Config           `yaml:"pod"`
	Stream     stream.Config        `yaml:"stream"`
	Runtime    RuntimeConfig        `yaml:"runtime"`
}

// LogConfig configures the logger.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// defaults fills zero fields.
func (c *Config) defaults() {
	if c.Version == 0 {
		c.Version = ConfigVersion
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.NodeName == "" {
		if h, err := os.Hostname(); err == nil {
			c.NodeName = h
		}
	}
	if c.Era == "" {
		c.Era = bus.EraV123.String()
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Bus.QueueLen == 0 {
		c.Bus.QueueLen = bus.DefaultQueueLen
	}
	c.DB = c.DB.Defaults()
	c.Meta = c.Meta.Defaults()
	c.MQTT.NodeName, c.MQTT.Era, c.MQTT.DataDir = c.NodeName, c.EraValue(), c.DataDir
	c.MQTT = c.MQTT.Defaults()
	c.boardDefaults()
	c.Pod = c.Pod.Defaults()
	if c.Hub.Enabled() {
		c.Hub = c.hubConfig()
	}
	c.streamDefaults()
	// twin's payload limit follows mqtt.maxPayload, so the two agree on
	// what is too large.
	c.Twin.NodeName, c.Twin.Era, c.Twin.DataDir = c.NodeName, c.EraValue(), c.DataDir
	if c.Twin.MaxPayload == 0 {
		c.Twin.MaxPayload = c.MQTT.MaxPayload
	}
	c.Twin = c.Twin.Defaults()
	c.Runtime.defaults()
	if c.DMI.Socket != DMIOff {
		c.DMI = c.DMI.Defaults()
	}
}

// DMIOff as dmi.socket turns the DMI server and client off.
const DMIOff = "none"

// redacted is printed in place of a secret.
const redacted = "(redacted)"

// validate returns every problem at once.
func (c *Config) validate() error {
	var errs []error
	if c.Version != ConfigVersion {
		errs = append(errs, fmt.Errorf("version: %d is not supported (want %d)", c.Version, ConfigVersion))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("nodeName: empty and the hostname is unknown"))
	} else if strings.ContainsAny(c.NodeName, "/ \t\n") {
		errs = append(errs, fmt.Errorf("nodeName: %q must not contain '/' or spaces", c.NodeName))
	}
	if !strings.HasPrefix(c.DataDir, "/") {
		errs = append(errs, fmt.Errorf("dataDir: %q must be an absolute path", c.DataDir))
	}
	if _, err := bus.ParseEra(c.Era); err != nil {
		errs = append(errs, fmt.Errorf("era: %w", err))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	if c.Bus.QueueLen < 1 {
		errs = append(errs, fmt.Errorf("bus.queueLen: %d must be at least 1", c.Bus.QueueLen))
	}
	errs = append(errs, c.Runtime.validate()...)
	errs = append(errs, c.validateModules()...)
	return errors.Join(errs...)
}

// EraValue returns the configured era; validate has checked it.
func (c *Config) EraValue() bus.Era {
	e, _ := bus.ParseEra(c.Era)
	return e
}

// loadConfig reads the file (absent is fine unless --config named it
// explicitly), applies flags, fills defaults and validates.
func loadConfig(o *options) (*Config, error) {
	var cfg Config
	// Problems of the file's keys and value types are reported together
	// with the problems of its values: a user fixes them all in one go.
	var problems []error
	source := "config " + o.configPath // what the problems are in
	b, err := os.ReadFile(o.configPath)
	switch {
	case err == nil:
		if err := decodeConfig(b, &cfg); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, fmt.Errorf("config %s: %w", o.configPath, err)
			}
			for _, e := range te.Errors {
				problems = append(problems, errors.New(e))
			}
		}
	case errors.Is(err, fs.ErrNotExist) && !o.set["config"]:
		// No file: compiled-in defaults, so a problem is in a flag.
		source = "config (no file " + o.configPath + "; defaults and flags)"
	default:
		return nil, fmt.Errorf("config: %w", err)
	}
	if o.dataDir != "" {
		cfg.DataDir = o.dataDir
	}
	if o.nodeName != "" {
		cfg.NodeName = o.nodeName
	}
	for _, f := range o.extra {
		f(&cfg)
	}
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: invalid:\n%w", source, indent(errors.Join(problems...)))
	}
	return &cfg, nil
}

// decodeConfig decodes strictly: unknown keys and type mismatches are
// errors, and yaml reports all of them together.
func decodeConfig(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, errEOF) {
			return nil // an empty file is all defaults
		}
		return err
	}
	return cfg.renamedKeys()
}

// renamedKeys moves sections read under an earlier name to their current
// key, so that a config file written for an older edgenode still starts
// the node.
func (c *Config) renamedKeys() error {
	if !reflect.ValueOf(c.OldBoard).IsZero() {
		if !reflect.ValueOf(c.NodeStatus).IsZero() {
			return errors.New("board and nodeStatus are both set: board is the old name of nodeStatus, keep one")
		}
		c.NodeStatus, c.OldBoard = c.OldBoard, nodestatus.Config{}
	}
	return nil
}

// YAML returns the config as YAML.
func (c *Config) YAML() ([]byte, error) {
	p := *c
	if p.Hub.Token != "" {
		p.Hub.Token = redacted // a join token is a credential, like mqtt's passwords
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&p); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), enc.Close()
}

func indent(err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "  - " + l
	}
	return errors.New(strings.Join(lines, "\n"))
}
