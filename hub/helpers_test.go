package hub

import (
	"context"
	"sync"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/hub/hubtest"
)

const testNode = "node-a"

// node is a hub client under test with stand-ins for the modules it talks
// to: one module per group it delivers to.
type node struct {
	t      *testing.T
	b      *bus.Bus
	c      *Client
	cancel context.CancelFunc
	done   chan error
}

// Stand-in modules, one in each group the hub delivers to.
const (
	fakeMeta bus.Module = "fake-meta"
	fakeTwin bus.Module = "fake-twin"
	fakeBus  bus.Module = "fake-bus"
	fakeEdge bus.Module = "fake-edged" // a sender of cloud-bound messages
)

// testConfig is a config pointing at srv with fast timings.
func testConfig(t *testing.T, srv *hubtest.Server, era bus.Era) Config {
	return Config{
		Server:        srv.Addr,
		CertServer:    srv.CertURL,
		Token:         srv.Token(testNode),
		NodeName:      testNode,
		DataDir:       t.TempDir(),
		Era:           era,
		Heartbeat:     time.Second,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    50 * time.Millisecond,
		WriteDeadline: 5 * time.Second,
	}
}

// startNode makes a bus with the stand-ins and starts a client on it. The
// client is stopped at cleanup.
func startNode(t *testing.T, cfg Config, setup ...func(*Client)) *node {
	t.Helper()
	b := bus.New(bus.Config{QueueLen: 2048}, nil)
	for _, m := range []struct {
		name  bus.Module
		group bus.Group
	}{{fakeMeta, bus.GroupMeta}, {fakeTwin, bus.GroupTwin}, {fakeBus, bus.GroupBus}, {fakeEdge, bus.GroupPod}} {
		if err := b.AddModule(m.name, m.group); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(cfg, b, nil)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	for _, f := range setup {
		f(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{t: t, b: b, c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop cancels Run and waits for it.
func (n *node) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	if err := <-n.done; err != nil {
		n.t.Errorf("Run() = %v, want nil", err)
	}
}

// recv waits for the next message for module m.
func (n *node) recv(m bus.Module) bus.Message {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg, err := n.b.Receive(ctx, m)
	if err != nil {
		n.t.Fatalf("Receive(%s) = %v", m, err)
	}
	return msg
}

// recvConn waits for the next node/connection event for module m, skipping
// other messages, and returns its state.
func (n *node) recvConn(m bus.Module) string {
	n.t.Helper()
	for {
		msg := n.recv(m)
		if msg.Route.Resource == bus.ResNodeConnection && msg.Route.Operation == bus.OpConnect {
			s, _ := bus.ContentString(msg.Content)
			return s
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newServer(t *testing.T, cfg hubtest.Config) *hubtest.Server {
	srv := hubtest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv
}

func isOp(op bus.Op) func(bus.Message) bool {
	return func(m bus.Message) bool { return m.Route.Operation == op }
}

// counter counts calls and lets a test wait for a number of them.
type counter struct {
	mu sync.Mutex
	n  int
	ch chan struct{}
}

func newCounter() *counter { return &counter{ch: make(chan struct{})} }

func (c *counter) inc() {
	c.mu.Lock()
	c.n++
	close(c.ch)
	c.ch = make(chan struct{})
	c.mu.Unlock()
}

func (c *counter) wait(t *testing.T, n int) {
	t.Helper()
	ctx := ctxT(t)
	for {
		c.mu.Lock()
		k, ch := c.n, c.ch
		c.mu.Unlock()
		if k >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("counter: %d of %d before timeout", k, n)
		}
	}
}
