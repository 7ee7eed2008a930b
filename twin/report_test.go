package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"edgenode/bus"
)

// cloudSide is the cloud end of twin's reports: it takes what twin sends
// to the hub module, records it, applies each edge_updated report as
// KubeEdge's devicecontroller does (v1.23.1 cloud/pkg/devicecontroller/
// controller/upstream.go: for each twin listed, an actual value becomes
// the reported value, an expected value the observed desired one) and
// confirms reports when told, with their id as parent id. The
// confirmations go straight into the communication worker's queue, so
// flush, whose marker goes into the same queue after them, proves they are
// handled (through the bus they would pass the dispatcher goroutine, and
// env.report covers that way).
type cloudSide struct {
	t    testing.TB
	b    *bus.Bus
	tw   *Twin
	got  []bus.Message
	open []bus.ID
	// twins holds per device resource and twin "actual" and "expected":
	// the value and version the cloud last got.
	twins map[string]map[string]string
}

func newCloudSide(t testing.TB, b *bus.Bus, tw *Twin) *cloudSide {
	return &cloudSide{t: t, b: b, tw: tw, twins: map[string]map[string]string{}}
}

// take receives every message queued for the hub and returns how many.
func (c *cloudSide) take() int {
	c.t.Helper()
	n := 0
	for c.b.Depth(bus.ModuleHub) > 0 {
		m, err := c.b.Receive(context.Background(), bus.ModuleHub)
		if err != nil {
			c.t.Fatal(err)
		}
		c.got = append(c.got, m)
		c.open = append(c.open, m.Header.ID)
		if strings.HasSuffix(m.Route.Resource, "/"+bus.ResTwinEdgeUpdated) {
			c.apply(m)
		}
		n++
	}
	return n
}

func (c *cloudSide) apply(m bus.Message) {
	c.t.Helper()
	var r twinMessage
	if err := json.Unmarshal(m.Content, &r); err != nil {
		c.t.Fatalf("edge_updated %s: %v", m.Content, err)
	}
	dev := c.twins[m.Route.Resource]
	if dev == nil {
		dev = map[string]string{}
		c.twins[m.Route.Resource] = dev
	}
	for k, tw := range r.Twin {
		if tw == nil {
			continue
		}
		if v := tw.Actual; v != nil && v.Value != nil {
			dev[k+" actual"] = *v.Value + " " + versionString(tw.ActualVersion)
		}
		if v := tw.Expected; v != nil && v.Value != nil {
			dev[k+" expected"] = *v.Value + " " + versionString(tw.ExpectedVersion)
		}
	}
}

func versionString(v *twinVersion) string {
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// confirm answers every message taken and not yet confirmed.
func (c *cloudSide) confirm() {
	c.t.Helper()
	for _, id := range c.open {
		m := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpResponse, bus.ResTwin, nil)
		m.Header.ParentID = id
		c.tw.com.inbox <- &job{act: actConfirm, msg: m}
	}
	c.open = c.open[:0]
}

// reports returns the messages taken on resource.
func (c *cloudSide) reports(resource string) []bus.Message {
	var out []bus.Message
	for _, m := range c.got {
		if m.Route.Resource == resource {
			out = append(out, m)
		}
	}
	return out
}

// flush waits until the twin and communication workers have handled
// everything queued before: a twin change queues its report before the
// twin worker takes the next job.
func flush(tw *Twin) {
	for _, w := range []*worker{tw.twin, tw.dev, tw.com} {
		done := make(chan struct{})
		w.inbox <- &job{done: done}
		<-done
	}
}

// stored returns what the cloud should hold for the twins of device id,
// as cloudSide records it, read from the SQLite rows.
func stored(e *env, id string) map[string]string {
	out := map[string]string{}
	for _, r := range e.rows().Twins {
		if r.DeviceID != id {
			continue
		}
		// A side never set has no version (and may hold "").
		if r.ActualVersion != "" {
			out[r.Name+" actual"] = r.Actual.String + " " + r.ActualVersion
		}
		if r.ExpectedVersion != "" {
			out[r.Name+" expected"] = r.Expected.String + " " + r.ExpectedVersion
		}
	}
	return out
}

// TestReportBurst: a burst of updates to one device, through the broker,
// while the cloud confirms slowly (once every 25 updates), reaches the
// cloud as a handful of merged reports, and the cloud ends with the
// latest value and version of every twin side touched. Twin a's actual
// and expected sides and twin b's actual are updated in turn, so a merge
// that kept whole entries instead of sides would lose a's other side.
func TestReportBurst(t *testing.T) {
	x := startE2E(t, Config{}, nil)
	cloud := newCloudSide(t, x.b, x.tw)
	x.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	x.next() // membership/updated
	x.connect()
	flush(x.tw)
	cloud.take() // detail request
	cloud.confirm()

	const n, every = 200, 25
	const dev = "$hw/events/device/default/s1/twin/update"
	for i := range n {
		var twin string
		switch i % 4 {
		case 0:
			twin = `"a":{"actual":{"value":"a` + fmt.Sprint(i) + `"}}`
		case 2:
			twin = `"a":{"expected":{"value":"e` + fmt.Sprint(i) + `"}}`
		default:
			twin = `"b":{"actual":{"value":"b` + fmt.Sprint(i) + `"}}`
		}
		x.publish(dev, `{"event_id":"u`+fmt.Sprint(i)+`","twin":{`+twin+`}}`)
		for p := x.next(); p.Topic != dev+"/result"; p = x.next() {
		}
		if i%every == every-1 {
			flush(x.tw)
			cloud.take()
			cloud.confirm()
		}
	}
	for range 10 { // until the cloud has everything
		flush(x.tw)
		if cloud.take() == 0 {
			break
		}
		cloud.confirm()
	}
	res := "device/default/s1/" + bus.ResTwinEdgeUpdated
	got := cloud.reports(res)
	if len(got) > n/every+2 || len(got) < 2 {
		t.Errorf("%d updates sent %d reports, want 2..%d (one per confirmation, and the last)", n, len(got), n/every+2)
	}
	want := stored(x.env, "default/s1")
	delete(want, "temp actual") // set by the membership, never reported
	delete(want, "temp expected")
	if fmt.Sprint(cloud.twins[res]) != fmt.Sprint(want) {
		t.Errorf("cloud holds %v\nwant the stored twins %v", cloud.twins[res], want)
	}
	var last twinMessage
	if err := json.Unmarshal(got[len(got)-1].Content, &last); err != nil {
		t.Fatal(err)
	}
	a, b := last.Twin["a"], last.Twin["b"]
	if a == nil || b == nil || a.Actual == nil || a.Expected == nil || b.Actual == nil ||
		*a.Actual.Value != fmt.Sprint("a", n-4) || *a.Expected.Value != fmt.Sprint("e", n-2) || *b.Actual.Value != fmt.Sprint("b", n-1) {
		t.Errorf("last report = %s, want a actual a%d, a expected e%d, b actual b%d", got[len(got)-1].Content, n-4, n-2, n-1)
	}
	if last.EventID == "" {
		t.Errorf("last report has no event_id")
	}
}

const addTwo = `{"added_devices":[{"id":"default/d1","name":"d1"},{"id":"default/d2","name":"d2"}]}`

// TestReportPerDevice: reports of two devices are never merged together,
// and one device's unconfirmed report does not hold back the other's.
func TestReportPerDevice(t *testing.T) {
	e := newEnv(t, Config{})
	cloud := newCloudSide(t, e.b, e.tw)
	e.cloud(bus.OpUpdate, bus.ResMembership, addTwo)
	e.pub() // membership/updated
	e.connect()
	e.settle()
	cloud.take()
	cloud.confirm()
	up := func(dev, val string) {
		e.mqtt("$hw/events/device/default/"+dev+"/twin/update", `{"twin":{"t":{"actual":{"value":"`+val+`"}}}}`)
	}
	// The first update of each device is committed on its own: updates
	// queued together are committed as one and reported as one
	// (TestTwinUpdateBatchReport).
	up("d1", "1")
	up("d2", "1")
	e.settle()
	up("d1", "2")
	up("d2", "2")
	up("d1", "3")
	e.settle()
	if n := cloud.take(); n != 2 {
		t.Fatalf("before a confirmation %d reports sent, want 2 (the first of each device)", n)
	}
	cloud.confirm()
	e.settle()
	if n := cloud.take(); n != 2 {
		t.Fatalf("after the confirmation %d reports sent, want 2 (the merged next of each device)", n)
	}
	for dev, want := range map[string]string{"d1": "3", "d2": "2"} {
		res := "device/default/" + dev + "/" + bus.ResTwinEdgeUpdated
		got := cloud.reports(res)
		if len(got) != 2 || !strings.Contains(cloud.twins[res]["t actual"], want+" ") {
			t.Errorf("%s: %d reports, cloud holds %v, want 2 and actual %s", dev, len(got), cloud.twins[res], want)
		}
	}
}

// TestReportOffline: reports made while the cloud is away merge per
// device and go out on reconnect in the order of each device's first
// held report, the twin reports and the state reports (only the newest
// state counts) apart.
func TestReportOffline(t *testing.T) {
	e := newEnv(t, Config{})
	cloud := newCloudSide(t, e.b, e.tw)
	e.cloud(bus.OpUpdate, bus.ResMembership, addTwo)
	e.pub() // membership/updated
	up := func(dev, twin string) {
		e.mqtt("$hw/events/device/default/"+dev+"/twin/update", `{"twin":{`+twin+`}}`)
	}
	// The twin and the state worker both send to the cloud: settle fixes
	// the order of the first reports.
	up("d2", `"x":{"actual":{"value":"1"}}`)
	up("d1", `"x":{"actual":{"value":"1"}}`)
	e.settle()
	e.mqtt("$hw/events/device/default/d1/state/update", `{"state":"online"}`)
	e.settle()
	up("d2", `"x":{"actual":{"value":"2"}}`)
	up("d1", `"y":{"expected":{"value":"1"}}`)
	e.mqtt("$hw/events/device/default/d1/state/update", `{"state":"offline"}`)
	up("d1", `"x":{"actual":{"value":"3"}}`)
	e.settle()
	if n := cloud.take(); n != 0 {
		t.Fatalf("while disconnected %d messages sent, want 0", n)
	}
	e.connect()
	e.settle()
	cloud.take()
	var got []string
	for _, m := range cloud.got {
		got = append(got, m.Route.Resource)
	}
	want := []string{"device/default/d2/twin/edge_updated", "device/default/d1/twin/edge_updated",
		"device/default/d1/state/update", bus.ResMembershipDetail}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("on connect sent %v, want %v", got, want)
	}
	for dev, want := range map[string]string{"d1": "map[x actual:3 {\"cloud\":0,\"edge\":2} y expected:1 {\"cloud\":0,\"edge\":1}]",
		"d2": "map[x actual:2 {\"cloud\":0,\"edge\":2}]"} {
		if got := fmt.Sprint(cloud.twins["device/default/"+dev+"/"+bus.ResTwinEdgeUpdated]); got != want {
			t.Errorf("cloud holds for %s %s, want %s", dev, got, want)
		}
	}
	if s := cloud.got[2].Content; !strings.Contains(string(s), `\"state\":\"offline\"`) {
		t.Errorf("state report %s, want the newest state, offline", s)
	}
}

// commTest runs the communication worker alone on a bus with a hub module,
// under synctest; send queues a report of device dev with twin k's actual
// value v, hub returns what reached the hub.
type commTest struct {
	t  *testing.T
	b  *bus.Bus
	tw *Twin
}

func newCommTest(t *testing.T, cfg Config) *commTest {
	b := bus.New(bus.Config{}, nil)
	if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
		t.Fatal(err)
	}
	cfg.NodeName = "n1"
	tw, err := New(cfg, b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { tw.com.loop(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &commTest{t: t, b: b, tw: tw}
}

func (c *commTest) send(dev, k, v string) bus.Message {
	content := `{"event_id":"` + v + `","timestamp":1,"twin":{"` + k + `":{"actual":{"value":"` + v + `"}}}}`
	m := bus.NewMessage(bus.ModuleTwin, bus.GroupResource, bus.OpUpdate, "device/"+dev+"/"+bus.ResTwinEdgeUpdated, []byte(content))
	c.tw.com.inbox <- &job{act: actSendToCloud, msg: m}
	return m
}

func (c *commTest) hub() []bus.Message {
	synctest.Wait()
	var out []bus.Message
	for c.b.Depth(bus.ModuleHub) > 0 {
		m, _ := c.b.Receive(c.t.Context(), bus.ModuleHub)
		out = append(out, m)
	}
	return out
}

func (c *commTest) confirm(id bus.ID) {
	m := bus.NewMessage(bus.SourceDeviceController, bus.GroupTwin, bus.OpResponse, bus.ResTwin, nil)
	m.Header.ParentID = id
	c.tw.com.inbox <- &job{act: actConfirm, msg: m}
}

// report sends a report of twin k of device dev, confirms it once it has
// gone to the hub, and returns what the hub got after the confirmation.
func (c *commTest) report(dev, k, v string) []bus.Message {
	r := c.send(dev, k, v)
	c.hub()
	c.confirm(r.Header.ID)
	return c.hub()
}

// disconnect tells the worker that the link went down.
func (c *commTest) disconnect() {
	c.tw.com.inbox <- &job{act: actLifeCycle, msg: bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect,
		bus.ResNodeConnection, bus.JSONString(bus.CloudDisconnected))}
}

func (c *commTest) connect() {
	c.tw.com.inbox <- &job{act: actLifeCycle, msg: bus.NewMessage(bus.ModuleEdgeHub, bus.GroupTwin, bus.OpConnect,
		bus.ResNodeConnection, bus.JSONString(bus.CloudConnected))}
	for _, m := range c.hub() {
		c.confirm(m.Header.ID)
	}
}

// TestReportResend: a device's unconfirmed report is resent after the
// idle interval, the report merged behind it is not sent before the
// confirmation; after it, the merged one goes, with the id of the first
// report merged into it.
func TestReportResend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommTest(t, Config{})
		c.connect()
		r1 := c.send("a", "k", "1")
		if got := c.hub(); len(got) != 1 || got[0].Header.ID != r1.Header.ID {
			t.Fatalf("sent %d, want r1", len(got))
		}
		r2 := c.send("a", "k", "2")
		c.send("a", "k", "3")
		if got := c.hub(); len(got) != 0 {
			t.Fatalf("while r1 is unconfirmed sent %d, want 0", len(got))
		}
		time.Sleep(61 * time.Second)
		got := c.hub()
		if len(got) != 1 || got[0].Header.ID != r1.Header.ID || c.tw.Stats().Resent != 1 {
			t.Fatalf("after 60 s idle sent %d (resent %d), want r1 again", len(got), c.tw.Stats().Resent)
		}
		c.confirm(r1.Header.ID)
		got = c.hub()
		want := `{"event_id":"3","timestamp":1,"twin":{"k":{"actual":{"value":"3"}}}}`
		if len(got) != 1 || got[0].Header.ID != r2.Header.ID || string(got[0].Content) != want {
			t.Fatalf("after the confirmation sent %v, want the merged report %s under r2's id", got, want)
		}
	})
}

// TestReportSupersede: updates that never leave the worker idle for the
// resend interval do not wait forever behind a report the cloud does not
// confirm: once that report is older than the interval, the next one,
// with it folded in, goes in its place.
func TestReportSupersede(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommTest(t, Config{})
		c.connect()
		c.send("a", "k", "1")
		c.send("a", "j", "2")
		if got := c.hub(); len(got) != 1 {
			t.Fatalf("sent %d, want 1", len(got))
		}
		var sent []bus.Message
		for i := range 7 {
			time.Sleep(10 * time.Second)
			c.send("a", "k", fmt.Sprint(i+3))
			sent = append(sent, c.hub()...)
		}
		want := `{"event_id":"8","timestamp":1,"twin":{"j":{"actual":{"value":"2"}},"k":{"actual":{"value":"8"}}}}`
		if len(sent) != 1 || string(sent[0].Content) != want || c.tw.Stats().Resent != 0 {
			t.Errorf("while updates kept coming sent %v, want one report %s", sent, want)
		}
	})
}

// TestMergeTwin: side by side, each side with its own version; the newer
// optional and type win; a deleted twin replaces what came before it.
func TestMergeTwin(t *testing.T) {
	str := func(s string) *string { return &s }
	side := func(v string) *twinValue { return &twinValue{Value: str(v)} }
	ver := func(e int64) *twinVersion { return &twinVersion{Edge: e} }
	yes, no := true, false
	for _, tc := range []struct {
		name       string
		a, b, want *msgTwin
	}{
		{"other side kept",
			&msgTwin{Actual: side("1"), ActualVersion: ver(1), Optional: &yes, Metadata: &typeMetadata{Type: "string"}},
			&msgTwin{Expected: side("2"), ExpectedVersion: ver(1), Optional: &no},
			&msgTwin{Expected: side("2"), ExpectedVersion: ver(1), Actual: side("1"), ActualVersion: ver(1), Optional: &no, Metadata: &typeMetadata{Type: "string"}}},
		{"same side: newer wins",
			&msgTwin{Actual: side("1"), ActualVersion: ver(1)},
			&msgTwin{Actual: side("2"), ActualVersion: ver(2)},
			&msgTwin{Actual: side("2"), ActualVersion: ver(2)}},
		{"deleted replaces",
			&msgTwin{Actual: side("1"), ActualVersion: ver(1)},
			&msgTwin{Metadata: &typeMetadata{Type: typeDeleted}, ActualVersion: ver(2)},
			&msgTwin{Metadata: &typeMetadata{Type: typeDeleted}, ActualVersion: ver(2)}},
		{"revived after delete keeps the newer version of a side with no value",
			&msgTwin{Metadata: &typeMetadata{Type: typeDeleted}, ExpectedVersion: ver(2), ActualVersion: ver(2)},
			&msgTwin{Actual: side("3"), ActualVersion: ver(3), Metadata: &typeMetadata{Type: "string"}},
			&msgTwin{Actual: side("3"), ActualVersion: ver(3), ExpectedVersion: ver(2), Metadata: &typeMetadata{Type: "string"}}},
		{"null replaces", &msgTwin{Actual: side("1")}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := json.Marshal(mergeTwin(tc.a, tc.b))
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("mergeTwin() = %s, want %s", got, want)
			}
		})
	}
}

// TestReportRepeatsNewTwins: cloudcore v1.23.1 drops the values of the
// first report of a twin that the device's status does not list yet
// (comm.repeatNew). Once the cloud confirms the first report of a twin
// since the link came up, the twin's entry goes once more: in a report of its
// own, or with the report waiting next, under that report's newer value.
// A twin confirmed before is not repeated, nor is anything in v0.3.
func TestReportRepeatsNewTwins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommTest(t, Config{})
		c.connect()
		got := c.report("a", "k", "1")
		if len(got) != 1 || got[0].Route.Resource != "device/a/twin/edge_updated" ||
			!strings.Contains(string(got[0].Content), `"twin":{"k":{"actual":{"value":"1"}}}`) {
			t.Fatalf("after the first confirmation of k sent %v, want k's report once more", got)
		}
		c.confirm(got[0].Header.ID)
		if got := c.hub(); len(got) != 0 {
			t.Fatalf("after the repeat's confirmation sent %v, want nothing", got)
		}
		if got := c.report("a", "k", "2"); len(got) != 0 {
			t.Fatalf("after a second report of k sent %v, want nothing", got)
		}
		r3 := c.send("a", "j", "3")
		c.hub()
		r4 := c.send("a", "k", "4") // waits for r3's confirmation
		c.confirm(r3.Header.ID)
		got = c.hub()
		want := `{"event_id":"4","timestamp":1,"twin":{"j":{"actual":{"value":"3"}},"k":{"actual":{"value":"4"}}}}`
		if len(got) != 1 || got[0].Header.ID != r4.Header.ID || string(got[0].Content) != want {
			t.Fatalf("after j's first confirmation sent %v, want the next report with j in it: %s", got, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		c := newCommTest(t, Config{Era: bus.EraV03})
		c.connect()
		if got := c.report("a", "k", "1"); len(got) != 0 {
			t.Fatalf("v0.3: after the first confirmation of k sent %v, want nothing", got)
		}
	})
}

// TestRepeatAfterReconnect: a Device deleted and created again at the
// cloud while the link was down lists none of its twins, and nothing the
// node gets on reconnecting tells it so; the first report of each twin
// after a reconnect is repeated as after a start (comm.repeatNew).
func TestRepeatAfterReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCommTest(t, Config{})
		c.connect()
		first := func(v string) {
			t.Helper()
			got := c.report("a", "k", v)
			if len(got) != 1 || !strings.Contains(string(got[0].Content), `"k":{"actual":{"value":"`+v+`"}}`) {
				t.Fatalf("after the confirmation of k=%s sent %v, want k's report once more", v, got)
			}
			c.confirm(got[0].Header.ID)
			c.hub()
		}
		first("1")
		c.disconnect()
		c.connect()
		first("2")
		if got := c.report("a", "k", "3"); len(got) != 0 {
			t.Fatalf("after a second report of k since the reconnect sent %v, want nothing", got)
		}
	})
}

// TestRepeatAfterReadd: a device removed and added again is a new Device
// to the cloud, whose status lists none of its twins yet, so the first
// report of each of its twins after the re-add is repeated as after a
// start (comm.repeatNew).
func TestRepeatAfterReadd(t *testing.T) {
	e := setupS1(t, Config{})
	e.connect()
	e.report() // detail request
	update := func(v string) {
		t.Helper()
		e.mqtt("$hw/events/device/default/s1/twin/update", `{"event_id":"u`+v+`","twin":{"temp":{"actual":{"value":"`+v+`"}}}}`)
		m := e.report()
		e.settle()
		if n := e.b.Depth(bus.ModuleHub); n != 1 {
			t.Fatalf("after the first report of temp (%s) %d messages for the cloud, want its repeat", v, n)
		}
		e.repeat(m)
	}
	update("2")
	e.cloud(bus.OpUpdate, bus.ResMembership, `{"event_id":"r","removed_devices":[{"id":"default/s1","name":"s1"}]}`)
	e.cloud(bus.OpUpdate, bus.ResMembership, addS1)
	e.settle() // the membership worker is not the twin worker
	if v := stored(e, "default/s1")["temp actual"]; v != `1 {"cloud":1,"edge":1}` {
		t.Fatalf("temp after the re-add = %s, want the added device's 1 {cloud:1,edge:1}", v)
	}
	update("3")
	e.mqtt("$hw/events/device/default/s1/twin/update", `{"event_id":"u4","twin":{"temp":{"actual":{"value":"4"}}}}`)
	e.report()
	e.settle()
	if n := e.b.Depth(bus.ModuleHub); n != 0 {
		t.Errorf("after a second report of temp since the re-add %d messages for the cloud, want none", n)
	}
}
