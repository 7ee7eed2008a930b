package twin

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/db"
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

// BenchmarkEndToEnd measures the design budget: a twin update end to end
// (MQTT publish -> committed to SQLite -> update/result received) against
// a bare publish/receive round trip through the same embedded broker, by
// the same paho client, interleaved in the same benchmark (interleave) so
// that both see the same machine load. The client subscribes to the raw
// topic and the result topic only, as an app waiting for its result does,
// so twin, which asks the broker, publishes no document or delta.
//
// Sub-benchmark "1" keeps one request in flight; "32" keeps 32 in flight
// (latency is then per window of 32), where twin commits the updates
// queued together in one transaction. Both report twin_updates/s,
// raw_msgs/s, their ratio (the budget is ratio >= 0.5) and the twin p50
// and p99 and the raw p50. "1" also reports fsync_commits/s: one-row
// commits with synchronous=FULL in the same directory, with no MQTT, the
// ceiling of a durable update with one in flight, interleaved with the
// other two.
//
// Both run on as many threads for Go code as the node (nodeProcs), and
// report updates_per_commit, the group commit's batch.
func BenchmarkEndToEnd(b *testing.B) {
	x := startE2E(b, Config{}, nil)
	x.quiet.Store(true) // the topics twin publishes on are not recorded: main does not
	x.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	x.next() // membership/updated
	if err := mqtttest.Wait(x.c.Unsubscribe(e2eFilters...)); err != nil {
		b.Fatal(err)
	}
	const (
		topic   = "$hw/events/device/default/s1/twin/update"
		rawPay  = `{"event_id":"b","twin":{"temp":{"actual":{"value":"2"}}}}`
		inFirst = 2 // the first value published; stored is "1"
	)
	raw, res := make(chan struct{}, 64), make(chan struct{}, 64)
	for f, ch := range map[string]chan struct{}{"bench/raw": raw, topic + "/result": res} {
		if err := mqtttest.Wait(x.c.Subscribe(f, 0, func(paho.Client, paho.Message) { ch <- struct{}{} })); err != nil {
			b.Fatal(err)
		}
	}
	seq := inFirst
	for _, n := range []int{1, 32} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			nodeProcs(b)
			rawLeg := &leg{send: func(int) { x.c.Publish("bench/raw", 0, false, rawPay) }, recv: func() { <-raw }}
			twinLeg := &leg{send: func(int) {
				x.c.Publish(topic, 0, false, `{"event_id":"b","twin":{"temp":{"actual":{"value":"`+strconv.Itoa(seq)+`"}}}}`)
				seq++
			}, recv: func() { <-res }}
			legs := []*leg{rawLeg, twinLeg}
			var commits *leg
			if n == 1 {
				commits = fsyncLeg(b)
				legs = append(legs, commits)
			}
			st := x.tw.Stats()
			interleave(b.N, n, legs...)
			rawRate, twinRate := rawLeg.rate(), twinLeg.rate()
			if s := x.tw.Stats(); s.Commits > st.Commits {
				b.ReportMetric(float64(s.Committed-st.Committed)/float64(s.Commits-st.Commits), "updates_per_commit")
			}
			b.ReportMetric(twinRate, "twin_updates/s")
			b.ReportMetric(rawRate, "raw_msgs/s")
			b.ReportMetric(twinRate/rawRate, "ratio")
			p50, p99 := percentiles(twinLeg.lat)
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			p50, _ = percentiles(rawLeg.lat)
			b.ReportMetric(float64(p50.Microseconds()), "raw_p50-µs")
			if commits != nil {
				b.ReportMetric(commits.rate(), "fsync_commits/s")
			}
		})
	}
}

// nodeProcs runs the rest of the benchmark with as many threads for Go
// code as the node runs with by default (runtime.maxProcs: 1, the main
// package's DefaultMaxProcs), so that twin and the broker hand work to
// each other as they do in the node; the benchmark's clients share that
// thread. The process runs on one CPU (oneCPU), as on the node's
// one-core target. As in the node, GOMAXPROCS in the environment wins,
// and then the process keeps its CPUs. The sub-benchmarks that measure
// call it themselves: testing runs a sub-benchmark's later rounds after
// its parent's function has returned, so a setting made there would be
// gone.
func nodeProcs(b *testing.B) {
	const node = 1
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	prev := runtime.GOMAXPROCS(node)
	b.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	oneCPU(b)
}

// fsyncLeg commits one-row changes, one a request, to a database of its
// own in the benchmark's temp dir, with the pragmas db.Open sets: the
// durable-commit rate beside twin's with one update in flight.
func fsyncLeg(b *testing.B) *leg {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), db.FileName), db.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	w, err := d.DeviceWriter(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	row := db.DeviceTwin{DeviceID: "d", Name: "t", Expected: sql.NullString{String: "1", Valid: true}}
	return &leg{send: func(i int) {
		row.Actual = sql.NullString{String: strconv.Itoa(i), Valid: true}
		if err := w.Apply(ctx, db.DeviceChange{PutTwins: []db.DeviceTwin{row}}); err != nil {
			b.Fatal(err)
		}
	}, recv: func() {}}
}

// A leg is one kind of request of an interleaved benchmark: how to send
// the i-th and wait for an answer, and the latencies and time it took.
type leg struct {
	send func(i int)
	recv func()
	lat  []time.Duration
	el   time.Duration
	sent int
}

// rate returns the requests a second the leg did.
func (l *leg) rate() float64 { return float64(l.sent) / l.el.Seconds() }

// interleave runs total requests of each leg, n in flight, in rounds: each
// round runs a few windows of every leg, one leg after the other, so that
// the legs whose rates are compared see the same load on the machine. Run
// one after the other in full, the ratio of two 1 s runs swung by half on
// a shared host.
func interleave(total, n int, legs ...*leg) {
	chunk := max(64, 8*n)
	for i := 0; i < total; i += chunk {
		k := min(chunk, total-i)
		for _, l := range legs {
			lat, el := window(k, n, func(j int) { l.send(l.sent + j) }, l.recv)
			l.sent += k
			l.lat = append(l.lat, lat...)
			l.el += el
		}
	}
}

// window runs total requests, n in flight: send n, then wait for n
// answers. It returns the latency of each window and the time taken.
func window(total, n int, send func(i int), recv func()) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, 0, total/n+1)
	start := time.Now()
	for i := 0; i < total; i += n {
		k := min(n, total-i)
		t0 := time.Now()
		for j := range k {
			send(i + j)
		}
		for range k {
			recv()
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, time.Since(start)
}

// percentiles returns the p50 and p99 of lat, which it sorts.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// BenchmarkFairShare: one client floods twin updates (QoS 0, as fast as
// its connection takes them) while another, polite, client sends twin
// gets one at a time. It reports the polite client's get latency (p50 and
// p99; the budget is p99 <= 50 ms), the flood's rate and the overload
// (503) results the flooding client got. It runs on the runtime's own
// threads, not nodeProcs: its clients are in the benchmark's process,
// and a flooding client on the node's one thread would take that thread
// from the node, which a client in another process, as in the field,
// cannot (README "The flood" has that case).
func BenchmarkFairShare(b *testing.B) {
	x := startE2E(b, Config{}, nil)
	x.quiet.Store(true) // the topics twin publishes on are not recorded: main does not
	x.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	x.next() // membership/updated
	if err := mqtttest.Wait(x.c.Unsubscribe(e2eFilters...)); err != nil {
		b.Fatal(err)
	}
	const dev = "$hw/events/device/default/s1"
	got := make(chan struct{}, 1)
	if err := mqtttest.Wait(x.c.Subscribe(dev+"/twin/get/result", 0, func(paho.Client, paho.Message) { got <- struct{}{} })); err != nil {
		b.Fatal(err)
	}
	flood := mqtttest.Connect(b, mqtttest.ClientOptions(x.eb.Addr()))
	var results, overloads atomic.Int64
	if err := mqtttest.Wait(flood.Subscribe(dev+"/twin/update/result", 0, func(_ paho.Client, m paho.Message) {
		results.Add(1)
		if strings.Contains(string(m.Payload()), `"code":503`) {
			overloads.Add(1)
		}
	})); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			flood.Publish(dev+"/twin/update", 0, false, `{"event_id":"f","twin":{"temp":{"actual":{"value":"`+strconv.Itoa(i)+`"}}}}`).Wait()
			sent.Add(1)
		}
	})
	lat := make([]time.Duration, 0, b.N)
	lost := 0
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		x.c.Publish(dev+"/twin/get", 0, false, `{"event_id":"p"}`)
		select {
		case <-got:
			lat = append(lat, time.Since(t0))
		case <-time.After(time.Second):
			lost++ // counted apart: a lost answer has no latency
		}
	}
	el := time.Since(start)
	b.StopTimer()
	close(stop)
	wg.Wait()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds())/1000, "get_p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "get_p99-ms")
	b.ReportMetric(float64(lost), "gets_lost")
	b.ReportMetric(float64(sent.Load())/el.Seconds(), "flood_sent/s")
	b.ReportMetric(float64(overloads.Load())/el.Seconds(), "flood_503/s")
	b.ReportMetric(float64(results.Load()-overloads.Load())/el.Seconds(), "flood_done/s")
}
