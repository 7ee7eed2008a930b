package twin

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// batchTwin is a Twin that has not been run, with device s1 of addS1,
// and mk, which classifies a message as the module would.
func batchTwin(t *testing.T) (*Twin, *bus.Bus, *db.DB, func(topic, payload string) job) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	b := bus.New(bus.Config{QueueLen: 256}, nil)
	b.AddModule(bus.ModuleMQTT, bus.GroupBus)
	b.AddModule(bus.ModuleHub, bus.GroupHub)
	tw, err := New(Config{NodeName: "n"}, b, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	tw.now = func() time.Time { return fixedNow }
	if err := tw.store.load(ctx); err != nil {
		t.Fatal(err)
	}
	var add membershipUpdate
	if err := json.Unmarshal([]byte(addS1), &add); err != nil {
		t.Fatal(err)
	}
	if err := tw.applyMembership(ctx, "", add.Added, nil, false, dealSync); err != nil {
		t.Fatal(err)
	}
	b.Receive(ctx, bus.ModuleMQTT) // membership/updated
	return tw, b, d, func(topic, payload string) job {
		j, w := tw.classify(bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, topic, []byte(payload)))
		if w == nil {
			t.Fatalf("classify(%s) found no worker", topic)
		}
		return j
	}
}

// Twin updates queued together are committed in one transaction, and
// still answered one by one, in order, each with its own delta; a bad
// one in the middle leaves no trace.
func TestTwinUpdateBatch(t *testing.T) {
	ctx := context.Background()
	tw, b, d, mk := batchTwin(t)
	const dev = "$hw/events/device/default/s1"
	first := mk(dev+"/twin/update", `{"event_id":"1","twin":{"temp":{"actual":{"value":"3"}}}}`)
	for _, j := range []job{
		mk(dev+"/twin/update", `{"event_id":"2","twin":{"temp":{"actual":{"value":"5"}}}}`),
		mk(dev+"/twin/update", `{"event_id":"3","twin":{"new":{"actual":{"value":"x"}},"temp":{"actual":{"value":"oops"}}}}`),
		mk(dev+"/twin/update", `{"event_id":"4","twin":{"temp":{"actual":{"value":"7"}}}}`),
		mk(dev+"/twin/get", `{"event_id":"5"}`),
	} {
		tw.twin.inbox <- &j
	}
	tw.twinUpdates(ctx, first)

	var got []string
	for b.Depth(bus.ModuleMQTT) > 0 {
		m, _ := b.Receive(ctx, bus.ModuleMQTT)
		p := string(m.Content)
		var r struct {
			EventID string            `json:"event_id"`
			Code    int               `json:"code"`
			Delta   map[string]string `json:"delta"`
			Twin    map[string]struct {
				Actual struct{ Value string } `json:"actual"`
			} `json:"twin"`
		}
		json.Unmarshal([]byte(p), &r)
		s := strings.TrimPrefix(m.Route.Resource, dev+"/twin/")
		switch {
		case r.Code != 0:
			s += " " + r.EventID + " error"
		case strings.HasSuffix(s, "delta"), strings.HasSuffix(s, "get/result"):
			s += " actual=" + r.Twin["temp"].Actual.Value
		default:
			s += " " + r.EventID
		}
		got = append(got, s)
	}
	want := []string{
		"update/result 1", "update/document 1", "update/delta actual=3",
		"update/result 2", "update/document 2", "update/delta actual=5",
		"update/result 3 error",
		"update/result 4", "update/document 4", "update/delta actual=7",
		"get/result actual=7",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("publishes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	twins, _ := d.DeviceTwins(ctx)
	if len(twins) != 1 || twins[0].Actual.String != "7" || twins[0].ActualVersion != `{"cloud":1,"edge":4}` {
		t.Errorf("rows = %+v, want only temp with actual 7, edge version 4", twins)
	}
}

// An empty queue does not end a batch at once: the worker gives way and
// takes what arrived meanwhile, as long as giving way brought more. Here
// each of the first two yields hands on one more update, as the broker's
// client goroutine does when it runs; the three are one commit.
func TestTwinUpdateBatchYields(t *testing.T) {
	ctx := context.Background()
	tw, b, d, mk := batchTwin(t)
	const topic = "$hw/events/device/default/s1/twin/update"
	later := []job{
		mk(topic, `{"event_id":"2","twin":{"temp":{"actual":{"value":"5"}}}}`),
		mk(topic, `{"event_id":"3","twin":{"temp":{"actual":{"value":"7"}}}}`),
	}
	yields := 0
	tw.yield = func() {
		if yields < len(later) {
			tw.twin.inbox <- &later[yields]
		}
		yields++
	}
	tw.twinUpdates(ctx, mk(topic, `{"event_id":"1","twin":{"temp":{"actual":{"value":"3"}}}}`))

	if s := tw.Stats(); s.Commits != 1 || s.Committed != 3 {
		t.Errorf("commits %d of %d updates, want 1 of 3", s.Commits, s.Committed)
	}
	if yields != 3 {
		t.Errorf("yielded %d times, want 3 (the last one brought nothing)", yields)
	}
	var results []string
	for b.Depth(bus.ModuleMQTT) > 0 {
		m, _ := b.Receive(ctx, bus.ModuleMQTT)
		if strings.HasSuffix(m.Route.Resource, "/result") {
			var r struct {
				EventID string `json:"event_id"`
			}
			json.Unmarshal(m.Content, &r)
			results = append(results, r.EventID)
		}
	}
	if strings.Join(results, " ") != "1 2 3" {
		t.Errorf("results for %q, want 1 2 3 in order", results)
	}
	twins, _ := d.DeviceTwins(ctx)
	if len(twins) != 1 || twins[0].Actual.String != "7" {
		t.Errorf("rows = %+v, want temp with actual 7", twins)
	}

	// A lone update gives way once and is committed on its own.
	yields = len(later)
	tw.twinUpdates(ctx, mk(topic, `{"event_id":"4","twin":{"temp":{"actual":{"value":"9"}}}}`))
	if s := tw.Stats(); s.Commits != 2 || s.Committed != 4 || yields != len(later)+1 {
		t.Errorf("commits %d of %d updates after %d more yields, want 2 of 4 after 1", s.Commits, s.Committed, yields-len(later))
	}
}

// The updates of one group commit reach the communication worker as one
// report per device, merged as that worker merges the reports that wait
// (merge.go): the newest side of each twin, the twins of every update.
func TestTwinUpdateBatchReport(t *testing.T) {
	ctx := context.Background()
	tw, _, _, mk := batchTwin(t)
	const topic = "$hw/events/device/default/s1/twin/update"
	for _, p := range []string{
		`{"event_id":"2","twin":{"temp":{"actual":{"value":"oops"}}}}`,
		`{"event_id":"3","twin":{"temp":{"actual":{"value":"5"}}}}`,
		`{"event_id":"4","twin":{"hum":{"expected":{"value":"40"}}}}`,
	} {
		j := mk(topic, p)
		tw.twin.inbox <- &j
	}
	tw.twinUpdates(ctx, mk(topic, `{"event_id":"1","twin":{"temp":{"actual":{"value":"3"}}}}`))

	if n := len(tw.com.inbox); n != 1 {
		t.Fatalf("%d jobs for the communication worker, want 1", n)
	}
	j := <-tw.com.inbox
	if j.act != actSendToCloud || j.twins == nil || j.msg.Route.Resource != "device/default/s1/"+bus.ResTwinEdgeUpdated {
		t.Fatalf("job %v for %q with twins %v, want a twin report of s1", j.act, j.msg.Route.Resource, j.twins)
	}
	temp, hum := j.twins.Twin["temp"], j.twins.Twin["hum"]
	if len(j.twins.Twin) != 2 || temp == nil || temp.Actual == nil || *temp.Actual.Value != "5" ||
		temp.ActualVersion == nil || temp.ActualVersion.Edge != 3 || hum == nil || hum.Expected == nil || *hum.Expected.Value != "40" {
		b, _ := json.Marshal(j.twins)
		t.Errorf("report %s, want temp actual 5 at edge version 3 and hum expected 40", b)
	}
}

// The jobs a batch takes from the inbox go back to the pool once the
// batch is answered (jobPool), emptied.
func TestTwinUpdateBatchFreesJobs(t *testing.T) {
	ctx := context.Background()
	tw, _, _, mk := batchTwin(t)
	const topic = "$hw/events/device/default/s1/twin/update"
	var taken []*job
	for _, v := range []string{"5", "7"} {
		p := tw.jobs.get(mk(topic, `{"event_id":"`+v+`","twin":{"temp":{"actual":{"value":"`+v+`"}}}}`))
		taken = append(taken, p)
		tw.twin.inbox <- p
	}
	next := tw.jobs.get(mk(topic[:len(topic)-len("update")]+"get", `{"event_id":"g"}`))
	taken = append(taken, next)
	tw.twin.inbox <- next
	tw.twinUpdates(ctx, mk(topic, `{"event_id":"1","twin":{"temp":{"actual":{"value":"3"}}}}`))
	if s := tw.Stats(); s.Committed != 3 {
		t.Fatalf("%d updates committed, want 3", s.Committed)
	}
	for i, p := range taken {
		if p.act != actNone || p.payload != nil || p.topic != "" {
			t.Errorf("job %d (%v %q) not given back emptied", i, p.act, p.topic)
		}
	}
}

// A batch asks once per device whether clients subscribe to the
// document and the delta (wants), not once per update.
func TestTwinUpdateBatchAsksOnce(t *testing.T) {
	ctx := context.Background()
	tw, b, _, mk := batchTwin(t)
	var asked []string
	tw.cfg.Subscribed = func(topic string) bool {
		asked = append(asked, topic)
		return strings.HasSuffix(topic, "/document")
	}
	const topic = "$hw/events/device/default/s1/twin/update"
	for _, v := range []string{"5", "7"} {
		j := mk(topic, `{"event_id":"`+v+`","twin":{"temp":{"actual":{"value":"`+v+`"}}}}`)
		tw.twin.inbox <- &j
	}
	tw.twinUpdates(ctx, mk(topic, `{"event_id":"3","twin":{"temp":{"actual":{"value":"3"}}}}`))
	if len(asked) != 2 {
		t.Errorf("asked about %q, want the document and the delta once", asked)
	}
	var got []string
	for b.Depth(bus.ModuleMQTT) > 0 {
		m, _ := b.Receive(ctx, bus.ModuleMQTT)
		got = append(got, strings.TrimPrefix(m.Route.Resource, "$hw/events/device/default/s1/twin/update"))
	}
	if want := "/result /document /result /document /result /document"; strings.Join(got, " ") != want {
		t.Errorf("published %q, want %s", got, want)
	}
}
