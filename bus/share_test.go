package bus

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestShare: a client holds at most its share; others are not affected;
// TakeWait gets a place a Release frees, or gives up after its wait.
func TestShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewShare(2)
		first, second, third := s.Take("a"), s.Take("a"), s.Take("a")
		if !first || !second || third {
			t.Fatal("Take(a) three times with a share of 2: want true, true, false")
		}
		if !s.Take("b") {
			t.Fatal("Take(b) = false while a holds its share, want true")
		}
		start := time.Now()
		if s.TakeWait("a", time.Second) {
			t.Fatal("TakeWait(a) with nothing released = true, want false")
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("TakeWait(a) gave up after %v, want 1s", d)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			s.Release("a")
		}()
		start = time.Now()
		if !s.TakeWait("a", time.Minute) {
			t.Fatal("TakeWait(a) with a release after 300ms = false, want true")
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Errorf("TakeWait(a) took %v, want 300ms", d)
		}
		s.Release("a")
		s.Release("a")
		s.Release("b")
		if n := s.Clients(); n != 0 {
			t.Errorf("Clients() after all released = %d, want 0", n)
		}
	})
}
