package mqtt

import (
	"strings"
	"testing"
)

var aclCases = []struct {
	name, user, topic string
	publish, read     bool
}{
	{"update", "", "$hw/events/device/d1/twin/update", true, true},
	{"ns update", "", "$hw/events/device/ns/d1/twin/update", true, true},
	{"get", "", "$hw/events/device/d1/twin/get", true, true},
	{"state", "", "$hw/events/device/ns/d1/state/update", true, true},
	{"membership get", "", "$hw/events/node/n1/membership/get", true, true},
	{"upload", "", "$hw/events/upload/x", true, true},
	{"upload bare", "", "$hw/events/upload", true, true},
	{"user topic", "", "app/user/t", true, true},
	{"records", "", "SYS/dis/upload_records", true, true},
	{"app topic", "", "sensors/temp", true, true},
	{"result", "", "$hw/events/device/d1/twin/update/result", false, true},
	{"document", "", "$hw/events/device/ns/d1/twin/update/document", false, true},
	{"delta", "", "$hw/events/device/d1/twin/update/delta", false, true},
	{"get result", "", "$hw/events/device/d1/twin/get/result", false, true},
	{"state result", "", "$hw/events/device/d1/state/update/result", false, true},
	{"cloud sync", "", "$hw/events/device/d1/twin/cloud_updated", false, true},
	{"device updated", "", "$hw/events/device/ns/d1/updated", false, true},
	{"membership updated", "", "$hw/events/node/n1/membership/updated", false, true},
	{"membership result", "", "$hw/events/node/n1/membership/get/result", false, true},
	{"auth info", "", "$hw/events/node/n1/authInfo/get/result", false, true},
	{"sys", "", "$SYS/broker/uptime", false, true},
	{"three levels", "", "$hw/events/device/a/b/c/twin/update", true, true},
	{"no id", "", "$hw/events/device//twin/update", false, true},
	{"other hw", "", "$hw/other", false, true},
	{"limited own", "lim", "$hw/events/device/ns/t-1/twin/update", true, true},
	{"limited own result", "lim", "$hw/events/device/ns/t-1/twin/update/result", false, true},
	{"limited other", "lim", "$hw/events/device/ns/p-1/twin/update", false, false},
	{"limited other result", "lim", "$hw/events/device/ns/p-1/twin/get/result", false, false},
	{"limited one level", "lim", "$hw/events/device/t-1/twin/update", false, false},
	{"limited three levels", "lim", "$hw/events/device/ns/t-1/x/twin/update", false, false},
	{"limited membership", "lim", "$hw/events/node/n1/membership/get", false, false},
	{"limited membership updated", "lim", "$hw/events/node/n1/membership/updated", false, false},
	{"limited filter", "lim", "$hw/#", false, true},
	{"limited upload", "lim", "$hw/events/upload/x", true, true},
	{"limited app topic", "lim", "a/b", true, true},
}

func testACL() acl { return acl{devices: map[string][]string{"lim": {"ns/t-*"}}} }

func TestACLRules(t *testing.T) {
	a := testACL()
	for _, c := range aclCases {
		t.Run(c.name, func(t *testing.T) {
			if got := a.canPublish([]byte(c.user), c.topic); got != c.publish {
				t.Errorf("canPublish(%q, %q) = %v, want %v", c.user, c.topic, got, c.publish)
			}
			if got := a.canRead([]byte(c.user), c.topic); got != c.read {
				t.Errorf("canRead(%q, %q) = %v, want %v", c.user, c.topic, got, c.read)
			}
		})
	}
}

// FuzzACL: no topic panics, and none lets a limited user publish or read a
// device topic whose id is not its own.
func FuzzACL(f *testing.F) {
	for _, c := range aclCases {
		f.Add(c.user, c.topic)
	}
	a := testACL()
	f.Fuzz(func(t *testing.T, user, topic string) {
		pub, read := a.canPublish([]byte(user), topic), a.canRead([]byte(user), topic)
		if user != "lim" || !strings.HasPrefix(topic, prefixDevice) || strings.ContainsAny(topic, "+#") {
			return
		}
		if id, _, ok := deviceID(topic); (pub || read) && (!ok || !strings.HasPrefix(id, "ns/t-") || strings.Count(id, "/") != 1) {
			t.Errorf("limited user may use %q (publish %v, read %v)", topic, pub, read)
		}
	})
}

func BenchmarkACLRead(b *testing.B) {
	a := testACL()
	u := []byte("lim")
	for b.Loop() {
		a.canRead(u, "$hw/events/device/ns/t-1/twin/update/result")
	}
}
