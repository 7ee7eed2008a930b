package pod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestRuncCallsBounded: at most runcSlots lifecycle calls of runc run at
// once. The stand-in runc notes how many of its runs overlap.
func TestRuncCallsBounded(t *testing.T) {
	dir := t.TempDir()
	running, seen := filepath.Join(dir, "running"), filepath.Join(dir, "seen")
	if err := os.Mkdir(running, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "runc")
	script := fmt.Sprintf("#!/bin/sh\nmkdir %[1]s/$$\nls %[1]s | wc -l >> %[2]s\nsleep 0.2\nrmdir %[1]s/$$\n", running, seen)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := newOCIRuntime(bin, filepath.Join(dir, "root"))
	var wg sync.WaitGroup
	for i := range 3 * runcSlots {
		wg.Go(func() {
			if err := rt.kill(context.Background(), "c"+strconv.Itoa(i), 15); err != nil {
				t.Errorf("kill: %v", err)
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 3*runcSlots {
		t.Fatalf("runc ran %d times, want %d", len(lines), 3*runcSlots)
	}
	for _, l := range lines {
		if n, _ := strconv.Atoi(l); n > runcSlots {
			t.Fatalf("%d runc calls ran at once, want at most %d (seen %v)", n, runcSlots, lines)
		}
	}
}
