package mqtt

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// matches is MQTT 3.1.1's filter matching (4.7): '+' is one level, a
// final '#' the rest, none included ("a/#" matches "a"), and, with
// dollar, a topic starting with '$' is not matched by a filter starting
// with a wildcard (4.7.2). The oracle of TestSubscribersMatchFilters.
func matches(filter, topic string, dollar bool) bool {
	if dollar && strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, l := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, p := range f {
		switch {
		case p == "#":
			return true
		case i >= len(l):
			return false
		case p != "+" && p != l[i]:
			return false
		}
	}
	return len(f) == len(l)
}

// The broker's index walks a topic's levels under one lock, with no
// lock of its own per level (third_party/mochi-mqtt-server/README.md).
// Whatever the filters, it must find the subscriptions MQTT matches: of
// clients, shared and inline. As in mochi-mqtt v2.7.9 before the
// patch, the '$' rule holds for clients' subscriptions only, and an
// inline "a/#" does not match "a" (broker works around that with a
// second filter, inlineFilters).
func TestSubscribersMatchFilters(t *testing.T) {
	filters := []string{"#", "+", "a", "a/#", "a/+", "a/b", "a/b/c", "+/b", "+/+/c", "+/b/#", "a//c", "/a", "/+",
		"$hw/#", "$hw/events/device/+/twin/+", "$hw/events/device/+/+/twin/+", "$hw/events/device/d/ns/twin/update/result",
		"x/y/z/#", "x/+/z", "+/user/#"}
	topics := []string{"a", "a/b", "a/b/c", "a/b/c/d", "x/b", "x/b/c", "a//c", "/a", "/", "//", "b", "x/y/z", "x/y/z/w",
		"x/q/z", "n/user", "n/user/v", "$hw/events/device/d/twin/update", "$hw/events/device/d/ns/twin/update",
		"$hw/events/device/d/ns/twin/update/result", "$SYS/a"}
	x := mochi.NewTopicsIndex()
	for i, f := range filters {
		x.Subscribe("c"+strconv.Itoa(i), packets.Subscription{Filter: f})
		x.Subscribe("s"+strconv.Itoa(i), packets.Subscription{Filter: "$share/g/" + f})
		x.InlineSubscribe(mochi.InlineSubscription{Subscription: packets.Subscription{Filter: f, Identifier: i + 1},
			Handler: func(*mochi.Client, packets.Subscription, packets.Packet) {}})
	}
	for _, topic := range topics {
		var wantC, wantS, gotC, gotS []string
		var wantI, gotI []int
		for i, f := range filters {
			if matches(f, topic, true) {
				wantC = append(wantC, "c"+strconv.Itoa(i))
			}
			if !matches(f, topic, false) {
				continue
			}
			wantS = append(wantS, "$share/g/"+f)
			if !strings.HasSuffix(f, "/#") || strings.Count(f, "/") != strings.Count(topic, "/")+1 {
				wantI = append(wantI, i+1) // not "a/#" for "a"
			}
		}
		subs := x.Subscribers(topic)
		for c := range subs.Subscriptions {
			gotC = append(gotC, c)
		}
		for f := range subs.Shared {
			gotS = append(gotS, f)
		}
		for id := range subs.InlineSubscriptions {
			gotI = append(gotI, id)
		}
		slices.Sort(wantC)
		slices.Sort(wantS)
		slices.Sort(gotC)
		slices.Sort(gotS)
		slices.Sort(gotI)
		if !slices.Equal(gotC, wantC) || !slices.Equal(gotS, wantS) || !slices.Equal(gotI, wantI) {
			t.Errorf("Subscribers(%q):\nclients %v, want %v\nshared %v, want %v\ninline %v, want %v", topic, gotC, wantC, gotS, wantS, gotI, wantI)
		}
	}
}

// Routing reads the index while clients subscribe and unsubscribe: under
// the race detector, and without deadlock.
func TestSubscribersWhileSubscribing(t *testing.T) {
	x := mochi.NewTopicsIndex()
	x.Subscribe("stay", packets.Subscription{Filter: "a/+/c"})
	noDeadlock(t, func(i int) {
		f := []string{"a/b/c", "a/#", "+/b/+", "$share/g/a/b/c"}[i%4]
		x.Subscribe("c"+strconv.Itoa(i%3), packets.Subscription{Filter: f})
		x.Unsubscribe(f, "c"+strconv.Itoa(i%3))
	}, func() {
		if _, ok := x.Subscribers("a/b/c").Subscriptions["stay"]; !ok {
			t.Error("Subscribers(a/b/c) lost a subscription not changed meanwhile")
		}
	})
}

// Retained messages are looked up for a wildcard subscribe while others
// are retained and cleared: under the race detector (mochi-mqtt v2.7.9
// read a level's retained topic under no lock), and without deadlock.
func TestRetainedWhileSubscribing(t *testing.T) {
	x := mochi.NewTopicsIndex()
	stay := packets.Packet{TopicName: "a/stay/c", Payload: []byte("x"), FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}}
	x.RetainMessage(stay)
	noDeadlock(t, func(i int) {
		pk := packets.Packet{TopicName: "a/b" + strconv.Itoa(i%3) + "/c", FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}}
		if i%2 == 0 {
			pk.Payload = []byte("y")
		}
		x.RetainMessage(pk)
	}, func() {
		if !slices.ContainsFunc(x.Messages("a/+/c"), func(pk packets.Packet) bool { return pk.TopicName == stay.TopicName }) {
			t.Error("Messages(a/+/c) lost a retained message not changed meanwhile")
		}
	})
}

// BenchmarkSubscribers: routing one twin result through an index that
// holds the node's static filters (inline) and a client's subscription
// to the result, as in twin's BenchmarkEndToEnd.
func BenchmarkSubscribers(b *testing.B) {
	x := mochi.NewTopicsIndex()
	for i, f := range StaticTopics() {
		x.InlineSubscribe(mochi.InlineSubscription{Subscription: packets.Subscription{Filter: f, Identifier: i + 1},
			Handler: func(*mochi.Client, packets.Subscription, packets.Packet) {}})
	}
	const topic = "$hw/events/device/default/s1/twin/update/result"
	x.Subscribe("app", packets.Subscription{Filter: topic})
	b.ReportAllocs()
	for b.Loop() {
		if len(x.Subscribers(topic).Subscriptions) != 1 {
			b.Fatal("no subscriber")
		}
	}
}

// TestKeptRoutesWhileSubscribing: the broker keeps a topic's subscribers
// for its next publish (third_party/mochi-mqtt-server/README.md) and
// shares them between publishes on several goroutines while others
// subscribe and unsubscribe, inline and shared. Every publish must reach
// the one subscription that never changes; the race detector checks
// that a kept route is only read.
func TestKeptRoutesWhileSubscribing(t *testing.T) {
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	var stay atomic.Int64
	if err := srv.Subscribe("a/+/c", 1, func(*mochi.Client, packets.Subscription, packets.Packet) { stay.Add(1) }); err != nil {
		t.Fatal(err)
	}
	nop := func(*mochi.Client, packets.Subscription, packets.Packet) {}
	var sent atomic.Int64
	noDeadlock(t, func(i int) {
		f := []string{"a/b/c", "a/#", "+/b/+", "a/b/#"}[i%4]
		if err := srv.Subscribe(f, 2+i%3, nop); err != nil {
			t.Error(err)
		}
		if err := srv.Unsubscribe(f, 2+i%3); err != nil {
			t.Error(err)
		}
		x := srv.Topics
		x.Subscribe("c"+strconv.Itoa(i%3), packets.Subscription{Filter: "$share/g/" + f})
		x.Unsubscribe("$share/g/"+f, "c"+strconv.Itoa(i%3))
	}, func() {
		var wg sync.WaitGroup
		for _, topic := range []string{"a/b/c", "a/x/c", "a/b/c"} {
			wg.Go(func() {
				if err := srv.Publish(topic, []byte("x"), false, 0); err != nil {
					t.Error(err)
				}
				sent.Add(1)
			})
		}
		wg.Wait()
	})
	if got, want := stay.Load(), sent.Load(); got != want {
		t.Errorf("the unchanged subscription got %d of %d publishes", got, want)
	}
}
