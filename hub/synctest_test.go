package hub

import (
	"context"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"edgenode/bus"
)

// pipeCloud is a websocket cloud over net.Pipe, so that a whole link runs
// inside a synctest bubble on fake time. Like a v1.23 cloud it answers
// viaduct pings with "ack" until hang is called; after that it keeps
// reading (the kernel of a hung cloud still accepts bytes) but answers
// nothing.
type pipeCloud struct {
	accept chan net.Conn
	done   chan struct{}
	srv    *http.Server
	served chan struct{}

	mu         sync.Mutex
	connects   int
	keepalives []time.Duration // since start, per keepalive
	hung       bool
	down       bool
	dropAll    bool            // close every link right after the upgrade
	connTimes  []time.Duration // since start, per link
	start      time.Time
	statuses   []stamped // podpatch messages received
	conn       *websocket.Conn
}

type stamped struct {
	msg bus.Message
	at  time.Duration
}

func newPipeCloud() *pipeCloud {
	pc := &pipeCloud{accept: make(chan net.Conn), done: make(chan struct{}), served: make(chan struct{}), start: time.Now()}
	pc.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var up websocket.Upgrader
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		pc.serve(ws)
	})}
	go func() {
		pc.srv.Serve(pc)
		close(pc.served)
	}()
	return pc
}

// Accept, Close and Addr make pipeCloud the server's listener.
func (pc *pipeCloud) Accept() (net.Conn, error) {
	select {
	case c := <-pc.accept:
		return c, nil
	case <-pc.done:
		return nil, net.ErrClosed
	}
}
func (pc *pipeCloud) Close() error   { return nil }
func (pc *pipeCloud) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial is the client's dialConn.
func (pc *pipeCloud) dial(ctx context.Context) (net.Conn, error) {
	pc.mu.Lock()
	down := pc.down
	pc.mu.Unlock()
	if down {
		return nil, syscall.ECONNREFUSED
	}
	a, b := net.Pipe()
	select {
	case pc.accept <- b:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (pc *pipeCloud) serve(ws *websocket.Conn) {
	pc.mu.Lock()
	pc.connects++
	pc.connTimes = append(pc.connTimes, time.Since(pc.start))
	pc.hung = false
	pc.conn = ws
	drop := pc.dropAll
	pc.mu.Unlock()
	if drop {
		ws.Close()
		return
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		m, err := bus.Decode(data)
		if err != nil {
			continue
		}
		pc.mu.Lock()
		hung := pc.hung
		if m.Route.Operation == bus.OpKeepalive && !hung {
			pc.keepalives = append(pc.keepalives, time.Since(pc.start))
		}
		if m.Route.Operation == bus.OpPatch {
			pc.statuses = append(pc.statuses, stamped{m, time.Since(pc.start)})
		}
		pc.mu.Unlock()
		if m.Route.Operation == bus.OpPing && !hung {
			b, _ := bus.Encode(nil, m.Resp(bus.JSONString("ack")), bus.EraV123)
			ws.WriteMessage(websocket.TextMessage, b)
		}
	}
}

// setDown takes the cloud away (dials are refused and the link is
// closed) or brings it back.
func (pc *pipeCloud) setDown(down bool) {
	pc.mu.Lock()
	pc.down = down
	ws := pc.conn
	pc.mu.Unlock()
	if down && ws != nil {
		ws.Close()
	}
}

func (pc *pipeCloud) hang() {
	pc.mu.Lock()
	pc.hung = true
	pc.mu.Unlock()
}

func (pc *pipeCloud) stats() (connects int, keepalives []time.Duration) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.connects, append([]time.Duration(nil), pc.keepalives...)
}

func (pc *pipeCloud) shutdown() {
	close(pc.done)
	<-pc.served
}

// TestLinkTimingSynctest checks on fake time the cadence of keepalives,
// that a quiet but answering cloud keeps its link, and that a hung cloud
// is left within two heartbeats and reconnected to.
func TestLinkTimingSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hb = 15 * time.Second
		pc := newPipeCloud()
		b := bus.New(bus.Config{}, nil)
		if err := b.AddModule(fakeMeta, bus.GroupMeta); err != nil {
			t.Fatal(err)
		}
		cfg := Config{Server: "cloud:10000", NodeName: testNode, DataDir: t.TempDir(), InsecureSkipVerify: true,
			Heartbeat: hb, BackoffMin: time.Second, BackoffMax: 2 * time.Second}
		c, err := New(cfg, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.dialConn = pc.dial
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()

		// Ten minutes of a quiet cloud that answers only the probes.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		connects, kas := pc.stats()
		if connects != 1 {
			t.Fatalf("connects after 10 quiet minutes = %d, want 1", connects)
		}
		if len(kas) != 41 {
			t.Errorf("keepalives in 10 min = %d, want 41 (at 0 and every %v)", len(kas), hb)
		}
		for i, at := range kas {
			if want := time.Duration(i) * hb; at != want {
				t.Fatalf("keepalive #%d at %v, want %v", i, at, want)
			}
		}

		// The cloud hangs: the link must be given up within two
		// heartbeats of the last answer and a new one made after the
		// backoff.
		pc.hang()
		hangAt := time.Now()
		for k := 0; k < 600 && c.Stats().SilentLinks == 0; k++ {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if d := time.Since(hangAt); d > 2*hb {
			t.Errorf("hung cloud detected after %v, want at most %v", d, 2*hb)
		}
		for k := 0; k < 6000; k++ {
			if n, _ := pc.stats(); n == 2 {
				break
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		if d := time.Since(hangAt); d > 2*hb+cfg.BackoffMin {
			t.Errorf("reconnected %v after the hang, want at most %v", d, 2*hb+cfg.BackoffMin)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		pc.shutdown()
	})
}

// TestOutageRateSynctest checks on fake time that statuses queued during an
// outage leave at exactly the configured rate after the burst, one per
// pod, in order.
func TestOutageRateSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pods, versions, qps, burst = 100, 10, 20, 5
		pc := newPipeCloud()
		b := bus.New(bus.Config{QueueLen: pods * versions}, nil)
		cfg := Config{Server: "cloud:10000", NodeName: testNode, DataDir: t.TempDir(), InsecureSkipVerify: true,
			MessageQPS: qps, MessageBurst: burst, BackoffMin: time.Second, BackoffMax: time.Second}
		c, err := New(cfg, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.dialConn = pc.dial
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		pc.setDown(true)
		synctest.Wait()
		for v := range versions {
			for p := range pods {
				if err := b.Send(bus.ModuleHub, podPatch(p, v)); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(time.Minute) // the outage
		synctest.Wait()
		if got := c.Stats().Coalesced; got != pods*(versions-1) {
			t.Fatalf("Coalesced = %d, want %d", got, pods*(versions-1))
		}
		pc.setDown(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		pc.mu.Lock()
		got := append([]stamped(nil), pc.statuses...)
		pc.mu.Unlock()
		if len(got) != pods {
			t.Fatalf("statuses after the outage = %d, want %d", len(got), pods)
		}
		t0 := got[0].at
		for i, s := range got {
			want := podPatch(i, versions-1)
			if s.msg.Route.Resource != want.Route.Resource || string(s.msg.Content) != string(want.Content) {
				t.Errorf("status #%d = %s %s, want %s %s", i, s.msg.Route.Resource, s.msg.Content, want.Route.Resource, want.Content)
			}
			// The first burst leave at once, then one every 1/qps.
			wantAt := t0
			if i >= burst {
				wantAt += time.Duration(i-burst+1) * time.Second / qps
			}
			if s.at != wantAt {
				t.Errorf("status #%d at %v, want %v", i, s.at-t0, wantAt-t0)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		pc.shutdown()
	})
}

// TestBackoffGrowsSynctest checks that a cloud which drops every link at
// once is retried with growing, capped waits, and that the wait starts
// small again after a healthy link.
func TestBackoffGrowsSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := newPipeCloud()
		pc.dropAll = true
		b := bus.New(bus.Config{}, nil)
		cfg := Config{Server: "cloud:10000", NodeName: testNode, DataDir: t.TempDir(), InsecureSkipVerify: true,
			BackoffMin: time.Second, BackoffMax: 16 * time.Second}
		c, err := New(cfg, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.dialConn = pc.dial
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		pc.mu.Lock()
		times := append([]time.Duration(nil), pc.connTimes...)
		pc.dropAll = false
		pc.mu.Unlock()
		if len(times) < 8 {
			t.Fatalf("links in 3 min = %d, want at least 8", len(times))
		}
		for i := 1; i < len(times); i++ {
			full := min(time.Second<<(i-1), cfg.BackoffMax)
			if gap := times[i] - times[i-1]; gap < full/2 || gap > full {
				t.Errorf("wait before link %d = %v, want within [%v, %v]", i, gap, full/2, full)
			}
		}
		// Now the cloud keeps the link: after a healthy link is lost the
		// next wait is short again.
		time.Sleep(time.Minute)
		synctest.Wait()
		n, _ := pc.stats()
		pc.mu.Lock()
		pc.conn.Close()
		pc.mu.Unlock()
		lost := time.Now()
		for k := 0; k < 1000; k++ {
			if got, _ := pc.stats(); got > n {
				break
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		if d := time.Since(lost); d > cfg.BackoffMin {
			t.Errorf("reconnect after a healthy link took %v, want at most %v", d, cfg.BackoffMin)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		pc.shutdown()
	})
}
