package hub

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"edgenode/bus"
)

// Defaults of Config (docs/protocol.md 2.4, edgecore v1alpha2 defaults where
// KubeEdge has one).
const (
	DefaultProjectID     = "e632aba927ea4ac2b575ec1603d56f10"
	DefaultHeartbeat     = 15 * time.Second
	DefaultHandshake     = 30 * time.Second
	DefaultWriteDeadline = 15 * time.Second
	DefaultMessageQPS    = 30
	DefaultMessageBurst  = 60
	DefaultMaxFrameBytes = 4 << 20
	DefaultOfflineQueue  = 1024
	DefaultBackoffMin    = time.Second
	// DefaultBackoffMax keeps a node within a few seconds of a cloud that
	// comes back (edgecore v1.23.1 took about 5 s after a cloudcore
	// restart); the jitter of backoff spreads a fleet's redials over the
	// second half of each wait.
	DefaultBackoffMax     = 5 * time.Second
	DefaultCertServerPort = "10002"
	// CertDir is the folder under the data dir that holds the CA, the node
	// certificate and its key.
	CertDir = "certs"
)

// Config configures the link to the cloud. The zero value of each field
// gives its default; a Config with no Server leaves the node on its own
// (main does not start the hub).
type Config struct {
	// Server is the CloudHub websocket address HOST:PORT (KubeEdge
	// websocket.server). Empty means no cloud.
	Server string `yaml:"server,omitempty"`
	// CertServer is the base URL of the certificate server. Default
	// https://HOST:10002 with HOST taken from Server (docs/protocol.md 2.4
	// httpServer).
	CertServer string `yaml:"certServer,omitempty"`
	// Token is the KubeEdge join token <sha256 hex of CA DER>.<JWT>. It is
	// used when no valid node certificate is on disk.
	Token string `yaml:"token,omitempty"`
	// ProjectID goes into the URL path and the project_id header.
	ProjectID string `yaml:"projectID,omitempty"`
	// PlacementURL, when set, is asked for the CloudHub base URL
	// (docs/protocol.md 2.1); the link then goes to
	// <body>/<projectID>/<nodeName>/events.
	PlacementURL string `yaml:"placementURL,omitempty"`
	// CAFile, CertFile and KeyFile default to ca.crt, edge.crt and edge.key
	// in <dataDir>/certs.
	CAFile   string `yaml:"caFile,omitempty"`
	CertFile string `yaml:"certFile,omitempty"`
	KeyFile  string `yaml:"keyFile,omitempty"`
	// InsecureSkipVerify turns off verification of the cloud's
	// certificate, as KubeEdge v0.3 did. It is logged at every connect.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify,omitempty"`
	// Heartbeat is the keepalive period. A link on which nothing arrives
	// for two heartbeats is dead (see the package doc).
	Heartbeat time.Duration `yaml:"heartbeat,omitempty"`
	// HandshakeTimeout bounds TCP, TLS and the websocket upgrade.
	HandshakeTimeout time.Duration `yaml:"handshakeTimeout,omitempty"`
	// WriteDeadline bounds each frame write.
	WriteDeadline time.Duration `yaml:"writeDeadline,omitempty"`
	// Probe chooses how a silent cloud is told from a dead one: "ping" (default
	// for v1.23) sends a viaduct ping with each keepalive, which the cloud's
	// viaduct layer answers with "ack" (docs/protocol.md 2.4); "none" (default
	// for v0.3, whose cloud answers nothing) disables the read deadline and
	// relies on the write deadline and TCP_USER_TIMEOUT.
	Probe string `yaml:"probe,omitempty"`
	// MessageQPS and MessageBurst are the token bucket for edge->cloud
	// messages; keepalives bypass it (docs/protocol.md 2.4).
	MessageQPS   float64 `yaml:"messageQPS,omitempty"`
	MessageBurst int     `yaml:"messageBurst,omitempty"`
	// MaxFrameBytes is the largest frame read from the cloud.
	MaxFrameBytes int `yaml:"maxFrameBytes,omitempty"`
	// OfflineQueue bounds the queue of cloud-bound statuses kept while the
	// cloud is away (one entry per resource).
	OfflineQueue int `yaml:"offlineQueue,omitempty"`
	// BackoffMin and BackoffMax bound the reconnect backoff.
	BackoffMin time.Duration `yaml:"backoffMin,omitempty"`
	BackoffMax time.Duration `yaml:"backoffMax,omitempty"`
	// RenewRetry is the wait after a failed certificate renewal. Default
	// one minute.
	RenewRetry time.Duration `yaml:"renewRetry,omitempty"`

	// Set by main, not by the file.
	NodeName string  `yaml:"-"`
	DataDir  string  `yaml:"-"`
	Era      bus.Era `yaml:"-"`
}

// Probe modes.
const (
	ProbePing = "ping"
	ProbeNone = "none"
)

// Enabled reports whether a cloud is configured.
func (c Config) Enabled() bool { return c.Server != "" || c.PlacementURL != "" }

// Defaults returns c with every zero field filled.
func (c Config) Defaults() Config {
	if c.ProjectID == "" {
		c.ProjectID = DefaultProjectID
	}
	if c.CertServer == "" && c.Server != "" {
		if h, _, err := net.SplitHostPort(c.Server); err == nil {
			c.CertServer = "https://" + net.JoinHostPort(h, DefaultCertServerPort)
		}
	}
	dir := filepath.Join(c.DataDir, CertDir)
	if c.CAFile == "" {
		c.CAFile = filepath.Join(dir, "ca.crt")
	}
	if c.CertFile == "" {
		c.CertFile = filepath.Join(dir, "edge.crt")
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(dir, "edge.key")
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshake
	}
	if c.WriteDeadline <= 0 {
		c.WriteDeadline = DefaultWriteDeadline
	}
	if c.Probe == "" {
		c.Probe = ProbePing
		if c.Era == bus.EraV03 {
			c.Probe = ProbeNone
		}
	}
	if c.MessageQPS <= 0 {
		c.MessageQPS = DefaultMessageQPS
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = DefaultMessageBurst
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.OfflineQueue <= 0 {
		c.OfflineQueue = DefaultOfflineQueue
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.RenewRetry <= 0 {
		c.RenewRetry = time.Minute
	}
	return c
}

// Validate returns every problem of c at once, naming the keys as they
// are spelled in the config file under "hub.".
func (c Config) Validate() []error {
	var errs []error
	if c.Server != "" {
		if _, _, err := net.SplitHostPort(c.Server); err != nil {
			errs = append(errs, fmt.Errorf("hub.server: %q is not HOST:PORT", c.Server))
		}
	}
	for _, kv := range [][2]string{{"hub.certServer", c.CertServer}, {"hub.placementURL", c.PlacementURL}} {
		if kv[1] == "" {
			continue
		}
		if p, err := url.Parse(kv[1]); err != nil || p.Scheme != "https" || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an https:// URL", kv[0], kv[1]))
		}
	}
	if c.Token != "" {
		if _, _, err := splitToken(c.Token); err != nil {
			errs = append(errs, errors.New("hub.token: malformed (want <sha256 hex of the CA>.<JWT>)"))
		}
	}
	// A bare number in YAML is nanoseconds; KubeEdge's files give seconds.
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"hub.heartbeat", c.Heartbeat}, {"hub.handshakeTimeout", c.HandshakeTimeout}, {"hub.writeDeadline", c.WriteDeadline}} {
		if d.v < 0 || (d.v > 0 && d.v < 10*time.Millisecond) {
			errs = append(errs, fmt.Errorf("%s: %v is too short (write a unit, e.g. 15s)", d.key, d.v))
		}
	}
	if c.Probe != "" && c.Probe != ProbePing && c.Probe != ProbeNone {
		errs = append(errs, fmt.Errorf("hub.probe: %q is not ping or none", c.Probe))
	}
	if strings.ContainsAny(c.ProjectID, "/ ") {
		errs = append(errs, fmt.Errorf("hub.projectID: %q must not contain '/' or spaces", c.ProjectID))
	}
	if c.MessageQPS < 0 || c.MessageBurst < 0 || c.MaxFrameBytes < 0 || c.OfflineQueue < 0 {
		errs = append(errs, errors.New("hub: messageQPS, messageBurst, maxFrameBytes and offlineQueue must not be negative"))
	}
	return errs
}
