package mqtt_test

import (
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestTwinShare: with a fair share of 2, a client's third request
// waiting for twin (the stand-in never takes them) is answered at once
// with a 503 result on its result topic; another client's request still
// goes to twin.
func TestTwinShare(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{TwinShare: bus.NewShare(2)}, b, mqtttest.Store(t))
	const topic = "$hw/events/device/d1/twin/update"
	results := make(chan string, 16)
	flood := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	if err := mqtttest.Wait(flood.Subscribe(topic+"/result", 1, func(_ paho.Client, m paho.Message) { results <- string(m.Payload()) })); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := mqtttest.Wait(flood.Publish(topic, 1, false, `{"event_id":"f"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if r := <-results; !strings.Contains(r, `"code":503,"reason":"twin: overloaded, retry later"}`) || !strings.HasPrefix(r, `{"timestamp":`) {
		t.Errorf("result = %s, want a 503 error result", r)
	}
	other := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	if err := mqtttest.Wait(other.Publish(topic, 1, false, `{"event_id":"o"}`)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"f", "f", "o"} {
		m := recv(t, b, bus.ModuleTwin)
		if !strings.Contains(string(m.Content), `"`+want+`"`) {
			t.Errorf("twin message %d = %s, want event %s", i, m.Content, want)
		}
	}
	if s := eb.Stats(); s.Overloaded != 1 || len(results) != 0 {
		t.Errorf("Stats().Overloaded = %d, more results %d; want 1, 0", s.Overloaded, len(results))
	}
}
