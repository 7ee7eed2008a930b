package hub

import (
	"time"

	"edgenode/bus"
)

// outbox is the queue of cloud-bound messages waiting for a token of the
// rate limit or for the link. Statuses (isStatus) are coalesced per
// resource:
// a newer status replaces the queued one in place, so each resource keeps
// its place in line and only its latest state is sent (KubeEdge issue
// #3567 shows what sending every stale status after an outage does to a
// cloud). The queue is bounded; it is used by one goroutine at a time.
type outbox struct {
	max   int
	items []entry // FIFO; items[head:] are live, removed ones have a zero msg
	head  int
	live  int
	index map[coalesceKey]int // position in items of each queued status
}

type entry struct {
	key coalesceKey // zero for messages that are never coalesced
	msg bus.Message
	ok  bool
}

func newOutbox(max int) *outbox {
	return &outbox{max: max, index: make(map[coalesceKey]int)}
}

// isStatus reports whether m is a status whose latest value is all that
// matters: pod and node statuses and patches, and lease updates
// (docs/protocol.md 2.5). These are coalesced per resource. The v0.3
// podstatus resync has no name and is one too.
func isStatus(m bus.Message) bool {
	if m.Res.Namespace == "" {
		return false // not <ns>/<kind>[/<name>]: a device or other resource
	}
	switch m.Res.Kind {
	case bus.KindPodStatus, bus.KindNodeStatus, bus.KindPodPatch, bus.KindNodePatch:
		return true
	case bus.KindLease:
		return m.Route.Operation == bus.OpUpdate
	}
	return false
}

// isDeviceReport reports whether m is a twin or device state report to
// the cloud (device/<id>/twin/edge_updated, device/<id>/state[/update]).
// They wait in the offline queue but are not coalesced here: twin keeps
// each one until the cloud confirms its msg_id and resends the unconfirmed
// ones (docs/protocol.md 5.6), so dropping an older report for a newer one
// would make twin resend the older one after the newer. Twin merges a
// device's reports itself while one is unconfirmed.
func isDeviceReport(m bus.Message) bool {
	if m.Res.Kind != bus.KindDevice || m.Res.Namespace != "" {
		return false
	}
	switch m.Res.Rest {
	case bus.ResTwinEdgeUpdated, bus.ResDeviceState, bus.ResDeviceStateV123:
		return true
	}
	return false
}

// coalesceKey identifies the statuses that replace each other. A struct,
// not a joined string, so that looking one up does not allocate.
type coalesceKey struct {
	op  bus.Op
	res string
}

// statusKey is the coalescing key of a status message.
func statusKey(m bus.Message) coalesceKey {
	return coalesceKey{m.Route.Operation, m.Route.Resource}
}

// put queues m. A status replaces a queued status of the same resource and
// keeps its place; the message it replaces is returned with replaced=true
// (its waiter, if any, is answered by the caller). When the queue is full
// put returns ok=false and the message is not queued.
func (q *outbox) put(m bus.Message) (old bus.Message, replaced, ok bool) {
	var key coalesceKey
	if isStatus(m) {
		key = statusKey(m)
		if i, found := q.index[key]; found {
			old = q.items[i].msg
			q.items[i].msg = m
			return old, true, true
		}
	}
	if q.live >= q.max {
		return bus.Message{}, false, false
	}
	q.compact()
	q.items = append(q.items, entry{key: key, msg: m, ok: true})
	if key != (coalesceKey{}) {
		q.index[key] = len(q.items) - 1
	}
	q.live++
	return bus.Message{}, false, true
}

// pop removes and returns the oldest message.
func (q *outbox) pop() (bus.Message, bool) {
	for q.head < len(q.items) {
		e := q.items[q.head]
		q.items[q.head] = entry{}
		q.head++
		if !e.ok {
			continue
		}
		if e.key != (coalesceKey{}) {
			delete(q.index, e.key)
		}
		q.live--
		return e.msg, true
	}
	return bus.Message{}, false
}

func (q *outbox) len() int { return q.live }

// compact moves the live items to the front when more than half of the
// slice is consumed, so the slice does not grow without bound.
func (q *outbox) compact() {
	if q.head == 0 || q.head < len(q.items)/2 {
		return
	}
	n := copy(q.items, q.items[q.head:])
	clear(q.items[n:])
	q.items = q.items[:n]
	q.head = 0
	for i, e := range q.items {
		if e.key != (coalesceKey{}) {
			q.index[e.key] = i
		}
	}
}

// limiter is a token bucket: rate tokens a second, at most burst saved.
// It is used by one goroutine.
type limiter struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(qps float64, burst int, now time.Time) *limiter {
	return &limiter{rate: qps, burst: float64(burst), tokens: float64(burst), last: now}
}

// take takes one token if there is one; otherwise it returns how long
// until there is.
func (l *limiter) take(now time.Time) (ok bool, wait time.Duration) {
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
		l.last = now
	}
	if l.tokens >= 1 {
		l.tokens--
		return true, 0
	}
	return false, time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
}
