package mqtt_test

import (
	"context"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

var benchPayload = []byte(`{"event_id":"123","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"25.5"}}}}`)

// BenchmarkRawRoundTrip is the limit: paho publish -> embedded broker ->
// paho subscriber, on a topic EventBus does not route.
func BenchmarkRawRoundTrip(b *testing.B) {
	eb := mqtttest.Start(b, mqtt.Config{}, bus.New(bus.Config{}, nil), mqtttest.Store(b))
	mqtttest.RawRoundTrip(b, eb.Addr(), "bench/raw", benchPayload, 0)
}

// BenchmarkIngressToTwin: paho publish on a twin topic -> embedded broker
// -> EventBus -> the twin queue of the bus.
func BenchmarkIngressToTwin(b *testing.B) {
	bb := bus.New(bus.Config{QueueLen: 1024}, nil)
	if err := bb.AddModule(bus.ModuleTwin, bus.GroupTwin); err != nil {
		b.Fatal(err)
	}
	eb := mqtttest.Start(b, mqtt.Config{}, bb, mqtttest.Store(b))
	pub := mqtttest.Connect(b, mqtttest.ClientOptions(eb.Addr()))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		tok := pub.Publish("$hw/events/device/default/dev1/twin/update", 0, false, benchPayload)
		if _, err := bb.Receive(ctx, bus.ModuleTwin); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if err := mqtttest.Wait(tok); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	mqtttest.ReportLatency(b, lat, el)
	if s := eb.Stats(); s.DropBus+s.DropQueueFull != 0 {
		b.Errorf("Stats() = %+v, want no drops", s)
	}
}

// BenchmarkEgressPublish: a bus publish -> EventBus -> embedded broker ->
// paho subscriber.
func BenchmarkEgressPublish(b *testing.B) {
	bb := bus.New(bus.Config{QueueLen: 1024}, nil)
	eb := mqtttest.Start(b, mqtt.Config{}, bb, mqtttest.Store(b))
	got := make(chan struct{}, 1)
	sub := mqtttest.Connect(b, mqtttest.ClientOptions(eb.Addr()).SetDefaultPublishHandler(func(paho.Client, paho.Message) { got <- struct{}{} }))
	if err := mqtttest.Wait(sub.Subscribe("$hw/events/device/default/dev1/twin/update/result", 0, nil)); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		msg := bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "$hw/events/device/default/dev1/twin/update/result", benchPayload)
		if err := bb.Send(bus.ModuleMQTT, msg); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatal("no message within 10 s")
		}
		lat = append(lat, time.Since(t0))
	}
	el := time.Since(start)
	b.StopTimer()
	mqtttest.ReportLatency(b, lat, el)
}
