package twin

import (
	"slices"
	"strconv"
	"testing"
	"time"
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
	reportLatency(b, lat, el)
}

func reportLatency(b *testing.B, lat []time.Duration, el time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(len(lat))/el.Seconds(), "updates/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
