package hub

import (
	"edgenode/bus"
)

// toEdge routes one message from the cloud (docs/protocol.md 2.1 and 2.4 "Cloud
// -> edge dispatch"). Viaduct control messages are answered here; answers to
// our probes end here; a reply whose parent a SendSync waits for goes to that
// waiter; the rest goes by route.group. It returns the answer to write back, if
// any.
func (c *Client) toEdge(m bus.Message) (reply bus.Message, ok bool) {
	switch m.Route.Operation {
	case bus.OpConfig, bus.OpPing, bus.OpPong:
		return m.Resp(bus.JSONString(ackContent)), true
	case bus.OpResponse:
		if c.isPingAck(m) {
			return reply, false
		}
	}
	var err error
	switch m.Route.Group {
	case bus.GroupResource, bus.GroupFunc:
		if c.deliverResp(m) {
			return reply, false
		}
		err = c.b.Send2Group(bus.GroupMeta, m)
	case bus.GroupTwin:
		// DeviceTwin matches its own replies (docs/protocol.md 2.4, twin
		// handler).
		err = c.b.Send2Group(bus.GroupTwin, m)
	case bus.GroupUser:
		if c.deliverResp(m) {
			return reply, false
		}
		err = c.b.Send2Group(bus.GroupBus, m)
	default:
		c.unknownGroups.Add(1)
		c.log.Debug("message for unknown group dropped", "group", m.Route.Group, "op", m.Route.Operation, "resource", m.Route.Resource)
		return reply, false
	}
	if err != nil {
		c.edgeDrops.Add(1)
		c.log.Debug("message to edge not delivered", "group", m.Route.Group, "resource", m.Route.Resource, "err", err)
	}
	return reply, false
}

// onFrame handles one frame from the cloud: a frame that is not a
// message is counted and dropped; a message is routed. It returns the
// answer to write back, if any.
func (c *Client) onFrame(data []byte) (bus.Message, bool) {
	c.framesIn.Add(1)
	m, err := bus.Decode(data)
	if err != nil {
		c.badFrames.Add(1)
		c.log.Debug("bad frame, dropped", "err", err, "len", len(data))
		return bus.Message{}, false
	}
	return c.toEdge(m)
}

// deliverResp hands m to the SendSync waiting for its parent, if any.
func (c *Client) deliverResp(m bus.Message) bool {
	p := m.Header.ParentID
	return !p.IsZero() && c.b.IsWaiting(p) && c.b.SendResp(m)
}
