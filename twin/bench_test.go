package twin

import (
	"slices"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt/mqtttest"
)

// BenchmarkTwinUpdateBus measures a twin update from the eventbus's
// message to the result publish, through a real SQLite commit, with no
// broker: the twin module's own cost.
func BenchmarkTwinUpdateBus(b *testing.B) {
	e := setupS1(b, Config{})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		e.mqtt("$hw/events/device/default/s1/twin/update", `{"event_id":"b","twin":{"temp":{"actual":{"value":"`+strconv.Itoa(i+2)+`"}}}}`)
		e.pub() // result
		lat = append(lat, time.Since(t0))
		e.pub() // document
		e.pub() // delta
	}
	el := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, len(lat), el)
}

// reportLatency reports n requests done in el, and the p50 and p99 of
// lat.
func reportLatency(b *testing.B, lat []time.Duration, n int, el time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(n)/el.Seconds(), "updates/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkEndToEnd measures, through the same embedded broker and the
// same paho client:
//   - raw: publish -> receive on a topic the client subscribes to, no twin
//     logic (the limit);
//   - twin: publish a twin update -> committed to SQLite -> update/result
//     received.
//
// One request is in flight at a time; the -32 variants keep 32 in flight
// (latency is then per window of 32), where twin commits updates queued
// together in one transaction.
func BenchmarkEndToEnd(b *testing.B) {
	x := startE2E(b, Config{}, nil)
	x.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	x.next() // membership/updated
	b.Run("raw", func(b *testing.B) {
		raw := make(chan struct{}, 1)
		if err := mqtttest.Wait(x.c.Subscribe("bench/raw", 0, func(paho.Client, paho.Message) { raw <- struct{}{} })); err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		start := time.Now()
		for range b.N {
			t0 := time.Now()
			x.c.Publish("bench/raw", 0, false, `{"event_id":"b","twin":{"temp":{"actual":{"value":"2"}}}}`)
			<-raw
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat, len(lat), time.Since(start))
	})
	b.Run("twin", func(b *testing.B) {
		const topic = "$hw/events/device/default/s1/twin/update"
		lat := make([]time.Duration, 0, b.N)
		start := time.Now()
		for i := range b.N {
			t0 := time.Now()
			x.c.Publish(topic, 0, false, `{"event_id":"b","twin":{"temp":{"actual":{"value":"`+strconv.Itoa(i+2)+`"}}}}`)
			for p := x.next(); p.Topic != topic+"/result"; p = x.next() {
			}
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat, len(lat), time.Since(start))
	})
	b.Run("raw-32", func(b *testing.B) {
		raw := make(chan struct{}, 64)
		if err := mqtttest.Wait(x.c.Subscribe("bench/raw32", 0, func(paho.Client, paho.Message) { raw <- struct{}{} })); err != nil {
			b.Fatal(err)
		}
		window(b, 32, func(int) {
			x.c.Publish("bench/raw32", 0, false, `{"event_id":"b","twin":{"temp":{"actual":{"value":"2"}}}}`)
		},
			func() { <-raw })
	})
	b.Run("twin-32", func(b *testing.B) {
		const topic = "$hw/events/device/default/s1/twin/update"
		window(b, 32, func(i int) {
			x.c.Publish(topic, 0, false, `{"event_id":"b","twin":{"temp":{"actual":{"value":"`+strconv.Itoa(i+2)+`"}}}}`)
		}, func() {
			for p := x.next(); p.Topic != topic+"/result"; p = x.next() {
			}
		})
	})
}

// window runs b.N requests, n in flight: send n, then wait for n answers.
func window(b *testing.B, n int, send func(i int), recv func()) {
	lat := make([]time.Duration, 0, b.N/n+1)
	start := time.Now()
	for i := 0; i < b.N; i += n {
		k := min(n, b.N-i)
		t0 := time.Now()
		for j := range k {
			send(i + j)
		}
		for range k {
			recv()
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat, b.N, time.Since(start))
}
