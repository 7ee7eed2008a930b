package twin

import (
	"context"
	"encoding/json"
	"sync"

	"edgenode/bus"
)

// comm is the communication worker's state (spec 5.6): the cloud
// connection as DeviceTwin sees it and the cloud-bound messages waiting for
// a confirmation. It survives a restart of the worker goroutine.
type comm struct {
	t *Twin

	mu        sync.Mutex
	connected bool // initially disconnected: sends to the cloud are dropped
	pending   map[bus.ID]bus.Message
	order     []bus.ID // send order, for resend and for dropping the oldest
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

// send stores msg for confirmation and hands it to the hub, or drops it
// while the cloud is away.
func (c *comm) send(msg bus.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.connected {
		c.t.stats.cloudDropped.Add(1)
		return
	}
	if _, ok := c.pending[msg.Header.ID]; !ok {
		if len(c.order) >= c.t.cfg.MaxPending {
			delete(c.pending, c.order[0])
			c.order = c.order[1:]
			c.t.stats.cloudDropped.Add(1)
		}
		c.pending[msg.Header.ID] = msg
		c.order = append(c.order, msg.Header.ID)
	}
	c.t.toHub(msg)
}

func (c *comm) confirm(id bus.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; !ok {
		return
	}
	delete(c.pending, id)
	for i, o := range c.order {
		if o == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// resend sends every unconfirmed message again (spec 5.6: when the worker
// has received nothing for ResendInterval).
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
// (spec 5.6).
func (c *comm) lifeCycle(msg bus.Message) {
	s, _ := bus.ContentString(msg.Content)
	c.mu.Lock()
	was := c.connected
	c.connected = s == bus.CloudConnected
	c.mu.Unlock()
	if was || s != bus.CloudConnected {
		return
	}
	eventID := "123" // v0.3.0 sends this literal
	if c.t.cfg.Era != bus.EraV03 {
		eventID = c.t.newID()
	}
	b, _ := json.Marshal(detailRequest{EventType: "group_membership_event", EventID: eventID,
		GroupID: c.t.cfg.NodeName, Operation: string(bus.OpDetail), Timestamp: c.t.nowMS()})
	c.send(bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpGet, bus.ResMembershipDetail, bus.JSONString(string(b))))
}
