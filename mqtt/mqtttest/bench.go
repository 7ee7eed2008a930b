package mqtttest

import (
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Percentiles returns the 50th and 99th percentiles of d (sorted in place).
func Percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)*50/100], d[len(d)*99/100]
}

// ReportLatency reports msgs/s, p50-µs and p99-µs metrics for a benchmark
// that took the per-message latencies d in total time el.
func ReportLatency(b *testing.B, d []time.Duration, el time.Duration) {
	p50, p99 := Percentiles(d)
	b.ReportMetric(float64(len(d))/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-µs")
}

// RawRoundTrip measures the bare MQTT round trip through the broker at
// addr: one paho client publishes a payload (QoS qos) on topic, a second
// one subscribed to it receives it, and the next publish waits for that.
// No EventBus logic runs for the topic unless it is subscribed. It is the
// limit to set beside an end-to-end benchmark of the same broker.
func RawRoundTrip(b *testing.B, addr, topic string, payload []byte, qos byte) {
	b.Helper()
	got := make(chan struct{}, 1)
	sub := Connect(b, ClientOptions(addr).SetDefaultPublishHandler(func(paho.Client, paho.Message) { got <- struct{}{} }))
	if err := Wait(sub.Subscribe(topic, qos, nil)); err != nil {
		b.Fatal(err)
	}
	pub := Connect(b, ClientOptions(addr))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		tok := pub.Publish(topic, qos, false, payload)
		select {
		case <-got:
		case <-time.After(2 * time.Minute):
			b.Fatal("mqtttest: message not received within 2 minutes")
		}
		lat = append(lat, time.Since(t0))
		if err := Wait(tok); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	ReportLatency(b, lat, el)
}
