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

// Twin updates queued together are committed in one transaction, and
// still answered one by one, in order, each with its own delta; a bad
// one in the middle leaves no trace.
func TestTwinUpdateBatch(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), db.FileName), db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
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

	const dev = "$hw/events/device/default/s1"
	mk := func(topic, payload string) job {
		j, w := tw.classify(bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, topic, []byte(payload)))
		if w == nil {
			t.Fatalf("classify(%s) found no worker", topic)
		}
		return j
	}
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
