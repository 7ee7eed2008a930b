package twin

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"edgenode/bus"
)

// job is one unit of work for a worker.
type job struct {
	act     action
	id      string // device or node id
	topic   string // MQTT topic of the request, "" for cloud messages
	msg     bus.Message
	payload []byte
	err     error         // classification problem (bad topic levels)
	done    chan struct{} // closed once handled, if set (lets a caller wait)
}

// worker is one of the DeviceTwin workers (spec 5.5): membership, twin,
// device and communication. It handles jobs from its inbox one at a time
// and records a heartbeat when pinged.
type worker struct {
	name   string
	inbox  chan job
	ping   chan struct{}
	handle func(ctx context.Context, j job)
	// idle, if set, calls onIdle whenever the worker has received no job
	// for that long (the communication worker's resend, spec 5.6).
	idle   time.Duration
	onIdle func(ctx context.Context)

	last     atomic.Int64 // UnixNano of the last heartbeat
	restarts atomic.Uint64
}

func newWorker(name string, queue int, handle func(context.Context, job)) *worker {
	return &worker{name: name, inbox: make(chan job, queue), ping: make(chan struct{}, 1), handle: handle}
}

// loop runs until ctx ends.
func (w *worker) loop(ctx context.Context) {
	var idle <-chan time.Time
	var tm *time.Timer
	if w.idle > 0 {
		tm = time.NewTimer(w.idle)
		defer tm.Stop()
		idle = tm.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.ping:
			w.last.Store(time.Now().UnixNano())
		case j := <-w.inbox:
			w.handle(ctx, j)
			if j.done != nil {
				close(j.done)
			}
			if tm != nil {
				tm.Reset(w.idle)
			}
		case <-idle:
			w.onIdle(ctx)
			tm.Reset(w.idle)
		}
	}
}

// supervisor runs the workers and their health check (spec 5.5): every
// interval it restarts a worker whose last heartbeat is older than
// timeout, then pings every worker.
type supervisor struct {
	workers  []*worker
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
}

// run blocks until ctx ends and every worker goroutine, including one
// replaced by a restart, has returned.
func (s *supervisor) run(ctx context.Context) {
	var wg sync.WaitGroup
	cancels := make([]context.CancelFunc, len(s.workers))
	start := func(i int) {
		w := s.workers[i]
		wctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		w.last.Store(time.Now().UnixNano())
		wg.Go(func() { w.loop(wctx) })
	}
	for i := range s.workers {
		start(i)
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, c := range cancels {
				c()
			}
			wg.Wait()
			return
		case now := <-t.C:
			for i, w := range s.workers {
				if now.Sub(time.Unix(0, w.last.Load())) > s.timeout {
					s.log.Warn("restarting silent worker", "worker", w.name)
					cancels[i]()
					w.restarts.Add(1)
					start(i)
				}
				select {
				case w.ping <- struct{}{}:
				default:
				}
			}
		}
	}
}
