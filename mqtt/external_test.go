package mqtt_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// externalConfig is external mode against server with quick retries.
func externalConfig(server string) mqtt.Config {
	return mqtt.Config{Mode: mqtt.ModeExternal, External: mqtt.ClientConfig{
		Server: server, RetryInterval: 50 * time.Millisecond, MaxReconnect: 200 * time.Millisecond,
	}}
}

// subscribedOnce waits until the external subscriber has (re)subscribed
// more than n times.
func subscribedOnce(t *testing.T, eb *mqtt.EventBus, n uint64) {
	t.Helper()
	mqtttest.WaitSubscribed(t, eb, n)
}

// TestIngressExternal: the same topics as TestIngressInternal, published to
// a real mosquitto that EventBus reaches with paho.
func TestIngressExternal(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
		t.Run(era.String(), func(t *testing.T) {
			b := standIns(t, 64)
			cfg := externalConfig(m.URL)
			cfg.Era = era
			eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
			subscribedOnce(t, eb, 0)
			c := mqtttest.Connect(t, mqtttest.ClientOptions(m.Addr))
			testIngress(t, c, b, era, false)
		})
	}
}

func TestEgressExternal(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	b := standIns(t, 64)
	eb := mqtttest.Start(t, externalConfig(m.URL), b, mqtttest.Store(t))
	subscribedOnce(t, eb, 0)
	waitStats(t, eb, func(s mqtt.Stats) bool { return s.External })
	ch := subscriber(t, m.Addr, "#", "$hw/#")
	testEgress(t, b, eb, ch, 1)
}

// TestReconnectExternal: mosquitto restarts; EventBus reconnects and
// subscribes again to the static and the dynamic filters.
func TestReconnectExternal(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	b := standIns(t, 64)
	eb := mqtttest.Start(t, externalConfig(m.URL), b, mqtttest.Store(t))
	subscribedOnce(t, eb, 0)
	if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, "factory/+/temp", nil)); err != nil {
		t.Fatal(err)
	}
	waitStats(t, eb, func(s mqtt.Stats) bool { return s.Subscribed == len(mqtt.StaticTopics())+1 })

	m.Stop()
	m.Start()
	subscribedOnce(t, eb, 1)
	c := mqtttest.Connect(t, mqtttest.ClientOptions(m.Addr))
	for _, topic := range []string{"factory/line1/temp", "$hw/events/upload/after-restart"} {
		if err := mqtttest.Wait(c.Publish(topic, 1, false, "v")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, b, bus.ModuleHub); got.Route.Resource != topic {
			t.Errorf("after reconnect hub got %q, want %q", got.Route.Resource, topic)
		}
	}
	if err := mqtttest.Wait(c.Publish("$hw/events/device/d1/twin/get", 1, false, "{}")); err != nil {
		t.Fatal(err)
	}
	recv(t, b, bus.ModuleTwin)
	// Egress works again too, once the publishing client has reconnected
	// as well: it is a client of its own, and until it is back a publish
	// fails at once. So the test sends until one arrives.
	ch := subscriber(t, m.Addr, "dev/cmd")
	for deadline := time.Now().Add(time.Minute); ; {
		if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "dev/cmd", []byte("go"))); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if string(got.Payload()) != "go" {
				t.Errorf("dev/cmd payload = %q, want go", got.Payload())
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no egress publish reached mosquitto within a minute of the reconnect")
		}
	}
}

// TestBothModes: devices on either broker reach twin; edge publishes reach
// subscribers of both brokers.
func TestBothModes(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	b := standIns(t, 64)
	cfg := externalConfig(m.URL)
	cfg.Mode = mqtt.ModeBoth
	cfg.Internal.Listen = "127.0.0.1:0"
	eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
	subscribedOnce(t, eb, 0)
	for _, addr := range []string{eb.Addr(), m.Addr} {
		c := mqtttest.Connect(t, mqtttest.ClientOptions(addr))
		if err := mqtttest.Wait(c.Publish("$hw/events/device/d1/state/update", 1, false, `{"state":"online"}`)); err != nil {
			t.Fatal(err)
		}
		recv(t, b, bus.ModuleTwin)
	}
	chIn, chEx := subscriber(t, eb.Addr(), "dev/cmd"), subscriber(t, m.Addr, "dev/cmd")
	if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "dev/cmd", []byte("both"))); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan paho.Message{chIn, chEx} {
		if got := next(t, ch); string(got.Payload()) != "both" {
			t.Errorf("dev/cmd payload = %q, want both", got.Payload())
		}
	}
}

// TestAuthExternal: user and password reach mosquitto.
func TestAuthExternal(t *testing.T) {
	pw, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed (apt-get install mosquitto)")
	}
	file := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(pw, "-b", "-c", file, "edge", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	m := mqtttest.StartMosquitto(t, "password_file "+file+"\nallow_anonymous false\n")
	b := standIns(t, 64)
	cfg := externalConfig(m.URL)
	cfg.External.Username, cfg.External.Password = "edge", "s3cret"
	eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
	subscribedOnce(t, eb, 0)
	c := mqtttest.Connect(t, mqtttest.ClientOptions(m.Addr).SetUsername("edge").SetPassword("s3cret"))
	if err := mqtttest.Wait(c.Publish("$hw/events/node/n1/membership/get", 1, false, "{}")); err != nil {
		t.Fatal(err)
	}
	recv(t, b, bus.ModuleTwin)
}

// TestUnreachableExternal: with no broker to reach, egress publishes fail
// at once and are counted, subscribes are kept for later, and Run still
// returns promptly when stopped (checked by mqtttest.Start's cleanup).
func TestUnreachableExternal(t *testing.T) {
	b := standIns(t, 64)
	store := mqtttest.Store(t)
	eb := mqtttest.Start(t, externalConfig("tcp://"+mqtttest.FreeAddr(t)), b, store)
	for _, m := range []bus.Message{
		bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "dev/cmd", []byte("x")),
		bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, "later/+", nil),
	} {
		if err := b.Send(bus.ModuleMQTT, m); err != nil {
			t.Fatal(err)
		}
	}
	s := waitStats(t, eb, func(s mqtt.Stats) bool { return s.PublishErrors == 1 && s.Subscribed == len(mqtt.StaticTopics())+1 })
	if s.External || s.Published != 0 {
		t.Errorf("Stats() = %+v, want not connected and nothing published", s)
	}
	if got, err := store.SubTopics(context.Background()); err != nil || len(got) != 1 {
		t.Errorf("SubTopics() = %q, %v, want [later/+]", got, err)
	}
}

// TestDeliveredOnceExternal: with overlapping filters on mosquitto, a
// message is still routed once.
func TestDeliveredOnceExternal(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	b := standIns(t, 64)
	eb := mqtttest.Start(t, externalConfig(m.URL), b, mqtttest.Store(t))
	mqtttest.WaitSubscribed(t, eb, 0)
	for _, f := range []string{"x/user/y", "x/+/y", "x/#", "bad/#/"} {
		if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, f, nil)); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, eb, func(s mqtt.Stats) bool { return s.BadRequests == 1 })
	c := mqtttest.Connect(t, mqtttest.ClientOptions(m.Addr))
	for _, topic := range []string{"x/user/y", "x"} {
		if err := mqtttest.Wait(c.Publish(topic, 1, false, "once")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, b, bus.ModuleHub); got.Route.Resource != topic {
			t.Fatalf("hub got %q, want %q", got.Route.Resource, topic)
		}
	}
	sentinel(t, c, b)
}
