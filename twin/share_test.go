package twin

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"edgenode/bus"
)

// TestFairShare: a client with its share of requests queued gets a 503
// error result for each further one at once, on the request's result
// topic, while another client's requests are still queued; a request that
// finds the worker's queue full gets the same answer. The workers do not
// run, so the queues hold exactly what was dispatched.
func TestFairShare(t *testing.T) {
	b := bus.New(bus.Config{QueueLen: 64}, nil)
	if err := b.AddModule(bus.ModuleMQTT, bus.GroupBus); err != nil {
		t.Fatal(err)
	}
	tw, err := New(Config{NodeName: "n", QueueLen: 10, ClientShare: 4}, b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const dev = "$hw/events/device/default/s1"
	send := func(client, topic string) {
		m := bus.NewMessage(bus.ModuleBusSrc, bus.GroupUser, bus.OpResponse, topic, []byte(`{"event_id":"e","twin":{"t":{"actual":{"value":"1"}}}}`))
		m.Header.Type = client
		tw.dispatch(m)
	}
	overloads := func() (n int) {
		for b.Depth(bus.ModuleMQTT) > 0 {
			m, err := b.Receive(t.Context(), bus.ModuleMQTT)
			if err != nil {
				t.Fatal(err)
			}
			var r struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal(m.Content, &r); err != nil || r.Code != codeUnavailable || !strings.HasSuffix(m.Route.Resource, "/result") {
				t.Fatalf("publish on %s: %s, want a 503 result (%v)", m.Route.Resource, m.Content, err)
			}
			n++
		}
		return n
	}
	for range 10 {
		send("flood", dev+"/twin/update")
	}
	if n, q := overloads(), len(tw.twin.inbox); n != 6 || q != 4 {
		t.Fatalf("10 updates of one client, share 4: %d overload results, %d queued; want 6, 4", n, q)
	}
	send("polite", dev+"/twin/get")
	send("polite", dev+"/twin/get")
	if n, q := overloads(), len(tw.twin.inbox); n != 0 || q != 6 {
		t.Fatalf("2 gets of another client: %d overload results, %d queued; want 0, 6", n, q)
	}
	// A request taken from the queue frees one place of its client's share.
	j := <-tw.twin.inbox
	tw.done(j)
	send("flood", dev+"/twin/update")
	send("flood", dev+"/twin/update")
	if n, q := overloads(), len(tw.twin.inbox); n != 1 || q != 6 {
		t.Fatalf("2 more updates after one was taken: %d overload results, %d queued; want 1, 6", n, q)
	}
	// The queue (10) fills before a third client's share does.
	for i := range 5 {
		send("c"+strconv.Itoa(i), dev+"/twin/get")
	}
	if n, q := overloads(), len(tw.twin.inbox); n != 1 || q != 10 {
		t.Fatalf("5 gets of new clients into 4 free places: %d overload results, %d queued; want 1, 10", n, q)
	}
	if s := tw.Stats(); s.Overloaded != 8 {
		t.Errorf("Stats().Overloaded = %d, want 8", s.Overloaded)
	}
	if n := tw.share.Clients(); n != 6 {
		t.Errorf("clients holding a share = %d, want 6 (flood, polite, c0-c3)", n)
	}
}
