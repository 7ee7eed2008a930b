package hub

import (
	"testing"

	"edgenode/bus"
)

// BenchmarkOnFrame measures handling one pod insert frame from the cloud:
// decode and route to meta.
func BenchmarkOnFrame(b *testing.B) {
	bb := bus.New(bus.Config{QueueLen: 1}, nil)
	if err := bb.AddModule(fakeMeta, bus.GroupMeta); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Server: "h:1", NodeName: "n", DataDir: "/d"}, bb, nil)
	if err != nil {
		b.Fatal(err)
	}
	frame := []byte(frameSeeds[0])
	q := bb.Queue(fakeMeta)
	b.ReportAllocs()
	for b.Loop() {
		c.onFrame(frame)
		q.Next()
	}
}

// BenchmarkOutboxCoalesce measures queueing a status that replaces a
// queued one, the steady state of an outage.
func BenchmarkOutboxCoalesce(b *testing.B) {
	q := newOutbox(1024)
	msgs := make([]bus.Message, 100)
	for i := range msgs {
		msgs[i] = podPatch(i, 0)
		q.put(msgs[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.put(msgs[i%len(msgs)])
		i++
	}
}

// BenchmarkEncode measures encoding a status for the wire into the
// client's reused buffer.
func BenchmarkEncode(b *testing.B) {
	m := podPatch(1, 1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = bus.Encode(buf[:0], m, bus.EraV123)
		if err != nil {
			b.Fatal(err)
		}
	}
}
