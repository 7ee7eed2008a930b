package twin

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"edgenode/bus"
)

// comm is the communication worker's state (spec 5.6): the cloud
// connection as DeviceTwin sees it and the cloud-bound messages waiting for
// a confirmation. It survives a restart of the worker goroutine.
type comm struct {
	t *Twin

	mu        sync.Mutex
	connected bool // initially disconnected: sends to the cloud are held
	pending   map[bus.ID]pendingMsg
	seq       uint64
	// order (send order, for resend and for dropping the oldest) and held
	// (made while disconnected, not yet sent) name pending messages. A
	// confirmed message leaves pending at once and these lists lazily: an
	// entry whose seq is not its message's in pending is skipped, and a list
	// is compacted when most of it is such entries. Removing each confirmed
	// id from both lists cost a scan of up to MaxPending ids per message.
	order []pendingRef
	held  []pendingRef
}

// pendingMsg is a cloud-bound message waiting for its confirmation.
type pendingMsg struct {
	msg bus.Message
	seq uint64
}

// pendingRef names one send of a pending message.
type pendingRef struct {
	id  bus.ID
	seq uint64
}

// live reports whether r still names a pending message; c.mu is held.
func (c *comm) live(r pendingRef) bool {
	p, ok := c.pending[r.id]
	return ok && p.seq == r.seq
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
	p, ok := c.pending[msg.Header.ID]
	if !ok {
		for len(c.pending) >= c.t.cfg.MaxPending {
			c.dropOldest()
			c.t.stats.cloudDropped.Add(1)
		}
		c.seq++
		p = pendingMsg{msg: msg, seq: c.seq}
		c.pending[msg.Header.ID] = p
		c.order = append(c.order, pendingRef{msg.Header.ID, p.seq})
	}
	if !c.connected {
		c.held = append(c.held, pendingRef{msg.Header.ID, p.seq})
		return
	}
	c.t.toHub(msg)
}

// dropOldest forgets the oldest pending message; c.mu is held and pending
// is not empty.
func (c *comm) dropOldest() {
	for len(c.order) > 0 {
		r := c.order[0]
		c.order = c.order[1:]
		if c.live(r) {
			c.forget(r.id)
			return
		}
	}
}

// forget removes id from pending; c.mu is held. order and held keep their
// entry until they are compacted.
func (c *comm) forget(id bus.ID) {
	delete(c.pending, id)
	c.order = c.compact(c.order)
	c.held = c.compact(c.held)
}

// compact drops the entries of list that no longer name a pending message,
// once they are more than half of it.
func (c *comm) compact(list []pendingRef) []pendingRef {
	if len(list) < 64 || len(list) <= 2*len(c.pending) {
		return list
	}
	return slices.DeleteFunc(list, func(r pendingRef) bool { return !c.live(r) })
}

func (c *comm) confirm(id bus.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		c.forget(id)
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
	for _, r := range c.order {
		if c.live(r) {
			c.t.stats.resent.Add(1)
			c.t.toHub(c.pending[r.id].msg)
		}
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
	var held []bus.Message
	if !was && c.connected {
		for _, r := range c.held {
			if c.live(r) {
				held = append(held, c.pending[r.id].msg)
			}
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
