package bus

import "sync"

// minQueue is the ring a queue starts with and shrinks back to (Bus.Trim):
// an idle node's queues hold a message at a time.
const minQueue = 4

// queue is one module's FIFO of messages, bounded by max. Its ring grows
// by doubling as messages wait and goes back to minQueue slots at Trim, so
// the memory of a burst is not held for the node's life. A channel of
// max messages would be allocated whole when made: 37 KiB per module at
// the default QueueLen (a Message is 296 bytes on 64-bit), resident as far
// as the ring has turned, for queues that are empty nearly always.
//
// ready holds a token while messages wait: Push puts one, and Next puts it
// back while messages remain, so one consumer selecting on ready sees
// every message. A token may find the queue empty (Next reports false).
type queue struct {
	ready chan struct{}

	mu    sync.Mutex
	buf   []Message // ring; len(buf) is its capacity
	head  int       // index of the oldest message
	n     int       // messages queued
	max   int
	small []Message // the minQueue ring, kept for Trim
}

func newQueue(max int) *queue {
	small := make([]Message, min(minQueue, max))
	return &queue{ready: make(chan struct{}, 1), buf: small, small: small, max: max}
}

// push queues msg and reports false if the queue is full.
func (q *queue) push(msg *Message) bool {
	q.mu.Lock()
	if q.n == q.max {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = *msg
	q.n++
	q.mu.Unlock()
	q.signal()
	return true
}

// grow doubles the ring (up to max), keeping the order.
func (q *queue) grow() {
	nb := make([]Message, min(2*len(q.buf), q.max))
	for i := range q.n {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	clear(q.buf) // the old ring (maybe small) holds no message alive
	q.buf, q.head = nb, 0
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next takes the oldest message; false if none waits.
func (q *queue) next() (Message, bool) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return Message{}, false
	}
	msg := q.buf[q.head]
	q.buf[q.head] = Message{} // drop the references it holds
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	more := q.n > 0
	q.mu.Unlock()
	if more {
		q.signal()
	}
	return msg, true
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// trim goes back to the small ring if the queue is empty and has grown.
func (q *queue) trim() {
	q.mu.Lock()
	if q.n == 0 && len(q.buf) > len(q.small) {
		q.buf, q.head = q.small, 0
	}
	q.mu.Unlock()
}

// Inbox is a module's queue as its one consumer sees it: select on Ready,
// then take a message with Next. The zero Inbox (an unknown module) is
// never ready.
type Inbox struct{ q *queue }

// Ready returns a channel that has a value while messages wait. It is never
// closed; it is nil for the zero Inbox.
func (i Inbox) Ready() <-chan struct{} {
	if i.q == nil {
		return nil
	}
	return i.q.ready
}

// Next takes the oldest waiting message without blocking; false if none
// waits (a value on Ready may find the queue emptied already).
func (i Inbox) Next() (Message, bool) {
	if i.q == nil {
		return Message{}, false
	}
	return i.q.next()
}
