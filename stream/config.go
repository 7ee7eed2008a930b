package stream

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Off as Config.Server turns the tunnel off.
const Off = "off"

// DefaultPort is cloudstream's tunnel port (KubeEdge v1.23.1
// CloudStream.tunnelPort, KubeEdge v1.23.1
// cloud/pkg/cloudstream/tunnelserver.go).
const DefaultPort = "10004"

// Defaults of the zero Config fields.
const (
	DefaultHandshakeTimeout = 30 * time.Second // edgecore edgeStream.handshakeTimeout
	DefaultPing             = 5 * time.Second  // edgecore tunnel.go startPing
	DefaultWriteDeadline    = 10 * time.Second
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = time.Minute
	DefaultMaxConns         = 16
)

// Config configures the tunnel; the zero value of each field means its
// default. main fills the fields the file does not hold.
type Config struct {
	// Server is the cloudstream tunnel address HOST:PORT, or Off. main
	// defaults it to the CloudHub host with port DefaultPort.
	Server string `yaml:"server,omitempty"`
	// HandshakeTimeout bounds TCP, TLS and websocket set-up.
	HandshakeTimeout time.Duration `yaml:"handshakeTimeout,omitempty"`
	// Ping is the interval of websocket pings to the cloud.
	Ping time.Duration `yaml:"ping,omitempty"`
	// WriteDeadline bounds each write to the tunnel.
	WriteDeadline time.Duration `yaml:"writeDeadline,omitempty"`
	// BackoffMin and BackoffMax bound the jittered wait between dials.
	BackoffMin time.Duration `yaml:"backoffMin,omitempty"`
	BackoffMax time.Duration `yaml:"backoffMax,omitempty"`
	// MaxConns bounds the requests served at once; more are refused.
	MaxConns int `yaml:"maxConns,omitempty"`

	// Set by main, not by the file.
	NodeName string        `yaml:"-"` // SessionHostNameOverride
	NodeIP   func() string `yaml:"-"` // SessionInternalIP, asked at every dial
	CertFile string        `yaml:"-"` // node certificate (hub's)
	KeyFile  string        `yaml:"-"`
}

// Enabled reports whether the tunnel is on.
func (c Config) Enabled() bool { return c.Server != "" && c.Server != Off }

// Defaults returns c with every zero field filled.
func (c Config) Defaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Ping == 0 {
		c.Ping = DefaultPing
	}
	if c.WriteDeadline == 0 {
		c.WriteDeadline = DefaultWriteDeadline
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	return c
}

// Validate returns every problem of c at once, naming the keys as they
// are spelled under "stream." in the config file.
func (c Config) Validate() []error {
	var errs []error
	if c.Enabled() {
		if _, _, err := net.SplitHostPort(c.Server); err != nil {
			errs = append(errs, fmt.Errorf("stream.server: %q is not HOST:PORT or %q", c.Server, Off))
		}
	}
	if c.HandshakeTimeout < 0 || c.Ping < 0 || c.WriteDeadline < 0 || c.BackoffMin < 0 || c.BackoffMax < 0 || c.MaxConns < 0 {
		errs = append(errs, errors.New("stream: durations and maxConns must not be negative"))
	}
	return errs
}
