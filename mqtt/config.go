package mqtt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
	"time"

	"edgenode/bus"
)

// Mode says which brokers EventBus uses (docs/protocol.md 4.1).
type Mode string

// Modes of EventBus. KubeEdge numbers them 0 (internal), 1 (both) and 2
// (external); edgenode spells them out.
const (
	ModeInternal Mode = "internal" // embedded broker only (default)
	ModeExternal Mode = "external" // paho clients to an outside broker only
	ModeBoth     Mode = "both"     // both at once; the embedded broker moves to DefaultListenBoth
)

// Defaults of Config.
const (
	// DefaultListen is where the embedded broker listens in internal mode:
	// the standard MQTT port, where KubeEdge mappers look for a broker.
	DefaultListen = "127.0.0.1:1883"
	// DefaultListenBoth is the embedded broker's address in both mode, where
	// the external broker holds 1883 (KubeEdge mqttServerInternal,
	// docs/protocol.md 4.1).
	DefaultListenBoth = "127.0.0.1:1884"
	// DefaultServer is the external broker (KubeEdge mqttServerExternal).
	DefaultServer = "tcp://127.0.0.1:1883"

	DefaultQueueLen       = 1024
	DefaultMaxPayload     = 64 << 10
	DefaultMaxPacket      = 256 << 10
	DefaultClientQueue    = 256
	DefaultMaxClients     = 256
	DefaultRetryInterval  = 5 * time.Second // KubeEdge retries the external connect every 5 s
	DefaultMaxReconnect   = 30 * time.Second
	DefaultPublishTimeout = 5 * time.Second
	DefaultCredentials    = "mqtt-users" // file name in the data dir
	// DefaultConnectTimeout is how long a new connection may take to send
	// CONNECT (and finish TLS) before the broker closes it.
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxPending     = 64 // connections that have not sent CONNECT yet
	// DefaultMaxInflight bounds the QoS 1/2 messages in flight to one
	// client. Past it mochi drops messages to that client, so it must hold
	// a burst a healthy subscriber acknowledges late: at 64, 25 of 200
	// twin updates a subscriber was sent in a row were lost on a loaded
	// machine. 1024 is mochi's own receive maximum.
	DefaultMaxInflight  = 1024
	DefaultTopicAliases = 16 // topic aliases per MQTT 5 client
	DefaultHousekeeping = 30 * time.Second
)

// Config configures EventBus. It is passed by value; zero fields get the
// defaults above. NodeName, Era and DataDir are filled by main from the
// top-level config.
type Config struct {
	// Mode: internal (default), external or both.
	Mode Mode `yaml:"mode"`
	// Internal is the embedded broker (modes internal and both).
	Internal BrokerConfig `yaml:"internal"`
	// External is the outside broker (modes external and both).
	External ClientConfig `yaml:"external"`
	// QoS is the QoS of publishes to the embedded broker's subscribers
	// (KubeEdge mqttQOS, default 0). External publishes always use QoS 1 as
	// in KubeEdge (docs/protocol.md 4.1).
	QoS int `yaml:"qos"`
	// Retain marks publishes to the embedded broker as retained (KubeEdge
	// mqttRetain, default false).
	Retain bool `yaml:"retain"`
	// QueueLen bounds the ingress queue between the brokers and the bus;
	// messages arriving when it is full are dropped and counted.
	QueueLen int `yaml:"queueLen"`
	// MaxPayload is the largest payload forwarded to the bus; larger ones
	// are dropped and counted. Default 64 KiB.
	MaxPayload int `yaml:"maxPayload"`

	// TwinShare, if set, is DeviceTwin's fair share per client (see
	// DeliverTwin); nil: none.
	TwinShare *bus.Share `yaml:"-"`

	NodeName string  `yaml:"-"` // for $hw/events/node/<node>/authInfo/get/result
	Era      bus.Era `yaml:"-"` // shape of ingress messages to the cloud (docs/protocol.md 4.2)
	DataDir  string  `yaml:"-"` // where the default credentials file lives
}

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Listen is host:port. Default 127.0.0.1:1883 (1884 in both mode).
	// Anonymous clients are accepted only when host is a loopback address
	// (127.0.0.0/8, ::1, localhost); any other address needs credentials.
	Listen string `yaml:"listen"`
	// Username and Password admit one client. More users go in
	// CredentialsFile.
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// CredentialsFile holds "user:password" lines ('#' starts a comment).
	// Default <dataDir>/mqtt-users; a missing file is fine when Username is
	// set or the broker listens on loopback.
	CredentialsFile string `yaml:"credentialsFile"`
	// CertFile and KeyFile turn on TLS for the listener. ClientCAFile, if
	// set, also requires client certificates signed by that CA.
	CertFile     string `yaml:"certFile"`
	KeyFile      string `yaml:"keyFile"`
	ClientCAFile string `yaml:"clientCAFile"`
	// MaxPacket is the largest MQTT packet a client may send; a client that
	// sends a larger one is disconnected (MQTT 5 3.1.2.11). Default 256 KiB.
	MaxPacket int `yaml:"maxPacket"`
	// ClientQueue bounds each client's queue of outgoing packets in the
	// broker; a slow client loses messages beyond it instead of slowing the
	// others. Default 256.
	ClientQueue int `yaml:"clientQueue"`
	// MaxClients bounds connected clients. Default 256.
	MaxClients int `yaml:"maxClients"`
	// ConnectTimeout is how long a new connection may take to finish TLS
	// and send CONNECT; the broker then closes it. Default 5 s.
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	// MaxPending bounds connections that have not sent CONNECT yet; more
	// are closed at once, so silent sockets cannot hold memory. Default 64.
	MaxPending int `yaml:"maxPending"`
	// MaxInflight bounds the QoS 1 and 2 messages the broker keeps in
	// flight for one client. Default 64.
	MaxInflight int `yaml:"maxInflight"`
	// AllowPlaintext lets a broker listen beyond loopback without TLS, where
	// passwords cross the network in clear. It is refused otherwise, and
	// warned about at every start when allowed.
	AllowPlaintext bool `yaml:"allowPlaintext"`
	// DeviceACL limits users to devices: user name to device id patterns
	// (path.Match: '*' does not cross the '/' of <namespace>/<name> ids).
	// A listed user may publish and receive only the device topics of
	// matching devices, and no membership topics. Users not listed, and
	// anonymous clients on loopback, may use every device.
	DeviceACL map[string][]string `yaml:"deviceACL"`
	// SysInterval is how often the broker publishes its $SYS topics;
	// 0 (the default) publishes none, so an idle board stays idle.
	SysInterval time.Duration `yaml:"sysInterval"`
	// Housekeeping is how often the broker drops expired sessions,
	// inflight and retained messages and sends delayed wills (MQTT 5),
	// each of which may then happen up to this late. Default 30 s
	// (mochi-mqtt's own is 1 s).
	Housekeeping time.Duration `yaml:"housekeeping"`
}

// ClientConfig configures the paho clients to an external broker.
type ClientConfig struct {
	// Server is the broker URL: tcp://, ssl:// or tls://. Default
	// tcp://127.0.0.1:1883.
	Server string `yaml:"server"`
	// SubClientID and PubClientID default to KubeEdge's
	// hub-client-sub-<first 10 digits of the ms time> and hub-client-pub-...
	SubClientID string `yaml:"subClientID"`
	PubClientID string `yaml:"pubClientID"`
	Username    string `yaml:"username"`
	Password    Secret `yaml:"password"`
	// CAFile verifies the broker's certificate (system roots when empty).
	// InsecureSkipVerify turns verification off; it is logged at start.
	CAFile             string `yaml:"caFile"`
	CertFile           string `yaml:"certFile"`
	KeyFile            string `yaml:"keyFile"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"`
	// RetryInterval is the wait after a failed connect (default 5 s, as
	// KubeEdge); it doubles with each failure in a row up to MaxReconnect
	// (default 30 s), less up to half at random. A lost connection is
	// retried at once.
	RetryInterval time.Duration `yaml:"retryInterval"`
	MaxReconnect  time.Duration `yaml:"maxReconnect"`
	// PublishTimeout bounds how long a publish may wait to be written.
	PublishTimeout time.Duration `yaml:"publishTimeout"`
}

// Secret is a password in the config. It prints as "(redacted)" when the
// config is written out as YAML.
type Secret string

// MarshalYAML hides a set password.
func (s Secret) MarshalYAML() (any, error) {
	if s == "" {
		return "", nil
	}
	return "(redacted)", nil
}

// Defaults returns c with its zero fields filled.
func (c Config) Defaults() Config {
	if c.Mode == "" {
		c.Mode = ModeInternal
	}
	if c.Internal.Listen == "" {
		c.Internal.Listen = DefaultListen
		if c.Mode == ModeBoth {
			c.Internal.Listen = DefaultListenBoth
		}
	}
	if c.Internal.CredentialsFile == "" && c.DataDir != "" {
		c.Internal.CredentialsFile = strings.TrimSuffix(c.DataDir, "/") + "/" + DefaultCredentials
	}
	setInt(&c.Internal.MaxPacket, DefaultMaxPacket)
	setInt(&c.Internal.ClientQueue, DefaultClientQueue)
	setInt(&c.Internal.MaxClients, DefaultMaxClients)
	setInt(&c.Internal.MaxPending, DefaultMaxPending)
	setInt(&c.Internal.MaxInflight, DefaultMaxInflight)
	setDur(&c.Internal.ConnectTimeout, DefaultConnectTimeout)
	setDur(&c.Internal.Housekeeping, DefaultHousekeeping)
	setInt(&c.QueueLen, DefaultQueueLen)
	setInt(&c.MaxPayload, DefaultMaxPayload)
	if c.External.Server == "" {
		c.External.Server = DefaultServer
	}
	setDur(&c.External.RetryInterval, DefaultRetryInterval)
	setDur(&c.External.MaxReconnect, DefaultMaxReconnect)
	setDur(&c.External.PublishTimeout, DefaultPublishTimeout)
	return c
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p == 0 {
		*p = v
	}
}

// Validate returns every problem of a defaulted Config at once, each naming
// its key as spelled in the config file under "mqtt.". It does not read
// files; New does.
func (c Config) Validate() []error {
	var errs []error
	switch c.Mode {
	case ModeInternal, ModeExternal, ModeBoth:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not internal, external or both", c.Mode))
	}
	if c.Mode != ModeExternal {
		if _, _, err := net.SplitHostPort(c.Internal.Listen); err != nil {
			errs = append(errs, fmt.Errorf("internal.listen: %q: %w", c.Internal.Listen, err))
		}
		if (c.Internal.CertFile == "") != (c.Internal.KeyFile == "") {
			errs = append(errs, errors.New("internal: certFile and keyFile go together"))
		}
		if c.Internal.ClientCAFile != "" && c.Internal.CertFile == "" {
			errs = append(errs, errors.New("internal.clientCAFile: needs certFile and keyFile"))
		}
		if (c.Internal.Username == "") != (c.Internal.Password == "") {
			errs = append(errs, errors.New("internal: username and password go together"))
		}
		if c.Internal.MaxInflight > 65535 {
			errs = append(errs, fmt.Errorf("internal.maxInflight: %d is over 65535", c.Internal.MaxInflight))
		}
		if c.Internal.ConnectTimeout < 0 {
			errs = append(errs, fmt.Errorf("internal.connectTimeout: %v must be positive", c.Internal.ConnectTimeout))
		}
		for user, pats := range c.Internal.DeviceACL {
			for _, p := range pats {
				if _, err := path.Match(p, ""); err != nil || p == "" {
					errs = append(errs, fmt.Errorf("internal.deviceACL: user %q: bad pattern %q", user, p))
				}
			}
		}
		if c.Internal.SysInterval < 0 || c.Internal.Housekeeping < 0 {
			errs = append(errs, errors.New("internal: sysInterval and housekeeping must not be negative"))
		}
	}
	if c.Mode != ModeInternal {
		u, err := url.Parse(c.External.Server)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("external.server: %w", err))
		case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtt" && u.Scheme != "mqtts":
			errs = append(errs, fmt.Errorf("external.server: %q: scheme must be tcp, mqtt, ssl, tls or mqtts", c.External.Server))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("external.server: %q has no host", c.External.Server))
		}
		if (c.External.CertFile == "") != (c.External.KeyFile == "") {
			errs = append(errs, errors.New("external: certFile and keyFile go together"))
		}
	}
	if c.QoS < 0 || c.QoS > 2 {
		errs = append(errs, fmt.Errorf("qos: %d is not 0, 1 or 2", c.QoS))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"queueLen", c.QueueLen}, {"maxPayload", c.MaxPayload}, {"internal.maxPacket", c.Internal.MaxPacket},
		{"internal.clientQueue", c.Internal.ClientQueue}, {"internal.maxClients", c.Internal.MaxClients},
		{"internal.maxPending", c.Internal.MaxPending}, {"internal.maxInflight", c.Internal.MaxInflight}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("%s: %d must be at least 1", f.name, f.v))
		}
	}
	for i, err := range errs {
		errs[i] = fmt.Errorf("mqtt.%w", err)
	}
	return errs
}

// IsLoopback reports whether a listen address host:port binds only to
// loopback: an IP in 127.0.0.0/8, ::1, or the name localhost. An empty host,
// 0.0.0.0, :: and every other name or address are not loopback.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("mqtt: listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
