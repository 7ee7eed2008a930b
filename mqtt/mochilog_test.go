package mqtt

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// records is a slog.Handler that keeps what it is given.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

func (h *records) find(msg string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Message == msg {
			return r, true
		}
	}
	return slog.Record{}, false
}

// TestMochiLogNamed: a client that connects and then sends garbage makes
// mochi log the error that ended its connection; the line reaches our
// log with a message, not msg="", and keeps its error attribute.
func TestMochiLogNamed(t *testing.T) {
	store, err := db.Open(context.Background(), t.TempDir()+"/"+db.FileName, db.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	got := &records{}
	b := bus.New(bus.Config{}, nil)
	eb, err := New(Config{Internal: BrokerConfig{Listen: "127.0.0.1:0"}, NodeName: "n1"}, b, store, slog.New(got))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eb.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-eb.Ready()

	c, err := net.Dial("tcp", eb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session,
	// keepalive 60 s, client id "t1".
	connect := []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 't', '1'}
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	connack := make([]byte, 4)
	if _, err := io.ReadFull(c, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		t.Fatalf("CONNACK = % x, %v, want 20 02 00 00", connack, err)
	}
	c.Write([]byte{0x00, 0x00}) // packet type 0 is reserved: a protocol error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if r, ok := got.find(msgConnEnded); ok {
			var hasErr bool
			r.Attrs(func(a slog.Attr) bool { hasErr = hasErr || a.Key == "error"; return true })
			if !hasErr {
				t.Errorf("%q logged without its error attribute", msgConnEnded)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line after a bad client", msgConnEnded)
		}
	}
	if _, ok := got.find(""); ok {
		t.Error(`a line with msg="" reached the log`)
	}
}
