package mqtt

import (
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// subsHook counts the changes of the embedded broker's client
// subscriptions, so that the answer to "does anyone subscribe to topic?"
// can be kept until the next change.
type subsHook struct {
	mochi.HookBase
	gen atomic.Uint64
}

func (h *subsHook) ID() string { return "edgenode-subscriptions" }

func (h *subsHook) Provides(b byte) bool {
	return b == mochi.OnSubscribed || b == mochi.OnUnsubscribed || b == mochi.OnDisconnect
}

// Each hook runs after the broker has changed its index (mochi-mqtt
// v2.7.9 server.go processSubscribe, processUnsubscribe) or just before it
// drops a gone client's subscriptions, so a cached answer is never "no"
// for a subscription that exists; it may be a stale "yes" for a moment,
// which costs one publish to nobody.
func (h *subsHook) OnSubscribed(*mochi.Client, packets.Packet, []byte) { h.gen.Add(1) }
func (h *subsHook) OnUnsubscribed(*mochi.Client, packets.Packet)       { h.gen.Add(1) }
func (h *subsHook) OnDisconnect(*mochi.Client, error, bool)            { h.gen.Add(1) }

// subsCache remembers which topics have client subscribers, for one
// generation of the broker's subscriptions.
type subsCache struct {
	mu  sync.Mutex
	gen uint64
	has map[string]bool
}

// subscribed reports whether a client (not edgenode's inline client)
// subscribes to topic on the embedded broker. A topic seen before in the
// same generation costs one map lookup.
func (b *broker) subscribed(topic string) bool {
	c := &b.subs
	gen := b.subsHook.gen.Load()
	c.mu.Lock()
	if c.gen != gen || c.has == nil {
		if c.has == nil {
			c.has = map[string]bool{}
		}
		clear(c.has)
		c.gen = gen
	}
	has, ok := c.has[topic]
	c.mu.Unlock()
	if ok {
		return has
	}
	s := b.srv.Topics.Subscribers(topic)
	has = len(s.Subscriptions) > 0 || len(s.Shared) > 0
	c.mu.Lock()
	if c.gen == gen && len(c.has) < maxSubsCache {
		c.has[topic] = has
	}
	c.mu.Unlock()
	return has
}

// maxSubsCache bounds the cached topics (two per device: document and
// delta).
const maxSubsCache = 4096
