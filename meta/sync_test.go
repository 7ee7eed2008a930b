package meta

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
	"edgenode/db"
)

// TestPodStatusSyncTimer checks the v0.3 resync period under synctest: the
// first sync comes one interval after start (raised to the 60 s minimum),
// only while connected, and never with era v1.23.
func TestPodStatusSyncTimer(t *testing.T) {
	tests := []struct {
		name      string
		era       bus.Era
		interval  time.Duration
		connected bool
		want      []time.Duration // times of the syncs within the first 150 s
	}{
		{"v0.3 default", bus.EraV03, 0, true, []time.Duration{60 * time.Second, 120 * time.Second}},
		{"v0.3 raised to 60 s", bus.EraV03, 5 * time.Second, true, []time.Duration{60 * time.Second, 120 * time.Second}},
		{"v0.3 every 70 s", bus.EraV03, 70 * time.Second, true, []time.Duration{70 * time.Second, 140 * time.Second}},
		{"v0.3 disconnected", bus.EraV03, 0, false, nil},
		{"v1.23 has no resync", bus.EraV123, 0, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				d, err := db.Open(ctx, filepath.Join(t.TempDir(), db.FileName), db.Config{})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				b := bus.New(bus.Config{}, nil)
				if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
					t.Fatal(err)
				}
				for k, v := range map[string]string{"default/pod/a": podJSON, "default/podstatus/a": statusA} {
					if err := d.UpsertMeta(ctx, db.Meta{Key: k, Type: string(kindOf(k)), Value: v}); err != nil {
						t.Fatal(err)
					}
				}
				m, err := New(Config{Era: tt.era, PodStatusSyncInterval: tt.interval}, b, d, nil)
				if err != nil {
					t.Fatal(err)
				}
				m.connected.Store(tt.connected)
				start := time.Now()
				done := make(chan error)
				go func() { done <- m.Run(ctx) }()
				var got []time.Duration
				q := b.Queue(bus.ModuleHub)
				for range 150 {
					time.Sleep(time.Second)
					synctest.Wait()
					if msg, ok := q.Next(); ok {
						if msg.Route.Resource != "default/podstatus" || msg.Route.Operation != bus.OpUpdate {
							t.Errorf("hub got %+v, want a podstatus sync", msg.Route)
						}
						got = append(got, time.Since(start).Round(time.Second))
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run() = %v", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("syncs at %v, want %v", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("syncs at %v, want %v", got, tt.want)
						break
					}
				}
			})
		})
	}
}
