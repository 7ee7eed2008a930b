package mqtt_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestSubscribed: the eventbus tells whether a client subscribes to a
// topic, following subscribes and unsubscribes; its own
// inline subscriptions do not count.
func TestSubscribed(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{}, b, mqtttest.Store(t))
	const doc = "$hw/events/device/d1/twin/update/document"
	check := func(when string, want bool) {
		t.Helper()
		if got := eb.Subscribed(doc); got != want {
			t.Errorf("%s: Subscribed(%q) = %v, want %v", when, doc, got, want)
		}
	}
	check("no client", false)
	if eb.Subscribed("$hw/events/device/d1/twin/update") {
		t.Error("Subscribed(twin/update) = true with only edgenode's own subscription")
	}
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	nop := func(paho.Client, paho.Message) {}
	if err := mqtttest.Wait(c.Subscribe("$hw/events/device/+/twin/update/+", 0, nop)); err != nil {
		t.Fatal(err)
	}
	check("subscribed with a wildcard", true)
	check("asked again", true)
	if err := mqtttest.Wait(c.Unsubscribe("$hw/events/device/+/twin/update/+")); err != nil {
		t.Fatal(err)
	}
	check("unsubscribed", false)
	if err := mqtttest.Wait(c.Subscribe(doc, 0, nop)); err != nil {
		t.Fatal(err)
	}
	check("subscribed to the topic", true)
}

// TestRoutingAcrossPublishes: the broker reuses the subscriber sets it
// builds to route a publish (third_party/mochi-mqtt-server/README.md), so
// each publish must reach exactly the subscriptions of its moment: a
// plain, a wildcard and a shared one, and no longer the plain one once it
// is unsubscribed.
func TestRoutingAcrossPublishes(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{}, b, mqtttest.Store(t))
	var plain, wild, shared atomic.Int64
	sub := func(name, filter string, n *atomic.Int64) paho.Client {
		count := func(paho.Client, paho.Message) { n.Add(1) }
		// The default handler counts what arrives with no subscription
		// of the client's to route it to.
		c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()).SetClientID(name).SetDefaultPublishHandler(count))
		if err := mqtttest.Wait(c.Subscribe(filter, 1, count)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := sub("plain", "route/x", &plain)
	sub("wild", "route/+", &wild)
	sub("shared", "$share/g/route/x", &shared)
	pub := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()).SetClientID("pub"))
	send := func(n int) {
		for i := range n {
			if err := mqtttest.Wait(pub.Publish("route/x", 1, false, fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(want [3]int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := [3]int64{plain.Load(), wild.Load(), shared.Load()}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries (plain, wildcard, shared) = %v, want %v", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send(5)
	wait([3]int64{5, 5, 5})
	if err := mqtttest.Wait(a.Unsubscribe("route/x")); err != nil {
		t.Fatal(err)
	}
	// Enough publishes that reused sets come round whatever goroutine
	// routes each one.
	send(50)
	wait([3]int64{5, 55, 55})
	// Nothing more arrives late for the gone subscription.
	time.Sleep(100 * time.Millisecond)
	wait([3]int64{5, 55, 55})
}

// TestQueuedPacketsIntact: the broker encodes each packet into a pooled
// buffer and gathers queued packets in another
// (third_party/mochi-mqtt-server/README.md), so a buffer given back too
// early would corrupt a packet. Packets of every size around the write
// buffer's (2 KiB), published faster than the client reads them, must
// arrive whole and in order. The client's queue holds them all: beyond
// it the broker would drop QoS 0 packets for a slow client, as it should.
func TestQueuedPacketsIntact(t *testing.T) {
	b := standIns(t, 64)
	const n = 400
	eb := mqtttest.Start(t, mqtt.Config{Internal: mqtt.BrokerConfig{ClientQueue: 2 * n}}, b, mqtttest.Store(t))
	got := make(chan string, n)
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()).SetOrderMatters(true))
	if err := mqtttest.Wait(c.Subscribe("queued/#", 0, func(_ paho.Client, m paho.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	})); err != nil {
		t.Fatal(err)
	}
	payload := func(i int) string {
		p := make([]byte, (i*37)%5000+1)
		for k := range p {
			p[k] = byte('a' + (i+k)%26)
		}
		return string(p)
	}
	for i := range n {
		if err := eb.Publish(fmt.Sprintf("queued/%d", i), []byte(payload(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case s := <-got:
			if want := fmt.Sprintf("queued/%d %s", i, payload(i)); s != want {
				t.Fatalf("message %d = %.40q (%d bytes), want %.40q (%d bytes)", i, s, len(s), want, len(want))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d messages", i, n)
		}
	}
	if d := eb.Stats().ClientDrops; d != 0 {
		t.Errorf("broker dropped %d packets", d)
	}
}

// TestKeptRoutesFollowSubscriptions: the broker keeps the subscribers of
// a topic it has routed for the topic's next publish, up to a number of
// topics, until the subscriptions change
// (third_party/mochi-mqtt-server/README.md). Every publish must still
// reach exactly the subscriptions of its moment: after a subscribe, an
// unsubscribe and a client's disconnect, on topics kept and on more
// topics than are kept.
func TestKeptRoutesFollowSubscriptions(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{Internal: mqtt.BrokerConfig{ClientQueue: 1024}}, b, mqtttest.Store(t))
	type counter struct {
		name string
		c    paho.Client
		n    atomic.Int64
	}
	connect := func(name string) *counter {
		k := &counter{name: name}
		count := func(paho.Client, paho.Message) { k.n.Add(1) }
		k.c = mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()).SetClientID(name).SetDefaultPublishHandler(count))
		return k
	}
	sub := func(k *counter, filter string) {
		t.Helper()
		if err := mqtttest.Wait(k.c.Subscribe(filter, 0, func(paho.Client, paho.Message) { k.n.Add(1) })); err != nil {
			t.Fatal(err)
		}
	}
	unsub := func(k *counter, filter string) {
		t.Helper()
		if err := mqtttest.Wait(k.c.Unsubscribe(filter)); err != nil {
			t.Fatal(err)
		}
	}
	send := func(n int, topic func(i int) string) {
		t.Helper()
		for i := range n {
			if err := eb.Publish(topic(i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	one := func(topic string) func(int) string { return func(int) string { return topic } }
	many := func(i int) string { return fmt.Sprintf("many/%d", i) }
	wait := func(when string, want map[*counter]int64) {
		t.Helper()
		time.Sleep(50 * time.Millisecond) // what should not come has had time to
		deadline := time.Now().Add(5 * time.Second)
		for {
			ok := true
			for k, n := range want {
				ok = ok && k.n.Load() == n
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				for k, n := range want {
					if got := k.n.Load(); got != n {
						t.Fatalf("%s: %s got %d messages, want %d", when, k.name, got, n)
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a, c := connect("a"), connect("c")
	sub(a, "kept/t")
	send(3, one("kept/t")) // the first publish finds the route, the others reuse it
	wait("one subscriber", map[*counter]int64{a: 3, c: 0})
	sub(c, "kept/+")
	send(2, one("kept/t"))
	wait("after a subscribe", map[*counter]int64{a: 5, c: 2})
	unsub(a, "kept/t")
	send(2, one("kept/t"))
	wait("after an unsubscribe", map[*counter]int64{a: 5, c: 4})

	// More topics than are kept: each reaches its subscriber, twice,
	// and none after the unsubscribe.
	sub(c, "many/#")
	send(200, many)
	send(200, many)
	wait("many topics", map[*counter]int64{a: 5, c: 404})
	unsub(c, "many/#")
	send(200, many)
	wait("many topics, unsubscribed", map[*counter]int64{a: 5, c: 404})

	// A client that is gone gets nothing, and the others still do. It
	// is gone once the broker counts it out: its subscriptions go first.
	clients := eb.Stats().Clients
	d := connect("d")
	sub(d, "kept/t")
	send(1, one("kept/t"))
	wait("a third subscriber", map[*counter]int64{c: 405, d: 1})
	d.c.Disconnect(0)
	waitStats(t, eb, func(s mqtt.Stats) bool { return s.Clients == clients })
	send(1, one("kept/t"))
	wait("after a disconnect", map[*counter]int64{c: 406, d: 1})
}
