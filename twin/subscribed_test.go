package twin

import (
	"slices"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt/mqtttest"
)

// TestDocumentOnlyForSubscribers: a twin change publishes its document
// (and delta) only while a client subscribes to it; the result always.
func TestDocumentOnlyForSubscribers(t *testing.T) {
	x := startE2E(t, Config{}, nil)
	x.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	x.next() // membership/updated
	if err := mqtttest.Wait(x.c.Unsubscribe(e2eFilters...)); err != nil {
		t.Fatal(err)
	}
	const dev = "$hw/events/device/default/s1"
	sub := func(f string) {
		if err := mqtttest.Wait(x.c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			x.got <- pub{m.Topic(), string(m.Payload())}
		})); err != nil {
			t.Fatal(err)
		}
	}
	sub(dev + "/twin/update/result")
	sub(dev + "/twin/get/result") // before the get: its answer may come at once
	p0 := len(x.published())
	x.publish(dev+"/twin/update", `{"event_id":"a","twin":{"temp":{"actual":{"value":"7"}}}}`)
	x.publish(dev+"/twin/get", `{"event_id":"mark"}`) // answered after the update's publishes
	if p := x.next(); p.Topic != dev+"/twin/update/result" {
		t.Fatalf("first publish on %s, want the update's result", p.Topic)
	}
	if p := x.next(); p.Topic != dev+"/twin/get/result" {
		t.Fatalf("publish on %s before the get's result, want none (no document subscriber)", p.Topic)
	}
	// Twin published the update's result and the get's, no document and no
	// delta (temp differs from expected). It publishes in order, so the
	// get's result, delivered, was the last.
	if got, want := x.published()[p0:], []string{dev + "/twin/update/result", dev + "/twin/get/result"}; !slices.Equal(got, want) {
		t.Fatalf("twin published on %q, want %q", got, want)
	}

	sub(dev + "/twin/update/document")
	x.publish(dev+"/twin/update", `{"event_id":"b","twin":{"temp":{"actual":{"value":"8"}}}}`)
	if p := x.next(); p.Topic != dev+"/twin/update/result" {
		t.Fatalf("publish on %s, want the result", p.Topic)
	}
	if p := x.next(); p.Topic != dev+"/twin/update/document" {
		t.Fatalf("publish on %s, want the document now that a client subscribes", p.Topic)
	}
}
