package bus

import (
	"sync"
	"time"
)

// Share is a fair share per client of a queue that all clients' requests
// wait in: each client may have at most a limit of requests handed on
// and not yet taken by the module that serves them, so one client's flood
// fills its own share, not the queue. The sender calls Take before it
// sends and the module calls Release when it takes the request from its
// queue (or when the send failed). A client is any string the sender
// knows it by, such as an MQTT client id. Safe for concurrent use; the
// zero value is not usable, use NewShare.
type Share struct {
	limit   int32
	mu      sync.Mutex
	n       map[string]int32 // per client; no zero entries
	waiters int              // in TakeWait
	freed   chan struct{}    // closed by a Release while waiters > 0
}

// NewShare returns a Share of limit requests per client (at least 1).
func NewShare(limit int) *Share {
	return &Share{limit: int32(max(1, limit)), n: map[string]int32{}, freed: make(chan struct{})}
}

// Take counts one more request of client, or reports false when client
// holds its whole share.
func (s *Share) Take(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[client] >= s.limit {
		return false
	}
	s.n[client]++
	return true
}

// TakeWait is Take that, when client holds its whole share, waits up to
// d for a place to free. It blocks the caller only: a sender that calls it
// on the client's own goroutine slows that client, not the others.
func (s *Share) TakeWait(client string, d time.Duration) bool {
	if s.Take(client) {
		return true
	}
	var tm *time.Timer
	defer func() {
		if tm != nil {
			tm.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.n[client] < s.limit {
			s.n[client]++
			s.mu.Unlock()
			return true
		}
		s.waiters++
		freed := s.freed
		s.mu.Unlock()
		if tm == nil {
			tm = time.NewTimer(d)
		}
		var ok bool
		select {
		case <-freed:
			ok = true
		case <-tm.C:
		}
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		if !ok {
			return s.Take(client)
		}
	}
}

// Release counts one request of client less and wakes those waiting in
// TakeWait.
func (s *Share) Release(client string) {
	s.mu.Lock()
	if n := s.n[client] - 1; n > 0 {
		s.n[client] = n
	} else {
		delete(s.n, client)
	}
	if s.waiters > 0 {
		close(s.freed)
		s.freed = make(chan struct{})
	}
	s.mu.Unlock()
}

// Clients is the number of clients holding part of their share.
func (s *Share) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.n)
}
