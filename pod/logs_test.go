package pod

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// chanWriter collects writes and pokes ch after each one.
type chanWriter struct {
	mu sync.Mutex
	b  strings.Builder
	ch chan struct{}
}

func (c *chanWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.b.Write(p)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *chanWriter) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		c.mu.Lock()
		got := c.b.String()
		c.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-c.ch:
		case <-timeout:
			t.Fatalf("followed log = %q, want it to contain %q", got, want)
		}
	}
}

func TestFollowLogs(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(PodsDir(data), "u1")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o700)
	os.WriteFile(filepath.Join(dir, "pod.json"), []byte(`{"metadata":{"name":"web","namespace":"default","uid":"u1"},"spec":{"containers":[{"name":"main","image":"x"}]}}`), 0o600)
	log := filepath.Join(dir, "logs", "main.log")
	// A plain line from before the CRI format, then CRI records.
	os.WriteFile(log, []byte("first\n"), 0o600)
	w := &chanWriter{ch: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- FollowLogs(ctx, w, data, "web", "", false) }()
	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	now := time.Now()
	f.Write(appendRecord(nil, now, stdout, false, []byte("second")))
	f.Write(appendRecord(nil, now, stderr, true, []byte("thi")))
	w.waitFor(t, "first\nsecond\n")
	// Rotate as the relay does: rename, then write on in a new file; the
	// old one gets a last record after the rename.
	os.Rename(log, log+".1")
	f.Write(appendRecord(nil, now, stderr, false, []byte("rd")))
	f.Close()
	os.WriteFile(log, appendRecord(nil, now, stdout, false, []byte("after rotation")), 0o600)
	w.waitFor(t, "first\nsecond\nthird\nafter rotation\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("FollowLogs() = %v", err)
	}
}
