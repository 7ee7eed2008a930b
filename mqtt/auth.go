package mqtt

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrPlaintext: the broker would listen beyond loopback without TLS and
// mqtt.internal.allowPlaintext is not set.
var ErrPlaintext = errors.New("mqtt: a broker listening beyond loopback needs TLS (certFile, keyFile) or internal.allowPlaintext")

// Credentials maps user names to passwords of the embedded broker.
type Credentials map[string]string

// ParseCredentials reads "user:password" lines. Blank lines and lines
// starting with '#' are skipped; the password is everything after the
// first ':'. A line without ':' or with an empty user or password is an
// error naming the line (never its content: it may hold a password).
func ParseCredentials(b []byte) (Credentials, error) {
	c := Credentials{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("mqtt: credentials line %d: want user:password: %w", n, ErrBadCredentials)
		}
		c[user] = pass
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mqtt: credentials: %w (%w)", ErrBadCredentials, err)
	}
	return c, nil
}

// loadCredentials merges the configured user with the credentials file. A
// missing file is not an error.
func loadCredentials(cfg BrokerConfig) (Credentials, error) {
	c := Credentials{}
	if cfg.CredentialsFile != "" {
		b, err := os.ReadFile(cfg.CredentialsFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("mqtt: read credentials: %w", err)
		default:
			if c, err = ParseCredentials(b); err != nil {
				return nil, fmt.Errorf("%w (file %s)", err, cfg.CredentialsFile)
			}
		}
	}
	if cfg.Username != "" {
		c[cfg.Username] = string(cfg.Password)
	}
	return c, nil
}

// maxClientID is the longest client id the broker accepts, so that a
// client cannot make the broker keep 64 KiB ids (MQTT 3.1.1 3.1.3.1 asks
// only for 1 to 23 bytes).
const maxClientID = 256

// authHook admits MQTT clients to the embedded broker: anyone when users is
// nil (loopback listener), else only a matching user name and password. It
// refuses the client id of the broker's inline client, which edgenode
// itself publishes and subscribes as, so that no client can take over its
// session, and ids over maxClientID bytes. It applies the topic ACL and
// counts messages the broker dropped for slow clients.
type authHook struct {
	mochi.HookBase
	users       Credentials
	acl         acl
	clients     *mochi.Clients // the broker's sessions, connected or kept
	maxSessions int
	refused     atomic.Uint64
	dropped     atomic.Uint64
	aclRefused  atomic.Uint64
}

func (h *authHook) ID() string { return "edgenode-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mochi.OnConnect || b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck || b == mochi.OnPublishDropped
}

// OnConnect runs once the broker has read a client's CONNECT: the
// connection no longer counts as pending (broker.establish).
func (h *authHook) OnConnect(cl *mochi.Client, _ packets.Packet) error {
	if p, ok := cl.Net.Conn.(*pendingConn); ok {
		p.set.remove(p)
	}
	return nil
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if cl.ID == mochi.InlineClientId || len(cl.ID) > maxClientID {
		h.refused.Add(1)
		return false
	}
	// A session outlives its connection (clean session off, for up to
	// an hour), so new client ids could pile up sessions without bound
	// while MaxClients counts only connected ones.
	if h.clients != nil && h.maxSessions > 0 && h.clients.Len() >= h.maxSessions {
		if _, known := h.clients.Get(cl.ID); !known {
			h.refused.Add(1)
			return false
		}
	}
	if h.users == nil {
		return true
	}
	want, ok := h.users[string(pk.Connect.Username)]
	// Compare even for an unknown user, so timing does not tell users apart.
	eq := subtle.ConstantTimeCompare([]byte(want), pk.Connect.Password) == 1
	if !ok || !eq || !pk.Connect.PasswordFlag {
		h.refused.Add(1)
		return false
	}
	return true
}

// OnACLCheck applies the topic ACL (acl.go) to a client's publish (write)
// or to its subscription filter or a message delivered to it (read).
func (h *authHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	var ok bool
	if write {
		ok = h.acl.canPublish(cl.Properties.Username, topic)
	} else {
		ok = h.acl.canRead(cl.Properties.Username, topic)
	}
	if !ok {
		h.aclRefused.Add(1)
	}
	return ok
}

func (h *authHook) OnPublishDropped(*mochi.Client, packets.Packet) { h.dropped.Add(1) }
