package mqtt

import (
	"log/slog"
	"testing"

	"edgenode/bus"
)

// TestPaceYields: the client goroutines that hand published messages on
// yield once every paceEvery messages, whatever the messages' way (to
// DeviceTwin or to the cloud).
func TestPaceYields(t *testing.T) {
	b := bus.New(bus.Config{QueueLen: 1024}, nil)
	for _, m := range []struct {
		name  bus.Module
		group bus.Group
	}{{bus.ModuleTwin, bus.GroupTwin}, {bus.ModuleHub, bus.GroupHub}} {
		if err := b.AddModule(m.name, m.group); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(Config{Internal: BrokerConfig{Listen: "127.0.0.1:0"}}, b, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	yields := 0
	e.yield = func() { yields++ }
	for i := range 4*paceEvery + paceEvery/2 {
		topic := "$hw/events/upload/sensor"
		if i%4 == 0 {
			topic = "$hw/events/device/default/d1/twin/get"
		}
		e.deliver("c1", topic, []byte(`{"event_id":"e"}`))
	}
	if yields != 4 {
		t.Errorf("%d messages: %d yields, want 4 (one per %d)", 4*paceEvery+paceEvery/2, yields, paceEvery)
	}
}
