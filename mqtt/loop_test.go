package mqtt_test

import (
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestSysTopics: the broker publishes its $SYS topics only when asked
// for. By default a subscriber receives none, neither the retained ones
// mochi-mqtt publishes when it starts (dropped) nor later ones (the event
// loop was found and its ticker stopped), before a later message of the
// same subscriber; with sysInterval set it receives them again and again.
func TestSysTopics(t *testing.T) {
	for _, c := range []struct {
		name string
		sys  time.Duration
	}{{"off", 0}, {"on", 10 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			b := standIns(t, 64)
			eb := mqtttest.Start(t, mqtt.Config{Internal: mqtt.BrokerConfig{SysInterval: c.sys}}, b, mqtttest.Store(t))
			got := make(chan string, 256)
			cl := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
			if err := mqtttest.Wait(cl.Subscribe("$SYS/#", 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() })); err != nil {
				t.Fatal(err)
			}
			if err := mqtttest.Wait(cl.Subscribe("mark", 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() })); err != nil {
				t.Fatal(err)
			}
			if c.sys > 0 {
				for range 2 * 20 { // mochi-mqtt's 20 topics, twice
					if tp := <-got; !strings.HasPrefix(tp, "$SYS/") {
						t.Fatalf("message on %q, want $SYS", tp)
					}
				}
				return
			}
			// Wait until the loop would have published twice at mochi's
			// 1 s default, then mark the end.
			time.Sleep(2 * time.Second)
			if err := mqtttest.Wait(cl.Publish("mark", 0, false, "x")); err != nil {
				t.Fatal(err)
			}
			if tp := <-got; tp != "mark" {
				t.Fatalf("got a message on %q before the mark, want none", tp)
			}
		})
	}
}
