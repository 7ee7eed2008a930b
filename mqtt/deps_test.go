package mqtt_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: mqtt talks to other modules only through bus and uses only the
// parts of mochi-mqtt it needs (no storage back ends, no extra listeners
// beyond the package that holds TCP).
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "edgenode/mqtt").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := map[string]bool{"edgenode/mqtt": true, "edgenode/bus": true, "edgenode/db": true}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "edgenode/") && !allowed[p]:
			t.Errorf("mqtt depends on %s; modules talk through bus only", p)
		case strings.HasPrefix(p, "github.com/mochi-mqtt/server/v2/hooks/") &&
			p != "github.com/mochi-mqtt/server/v2/hooks/storage" && p != "github.com/mochi-mqtt/server/v2/hooks/auth":
			t.Errorf("mqtt depends on %s; only mochi's root, listeners and hooks/auth are wanted", p)
		case strings.HasPrefix(p, "k8s.io/"), strings.Contains(p, "badger"), strings.Contains(p, "bolt"), strings.Contains(p, "redis"), strings.Contains(p, "pebble"):
			t.Errorf("mqtt depends on %s", p)
		}
	}
}

// TestBrokerWithoutFixtures: mochi's packets/tpackets.go, test data in a
// non-test file that every start built into 368 KiB of heap, stays out of
// the build (third_party/mochi-mqtt-server/README.md).
func TestBrokerWithoutFixtures(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(gobin, "list", "-f", "{{.Dir}} {{.GoFiles}}", "github.com/mochi-mqtt/server/v2/packets").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if s := string(out); strings.Contains(s, "tpackets.go") || !strings.Contains(s, "third_party") {
		t.Errorf("mochi's packets package is built from %s; want third_party/mochi-mqtt-server without tpackets.go", s)
	}
}
