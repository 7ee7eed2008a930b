package meta

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"edgenode/bus"
	"edgenode/db"
)

func benchMeta(b *testing.B, cfg Config) (*Meta, *bus.Bus) {
	b.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), db.FileName), db.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	bb := bus.New(bus.Config{QueueLen: 4}, nil)
	for _, f := range fakes {
		if err := bb.AddModule(f.name, f.group); err != nil {
			b.Fatal(err)
		}
	}
	m, err := New(cfg, bb, d, nil)
	if err != nil {
		b.Fatal(err)
	}
	return m, bb
}

// BenchmarkCloudInsert measures a cloud pod insert end to end inside meta:
// check, store (one fsync'd commit), hand to edged, acknowledge.
func BenchmarkCloudInsert(b *testing.B) {
	m, bb := benchMeta(b, Config{})
	ctx := context.Background()
	msgs := make([]bus.Message, 64)
	for i := range msgs {
		msgs[i] = bus.NewMessage(bus.SourceEdgeController, bus.GroupResource, bus.OpInsert,
			fmt.Sprintf("default/pod/p%d", i), []byte(podJSON))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.handle(ctx, msgs[i%len(msgs)])
		bb.Queue(bus.ModulePod).Next()
		bb.Queue(bus.ModuleHub).Next()
	}
}

// BenchmarkQueryLocal measures a local configmap query answered to a
// waiting asker.
func BenchmarkQueryLocal(b *testing.B) {
	m, bb := benchMeta(b, Config{})
	ctx := context.Background()
	if err := m.d.UpsertMeta(ctx, db.Meta{Key: "default/configmap/cm", Type: "configmap", Value: cmJSON}); err != nil {
		b.Fatal(err)
	}
	q := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpQuery, "default/configmap/cm", nil)
	b.ReportAllocs()
	for b.Loop() {
		m.handle(ctx, q)
		bb.Queue(bus.ModulePod).Next()
	}
}

// BenchmarkUnchangedStatus measures the common case of a pod status that
// did not change: one read, no write, no forward.
func BenchmarkUnchangedStatus(b *testing.B) {
	m, _ := benchMeta(b, Config{})
	ctx := context.Background()
	st := bus.NewMessage(bus.ModulePod, bus.GroupMeta, bus.OpUpdate, "default/podstatus/nginx", []byte(statusA))
	m.handle(ctx, st)
	m.b.Queue(bus.ModuleHub).Next()
	b.ReportAllocs()
	for b.Loop() {
		m.handle(ctx, st)
	}
}
