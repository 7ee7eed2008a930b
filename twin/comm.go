package twin

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"edgenode/bus"
)

// comm is the communication worker's state (docs/protocol.md 5.6): the cloud
// connection as DeviceTwin sees it and the cloud-bound messages waiting for
// a confirmation. It survives a restart of the worker goroutine.
type comm struct {
	t *Twin

	mu        sync.Mutex
	connected bool // initially disconnected: sends to the cloud are held
	pending   map[bus.ID]bus.Message
	order     []bus.ID // send order, for resend and for dropping the oldest
	held      []bus.ID // pending, made while disconnected, not yet sent
}

func (c *comm) handle(ctx context.Context, j job) {
	switch j.act {
	case actSendToCloud:
		c.send(j.msg)
	case actConfirm:
		c.confirm(j.msg.Header.ParentID)
	case actLifeCycle:
		c.lifeCycle(j.msg)
	}
}

// send stores msg for confirmation and hands it to the hub. While the
// cloud is away it is only stored, and goes out in order when the link
// comes back (lifeCycle): a report made offline must reach the cloud, or
// the cloud's copy of the twin stays stale. At most MaxPending messages
// wait; beyond that the oldest is dropped and counted.
func (c *comm) send(msg bus.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[msg.Header.ID]; !ok {
		if len(c.order) >= c.t.cfg.MaxPending {
			c.forget(c.order[0])
			c.t.stats.cloudDropped.Add(1)
		}
		c.pending[msg.Header.ID] = msg
		c.order = append(c.order, msg.Header.ID)
	}
	if !c.connected {
		c.held = append(c.held, msg.Header.ID)
		return
	}
	c.t.toHub(msg)
}

// forget removes id from pending, order and held; c.mu is held.
func (c *comm) forget(id bus.ID) {
	delete(c.pending, id)
	c.order = slices.DeleteFunc(c.order, func(o bus.ID) bool { return o == id })
	c.held = slices.DeleteFunc(c.held, func(o bus.ID) bool { return o == id })
}

func (c *comm) confirm(id bus.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		c.forget(id)
	}
}

// resend sends every unconfirmed message again (docs/protocol.md 5.6: when the
// worker has received nothing for ResendInterval).
func (c *comm) resend(context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.connected {
		return
	}
	for _, id := range c.order {
		c.t.stats.resent.Add(1)
		c.t.toHub(c.pending[id])
	}
}

// lifeCycle follows the node/connection events. On the way from
// disconnected to connected it asks the cloud for the membership detail
// (docs/protocol.md 5.6).
func (c *comm) lifeCycle(msg bus.Message) {
	s, _ := bus.ContentString(msg.Content)
	c.mu.Lock()
	was := c.connected
	c.connected = s == bus.CloudConnected
	var held []bus.Message
	if !was && c.connected {
		for _, id := range c.held {
			held = append(held, c.pending[id])
		}
		c.held = c.held[:0]
	}
	c.mu.Unlock()
	if was || s != bus.CloudConnected {
		return
	}
	for _, m := range held {
		c.t.toHub(m) // in the order they were made
	}
	eventID := "123" // v0.3.0 sends this literal
	if c.t.cfg.Era != bus.EraV03 {
		eventID = c.t.newID()
	}
	b, _ := json.Marshal(detailRequest{EventType: "group_membership_event", EventID: eventID,
		GroupID: c.t.cfg.NodeName, Operation: string(bus.OpDetail), Timestamp: c.t.nowMS()})
	c.send(bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpGet, bus.ResMembershipDetail, bus.JSONString(string(b))))
}
