package twin

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
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
	pending   map[bus.ID]pendingMsg
	seq       uint64
	// order names the pending messages in the order they were made, for
	// resend, for dropping the oldest and for sending the held ones on
	// reconnect. A confirmed message leaves pending at once and order
	// lazily: an entry whose seq is not its message's in pending is
	// skipped, and order is compacted when most of it is such entries.
	// Removing each confirmed id from it cost a scan of up to MaxPending
	// ids per message.
	order []pendingRef
	// reports holds, per device report (reportKey), the one sent and not
	// yet confirmed and the one waiting to go next, into which newer
	// reports are merged (merge.go).
	reports map[string]reportSlot
	// confirmed holds, per device twin report (reportKey), the twins the
	// cloud has confirmed a report of since the link last came up, or
	// since the device was last removed (repeatNew, forgetDevices,
	// lifeCycle).
	confirmed map[string]map[string]struct{}
}

// pendingMsg is a cloud-bound message waiting for its confirmation.
type pendingMsg struct {
	msg bus.Message
	seq uint64
	// key is the device report msg is (reportKey), "" for a message that
	// is never merged.
	key string
	// twins is an edge_updated report's content, kept to merge newer
	// reports into; msg.Content is encoded from it when it is sent.
	twins *twinMessage
	sent  bool  // handed to the hub; otherwise held or waiting (reportSlot)
	at    int64 // when it was last handed to the hub, Unix ms
}

// pendingRef names one send of a pending message.
type pendingRef struct {
	id  bus.ID
	seq uint64
}

// reportSlot is the state of one device report. sent is unconfirmed at
// the cloud; next is not sent yet: held while the cloud is away, or
// waiting for sent to be confirmed. Either may be the zero id.
type reportSlot struct {
	sent, next bus.ID
}

// live reports whether r still names a pending message; c.mu is held.
func (c *comm) live(r pendingRef) bool {
	p, ok := c.pending[r.id]
	return ok && p.seq == r.seq
}

func (c *comm) handle(ctx context.Context, j job) {
	switch j.act {
	case actSendToCloud:
		c.send(j.msg, j.twins)
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
//
// A device's twin and state reports go one at a time: while one is
// unconfirmed or held, a newer one is merged into the report that goes
// next (merge.go), so a burst of updates to one device costs the cloud
// link a handful of messages, not one per update. twins, if set, is the
// content of an edge_updated msg, which then has none yet.
func (c *comm) send(msg bus.Message, twins *twinMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pending[msg.Header.ID]; ok {
		if c.connected && p.sent {
			c.transmit(msg.Header.ID, p)
		}
		return
	}
	key := reportKey(msg)
	if key != "" && twins == nil && strings.HasSuffix(key, "/"+bus.ResTwinEdgeUpdated) {
		if twins = c.decode(msg.Content); twins == nil {
			key = "" // unreadable: sent as it is, never merged
		}
	}
	if next := c.reports[key].next; key != "" {
		if p, ok := c.pending[next]; ok {
			c.pending[next] = merge(p, msg, twins)
			c.supersede(key)
			return
		}
	}
	c.add(msg, key, twins)
}

// add stores msg as a new pending message, first dropping the oldest if
// MaxPending are pending, and sends it unless the cloud is away or msg is
// a device report that must wait for the one before it; c.mu is held.
func (c *comm) add(msg bus.Message, key string, twins *twinMessage) {
	for len(c.pending) >= c.t.cfg.MaxPending {
		c.dropOldest()
		c.t.stats.cloudDropped.Add(1)
	}
	c.seq++
	id := msg.Header.ID
	p := pendingMsg{msg: msg, seq: c.seq, key: key, twins: twins}
	c.pending[id] = p
	c.order = append(c.order, pendingRef{id, p.seq})
	s := c.reports[key]
	_, waiting := c.pending[s.sent]
	switch {
	case !c.connected && key == "":
	case key == "":
		c.transmit(id, p)
	case waiting || !c.connected:
		s.next = id
		c.reports[key] = s
		c.supersede(key)
	default:
		s.sent = id
		c.reports[key] = s
		c.transmit(id, p)
	}
}

// transmit hands the pending message id to the hub, encoding a merged
// report first; c.mu is held.
func (c *comm) transmit(id bus.ID, p pendingMsg) {
	if p.twins != nil && p.msg.Content == nil {
		p.msg.Content = p.twins.appendJSON(make([]byte, 0, 512))
	}
	p.sent, p.at = true, c.t.nowMS()
	c.pending[id] = p
	c.t.toHub(p.msg)
}

// supersede gives up waiting for the confirmation of key's sent report
// when it is older than ResendInterval and a next one waits: the sent
// report is folded into the next, which goes out in its place. Without
// this a report the cloud never confirms would hold the device's reports
// back for as long as updates keep the worker from being idle (resend).
// c.mu is held.
func (c *comm) supersede(key string) {
	s := c.reports[key]
	sent, ok := c.pending[s.sent]
	if !ok || !c.connected || c.t.nowMS()-sent.at < c.t.cfg.ResendInterval.Milliseconds() {
		return
	}
	c.fold(key)
}

// fold merges key's sent report into its next one, forgets the sent one
// and sends the next in its place; c.mu is held and both are pending.
func (c *comm) fold(key string) {
	s := c.reports[key]
	sent, next := c.pending[s.sent], c.pending[s.next]
	// A twin report takes in the twins and sides only the sent one has;
	// of a state report the newer one is all of it.
	if next.twins != nil {
		mergeTwins(next.twins, sent.twins, false)
		next.msg.Content = nil
	}
	c.reports[key] = reportSlot{next: s.next} // forget must not send next
	c.forget(s.sent)
	c.reports[key] = reportSlot{sent: s.next}
	c.transmit(s.next, next)
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

// forget removes id from pending; c.mu is held. order keeps its entry
// until it is compacted. A device report's next one goes out once the one
// before it is gone, if the cloud is there.
func (c *comm) forget(id bus.ID) {
	p := c.pending[id]
	delete(c.pending, id)
	c.order = c.compact(c.order)
	if p.key == "" {
		return
	}
	s := c.reports[p.key]
	switch id {
	case s.sent:
		s.sent = bus.ID{}
		if n, ok := c.pending[s.next]; ok && c.connected {
			s.sent, s.next = s.next, bus.ID{}
			c.reports[p.key] = s
			c.transmit(s.sent, n)
			return
		}
	case s.next:
		s.next = bus.ID{}
	}
	if s == (reportSlot{}) {
		delete(c.reports, p.key)
		return
	}
	c.reports[p.key] = s
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
	p, ok := c.pending[id]
	if !ok {
		return
	}
	// A repeat goes with the report waiting next, as older than it, or
	// else right after the confirmed one.
	repeat := c.repeatNew(p)
	nextID := c.reports[p.key].next
	next, waiting := c.pending[nextID]
	if repeat != nil && waiting {
		mergeTwins(next.twins, repeat, false)
		next.msg.Content = nil
		c.pending[nextID] = next
	}
	c.forget(id)
	if repeat != nil && !waiting {
		c.add(bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, p.msg.Route.Resource, nil), p.key, repeat)
	}
}

// repeatNew returns the entries of the confirmed twin report p for the
// twins the cloud confirms for the first time since the link came up, or
// since their device was removed (forgetDevices), to be reported once more; nil
// if there are none, or p is no twin report, or the era is v0.3. c.mu is
// held.
//
// cloudcore v1.23.1 drops the values of the first report of a twin that
// the device's status does not list yet: it appends a new entry for the
// twin and then sets the values on its own copy of it
// (cloud/pkg/devicecontroller/controller/upstream.go,
// findOrCreateTwinByName). The second report finds the entry and lands.
// Checked against a real cloudcore: a twin's first reported value stayed
// "" in the Device's status until the next report. A twin the status
// already lists costs one message more after each connection.
func (c *comm) repeatNew(p pendingMsg) *twinMessage {
	if p.twins == nil || c.t.cfg.Era == bus.EraV03 || !strings.HasSuffix(p.key, "/"+bus.ResTwinEdgeUpdated) {
		return nil
	}
	seen := c.confirmed[p.key]
	var repeat *twinMessage
	for name, tw := range p.twins.Twin {
		if _, ok := seen[name]; ok {
			continue
		}
		if seen == nil {
			seen = map[string]struct{}{}
			c.confirmed[p.key] = seen
		}
		seen[name] = struct{}{}
		if repeat == nil {
			repeat = &twinMessage{baseMessage: baseMessage{EventID: c.t.newID(), Timestamp: c.t.nowMS()}, Twin: map[string]*msgTwin{}}
		}
		repeat.Twin[name] = tw
	}
	return repeat
}

// forgetDevices forgets which twins of devs the cloud has confirmed
// (repeatNew): a device removed here is removed at the cloud, and the
// Device it may be added as again lists none of its twins yet.
func (c *comm) forgetDevices(devs []wireDevice) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range devs {
		delete(c.confirmed, twinReportResource(d.ID))
	}
}

// resend sends every unconfirmed message again (docs/protocol.md 5.6: when the worker
// has received nothing for ResendInterval). A report waiting behind its
// device's unconfirmed one is not sent yet, so not resent either.
func (c *comm) resend(context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.connected {
		return
	}
	for _, r := range c.order {
		if p := c.pending[r.id]; c.live(r) && p.sent {
			c.t.stats.resent.Add(1)
			c.transmit(r.id, p)
		}
	}
}

// lifeCycle follows the node/connection events. On the way from
// disconnected to connected it sends what was held, in the order it was
// made, and asks the cloud for the membership detail (docs/protocol.md 5.6).
func (c *comm) lifeCycle(msg bus.Message) {
	s, _ := bus.ContentString(msg.Content)
	c.mu.Lock()
	was := c.connected
	c.connected = s == bus.CloudConnected
	if !was && c.connected {
		// The cloud may have deleted and created again a Device while the
		// link was down, and the detail list that follows carries no UID
		// to tell: the first report of each twin since now goes twice
		// (repeatNew), one message more a twin reported, a connection.
		clear(c.confirmed)
		c.sendHeld()
	}
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
	c.send(bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpGet, bus.ResMembershipDetail, bus.JSONString(string(b))), nil)
}

// sendHeld sends every pending message not sent yet, in the order each
// was made; c.mu is held. A device report made while an earlier one was
// unconfirmed takes that one in: whether the cloud got it before the link
// went is unknown, and one report with both is all the cloud needs.
func (c *comm) sendHeld() {
	var held []pendingRef
	for _, r := range c.order {
		if c.live(r) && !c.pending[r.id].sent {
			held = append(held, r)
		}
	}
	for _, r := range held {
		p, ok := c.pending[r.id]
		if !ok || p.sent {
			continue
		}
		if p.key == "" {
			c.transmit(r.id, p)
			continue
		}
		if _, ok := c.pending[c.reports[p.key].sent]; ok {
			c.fold(p.key)
			continue
		}
		c.reports[p.key] = reportSlot{sent: r.id}
		c.transmit(r.id, p)
	}
}

// reportKey returns the key under which msg's reports are merged: its
// resource, for a device's twin (edge_updated) or state report; "" for
// any other message. The cloud applies both by setting what they carry
// (KubeEdge v1.23.1 cloud/pkg/devicecontroller/controller/upstream.go,
// updateDeviceStatus: a twin's reported and observed desired value, the
// device's state and last online time), so only the newest of each
// counts.
func reportKey(msg bus.Message) string {
	r := msg.Route.Resource
	if msg.Route.Operation != bus.OpUpdate || !strings.HasPrefix(r, string(bus.KindDevice)+"/") {
		return ""
	}
	for _, suf := range []string{bus.ResTwinEdgeUpdated, bus.ResDeviceState, bus.ResDeviceStateV123} {
		if strings.HasSuffix(r, "/"+suf) {
			return r
		}
	}
	return ""
}

// decode reads the content of an edge_updated message that came without
// its twins, or returns nil.
func (c *comm) decode(b []byte) *twinMessage {
	var m twinMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	for _, tw := range m.Twin {
		if tw != nil {
			tw.era = c.t.cfg.Era
		}
	}
	return &m
}
