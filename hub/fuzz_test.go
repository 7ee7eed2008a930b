package hub

import (
	"testing"

	"edgenode/bus"
)

// frameSeeds are cloud frames of both eras plus broken ones.
var frameSeeds = []string{
	`{"header":{"msg_id":"9d1c","timestamp":1752550000000,"resourceversion":"48213"},"route":{"source":"edgecontroller","group":"resource","operation":"insert","resource":"default/pod/nginx"},"content":{"metadata":{"name":"nginx"}}}`,
	`{"header":{"msg_id":"0c4f","parent_msg_id":"","timestamp":1559123456789,"sync":false},"route":{"source":"controller","group":"resource","operation":"update","resource":"default/configmap/c"},"content":{}}`,
	`{"header":{"msg_id":"a","parent_msg_id":"b"},"route":{"source":"edgecontroller","group":"resource","operation":"response","resource":"default/configmap/c"},"content":{"Object":{},"Err":null}}`,
	`{"header":{"msg_id":"t"},"route":{"source":"devicecontroller","group":"twin","operation":"update","resource":"device/d/twin/cloud_updated"},"content":"{}"}`,
	`{"header":{"msg_id":"u"},"route":{"source":"router_eventbus","group":"user","operation":"publish","resource":"a/b"},"content":"x"}`,
	`{"header":{"msg_id":"p"},"route":{"group":"resource","operation":"ping"},"content":"ping"}`,
	`{"header":{"msg_id":"x"},"route":{"group":"cloudhub","operation":"disconnected","resource":"node/n"}}`,
	`{"header":{"msg_id":1}}`,
	`[]`,
	`nul`,
	"",
}

func FuzzFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	b := bus.New(bus.Config{QueueLen: 4}, nil)
	for _, m := range []struct {
		name  bus.Module
		group bus.Group
	}{{fakeMeta, bus.GroupMeta}, {fakeTwin, bus.GroupTwin}, {fakeBus, bus.GroupBus}} {
		if err := b.AddModule(m.name, m.group); err != nil {
			f.Fatal(err)
		}
	}
	c, err := New(Config{Server: "h:1", NodeName: "n", DataDir: "/d"}, b, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := c.Stats()
		reply, ok := c.onFrame(data)
		after := c.Stats()
		m, derr := bus.Decode(data)
		if derr != nil {
			if after.BadFrames != before.BadFrames+1 || ok {
				t.Fatalf("bad frame %q: BadFrames %d -> %d, reply %v; want counted and no reply", data, before.BadFrames, after.BadFrames, ok)
			}
			return
		}
		if after.BadFrames != before.BadFrames {
			t.Fatalf("good frame %q counted as bad", data)
		}
		if ok {
			if reply.Route.Operation != bus.OpResponse || reply.Header.ParentID != m.Header.ID || string(reply.Content) != `"ack"` {
				t.Fatalf("reply to %q = %+v, want an ack to %v", data, reply, m.Header.ID)
			}
			if _, err := bus.Encode(nil, reply, bus.EraV123); err != nil {
				t.Fatalf("reply does not encode: %v", err)
			}
		}
		// Keep the stand-in queues from filling so that routing is
		// exercised, not only the full-queue path.
		for _, mod := range []bus.Module{fakeMeta, fakeTwin, fakeBus} {
			for b.Depth(mod) > 0 {
				b.Queue(mod).Next()
			}
		}
	})
}

// FuzzStatusKey: any resource a module sends, from edged or twin, is
// classified without a panic, and a status has a key.
func FuzzStatusKey(f *testing.F) {
	for _, s := range []string{"default/pod/a", "default/podstatus", "null/nodepatch/n", "a/b/c/d", "/x/y", "x//y", "device/a/b/state/update"} {
		f.Add(s, "update", false)
		f.Add(s, "update", true)
	}
	f.Fuzz(func(t *testing.T, res, op string, fromTwin bool) {
		src := bus.ModulePod
		if fromTwin {
			src = bus.ModuleTwin
		}
		m := bus.NewMessage(src, bus.GroupMeta, bus.Op(op), res, nil)
		status, report := isStatus(m), isDeviceReport(m)
		if status && report {
			t.Fatalf("%q is both a status and a device report", res)
		}
		if status && (statusKey(m) == (coalesceKey{}) || m.Res.Kind == "") {
			t.Fatalf("status %q has an empty key or kind: %+v", res, m.Res)
		}
	})
}
