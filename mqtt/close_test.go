package mqtt

import (
	"strconv"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestClientsListedWhileOneLeaves: the broker lists a listener's clients
// as it closes (Clients.GetByListener) while a client that ends removes
// itself (Clients.Delete). mochi v2.7.9 read-locked the client map twice
// in GetByListener, and a Delete waiting between the two read locks
// deadlocked both: the node then hung in its shutdown. Patched in
// third_party/mochi-mqtt-server (its README).
func TestClientsListedWhileOneLeaves(t *testing.T) {
	cl := mochi.NewClients()
	for i := range 8 {
		c := &mochi.Client{ID: "c" + strconv.Itoa(i)}
		c.Net.Listener = "t"
		cl.Add(c)
	}
	noDeadlock(t, func(i int) {
		c := &mochi.Client{ID: "x" + strconv.Itoa(i%4)}
		c.Net.Listener = "t"
		cl.Add(c)
		cl.Delete(c.ID)
	}, func() { _ = cl.GetByListener("t") })
}

// TestInflightNextWhileChanged: the same double read lock was in
// Inflight.NextImmediate, which the broker calls when a client
// acknowledges a QoS 1 or 2 message while others are set or deleted.
func TestInflightNextWhileChanged(t *testing.T) {
	in := mochi.NewInflights()
	noDeadlock(t, func(i int) {
		id := uint16(i%4 + 1)
		in.Set(packets.Packet{PacketID: id, Expiry: -1})
		in.Delete(id)
	}, func() { _, _ = in.NextImmediate() })
}

// noDeadlock runs read for a second while two goroutines run change
// (with a counter) as fast as they can, and fails if read does not end
// within a minute.
func noDeadlock(t *testing.T, change func(i int), read func()) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				change(i)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			read()
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("deadlocked")
	}
	close(stop)
	wg.Wait()
}
