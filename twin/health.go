package twin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	twins   *twinMessage  // an edge_updated report for the cloud, encoded when sent (comm.send)
}

// worker is one of the DeviceTwin workers (docs/protocol.md 5.5): membership,
// twin, device and communication. It handles jobs from its inbox one at a time
// and records a heartbeat when pinged.
type worker struct {
	name   string
	inbox  chan *job // pointers: a queue of jobs by value held 400 KB resident once used
	jobs   *jobPool  // where a handled job from inbox goes back; nil: nowhere
	ping   chan struct{}
	handle func(ctx context.Context, j job)
	// idle, if set, calls onIdle whenever the worker has received no job
	// for that long (the communication worker's resend, docs/protocol.md 5.6).
	idle   time.Duration
	onIdle func(ctx context.Context)

	last   atomic.Int64 // UnixNano of the last heartbeat
	stuck  atomic.Bool  // silent for longer than the health timeout
	stalls atomic.Uint64
}

func newWorker(name string, queue int, handle func(context.Context, job)) *worker {
	return &worker{name: name, inbox: make(chan *job, queue), ping: make(chan struct{}, 1), handle: handle}
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
			w.handle(ctx, *j)
			if j.done != nil {
				close(j.done)
			}
			w.jobs.put(j)
			if tm != nil {
				tm.Reset(w.idle)
			}
		case <-idle:
			w.onIdle(ctx)
			tm.Reset(w.idle)
		}
	}
}

// jobPool recycles the jobs that go through the workers' inboxes: each
// MQTT request and each report for the cloud is one, about 400 bytes
// (it holds a whole bus message), which a job made for the inbox left
// to the collector. Whoever takes a job from an inbox and is done with
// it puts it back: the worker's loop, and twinUpdates for the jobs it
// takes into its batch.
type jobPool struct{ p sync.Pool }

// get returns a pooled job holding j.
func (s *jobPool) get(j job) *job {
	p, _ := s.p.Get().(*job)
	if p == nil {
		p = new(job)
	}
	*p = j
	return p
}

// put empties p and keeps it for get. A nil pool keeps nothing.
func (s *jobPool) put(p *job) {
	if s == nil {
		return
	}
	*p = job{}
	s.p.Put(p)
}

// ErrStuck: a worker has not answered the health check's ping within the
// timeout; it is blocked in a job.
var ErrStuck = errors.New("twin: worker stuck")

// supervisor runs the workers and their health check (docs/protocol.md 5.5):
// every interval it marks a worker whose last heartbeat is older than timeout
// as stuck, then pings every worker. KubeEdge "restarts" such a worker by
// starting a second reader on the same inbox (v1.23.1 edge/pkg/devicetwin/
// process.go runDeviceTwin), which cannot stop the stuck one: it stays blocked,
// holds its job and may wake later beside its replacement. Here a stuck worker
// instead makes the module unhealthy (Twin.Healthy), so /healthz reports it and
// the hardware watchdog reboots the board if it stays so; a worker that answers
// again is healthy again.
type supervisor struct {
	workers  []*worker
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
}

// run blocks until ctx ends and every worker goroutine has returned.
func (s *supervisor) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range s.workers {
		w.last.Store(time.Now().UnixNano())
		wg.Go(func() { w.loop(ctx) })
	}
	defer wg.Wait()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, w := range s.workers {
				since := now.Sub(time.Unix(0, w.last.Load()))
				silent := since > s.timeout
				if silent != w.stuck.Load() {
					w.stuck.Store(silent)
					if silent {
						w.stalls.Add(1)
						s.log.Error("twin worker stuck: no heartbeat", "worker", w.name, "silent", since.Round(time.Second))
					} else {
						s.log.Info("twin worker answers again", "worker", w.name)
					}
				}
				select {
				case w.ping <- struct{}{}:
				default:
				}
			}
		}
	}
}

// Healthy returns nil, or an error wrapping ErrStuck that names the
// workers the health check found stuck. It is safe to call at any time.
func (t *Twin) Healthy() error {
	var stuck []string
	for _, w := range []*worker{t.mem, t.twin, t.dev, t.com} {
		if w.stuck.Load() {
			stuck = append(stuck, w.name)
		}
	}
	if len(stuck) > 0 {
		return fmt.Errorf("%w: %s", ErrStuck, strings.Join(stuck, ", "))
	}
	return nil
}
