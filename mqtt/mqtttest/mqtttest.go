// Package mqtttest starts the real things MQTT tests need: an EventBus with
// its embedded broker on a free loopback port, a mosquitto process for
// external mode, and paho clients connected to either. Everything is torn
// down by t.Cleanup.
package mqtttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/db"
	"edgenode/mqtt"
)

// Log returns a logger for tests: discarded unless -v, then text on stderr.
func Log(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for servers that must be told their port (mosquitto).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start runs an EventBus with cfg on b and store until the test ends.
// Unless cfg sets them, the embedded broker listens on 127.0.0.1:0 and the
// node is "node1". It returns once the EventBus is ready; eb.Addr() is the
// broker's address.
func Start(tb testing.TB, cfg mqtt.Config, b *bus.Bus, store *db.DB) *mqtt.EventBus {
	tb.Helper()
	if cfg.Internal.Listen == "" {
		cfg.Internal.Listen = "127.0.0.1:0"
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "node1"
	}
	eb, err := mqtt.New(cfg, b, store, Log(tb))
	if err != nil {
		tb.Fatalf("mqtt.New() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eb.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("EventBus.Run() = %v", err)
		}
	})
	select {
	case <-eb.Ready():
	case err := <-done:
		done <- err
		tb.Fatalf("EventBus.Run() = %v before ready", err)
	case <-time.After(2 * time.Minute):
		tb.Fatalf("EventBus not ready within 2 minutes: %+v", eb.Stats())
	}
	return eb
}

// Store opens a fresh database in tb.TempDir.
func Store(tb testing.TB) *db.DB {
	tb.Helper()
	d, err := db.Open(context.Background(), filepath.Join(tb.TempDir(), db.FileName), db.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

var clientSeq atomic.Int64

// ClientOptions returns paho options for a clean-session client of server
// (tcp://host:port, or host:port) with a unique id.
func ClientOptions(server string) *paho.ClientOptions {
	if _, _, err := net.SplitHostPort(server); err == nil {
		server = "tcp://" + server
	}
	return paho.NewClientOptions().AddBroker(server).
		SetClientID(fmt.Sprintf("test-%d-%d", os.Getpid(), clientSeq.Add(1))).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(time.Minute).
		SetProtocolVersion(4)
}

// Connect connects a paho client with opts and disconnects it when the
// test ends.
func Connect(tb testing.TB, opts *paho.ClientOptions) paho.Client {
	tb.Helper()
	c := paho.NewClient(opts)
	if err := Wait(c.Connect()); err != nil {
		tb.Fatalf("paho connect: %v", err)
	}
	tb.Cleanup(func() { c.Disconnect(50) })
	return c
}

// Wait waits up to 2 minutes for a paho token: a guard against a hang,
// generous for a loaded machine or emulation.
func Wait(t paho.Token) error {
	if !t.WaitTimeout(2 * time.Minute) {
		return errors.New("mqtttest: paho token timed out")
	}
	return t.Error()
}

// Mosquitto is a mosquitto process started by a test.
type Mosquitto struct {
	Addr string // 127.0.0.1:port
	URL  string // tcp://127.0.0.1:port
	tb   testing.TB
	bin  string
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMosquitto starts mosquitto on a free loopback port with anonymous
// access plus the extra config lines, and stops it when the test ends. It
// skips the test if mosquitto is not installed.
func StartMosquitto(tb testing.TB, extra string) *Mosquitto {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			tb.Skip("mosquitto not installed (apt-get install mosquitto)")
		}
	}
	addr := FreeAddr(tb)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	// "user root" keeps a root-started mosquitto from switching to user
	// mosquitto, which could not read the test's temp dir; it is ignored
	// when not root.
	text := "listener " + port + " 127.0.0.1\npersistence false\nuser root\n" + extra
	if !strings.Contains(extra, "allow_anonymous") {
		text += "allow_anonymous true\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	m := &Mosquitto{Addr: addr, URL: "tcp://" + addr, tb: tb, bin: bin, conf: conf}
	m.Start()
	tb.Cleanup(m.Stop)
	return m
}

// Start starts the process (again) and waits until its port accepts. The
// wait polls the port: mosquitto offers no readiness signal.
func (m *Mosquitto) Start() {
	m.tb.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if testing.Verbose() {
		m.cmd.Stderr = os.Stderr
	}
	if err := m.cmd.Start(); err != nil {
		m.tb.Fatalf("start mosquitto: %v", err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(m.cmd, m.done)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-m.done:
			m.tb.Fatalf("mosquitto exited at start (port %s taken?)", m.Addr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.tb.Fatalf("mosquitto not accepting on %s: %v", m.Addr, err)
		}
	}
}

// Stop stops the process and waits for it. Stopping a stopped one is a
// no-op.
func (m *Mosquitto) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// Port is the port number of m.
func (m *Mosquitto) Port() int {
	_, p, _ := net.SplitHostPort(m.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// WaitSubscribed waits up to 2 minutes until eb's external subscriber is
// connected and has subscribed to every filter at least n+1 times (n = 0:
// the first connect). It polls Stats: paho offers no event to wait on.
func WaitSubscribed(tb testing.TB, eb *mqtt.EventBus, n uint64) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for s := eb.Stats(); !s.External || s.ExternalSubs <= n; s = eb.Stats() {
		if time.Now().After(deadline) {
			tb.Fatalf("EventBus not subscribed to the external broker: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
