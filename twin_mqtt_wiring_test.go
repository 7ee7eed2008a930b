package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt/mqtttest"
	"edgenode/twin"
)

// TestOversizeTwinUpdateAnswered: with the limits main wires by default, an app
// that publishes a twin update larger than the payload limit gets a 400 on the
// result topic (docs/protocol.md 5.2 error result) instead of no answer, and
// the next update is served as usual.
func TestOversizeTwinUpdateAnswered(t *testing.T) {
	dir := t.TempDir()
	devs := filepath.Join(dir, "devices")
	if err := os.MkdirAll(devs, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := `{"added_devices":[{"id":"default/d1","name":"d1","state":"unknown",` +
		`"twin":{"t":{"actual":{"value":"1"},"metadata":{"type":"string"}}}}]}`
	if err := os.WriteFile(filepath.Join(devs, "d1.json"), []byte(dev), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeName: "n1", DataDir: dir}
	cfg.defaults()
	cfg.MQTT.Internal.Listen = "127.0.0.1:0"
	store := mqtttest.Store(t)
	b := bus.New(cfg.Bus, nil)
	tw, err := twin.New(cfg.Twin, b, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("twin Run() = %v", err)
		}
	})
	eb := mqtttest.Start(t, cfg.MQTT, b, store)

	const topic = "$hw/events/device/default/d1/twin/update"
	results := make(chan []byte, 4)
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	if err := mqtttest.Wait(c.Subscribe(topic+"/result", 1, func(_ paho.Client, m paho.Message) {
		results <- m.Payload()
	})); err != nil {
		t.Fatal(err)
	}
	big := `{"event_id":"big","twin":{"t":{"actual":{"value":"` + strings.Repeat("9", 2*cfg.MQTT.MaxPayload) + `"}}}}`
	small := `{"event_id":"small","twin":{"t":{"actual":{"value":"2"}}}}`
	for _, p := range []string{big, small} {
		if err := mqtttest.Wait(c.Publish(topic, 1, false, p)); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		EventID string          `json:"event_id"`
		Code    int             `json:"code"`
		Twin    json.RawMessage `json:"twin"`
	}
	var got []result
	for len(got) < 2 {
		select {
		case p := <-results:
			var r result
			if err := json.Unmarshal(p, &r); err != nil {
				t.Fatalf("result %q: %v", p, err)
			}
			got = append(got, r)
		case <-time.After(2 * time.Minute):
			t.Fatalf("results so far %+v; want an error result for the oversize update, then the small one's", got)
		}
	}
	if got[0].Code != 400 || got[0].Twin != nil {
		t.Errorf("first result = %+v, want code 400 and no twin", got[0])
	}
	if got[1].EventID != "small" || got[1].Code != 0 {
		t.Errorf("second result = %+v, want the small update's success", got[1])
	}
}
