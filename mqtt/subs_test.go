package mqtt_test

import (
	"testing"

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
