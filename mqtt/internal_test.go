package mqtt_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// standIns returns a bus with plain modules in the twin and hub groups, the
// stand-ins for DeviceTwin and EdgeHub.
func standIns(t *testing.T, queueLen int) *bus.Bus {
	t.Helper()
	b := bus.New(bus.Config{QueueLen: queueLen}, mqtttest.Log(t))
	if err := b.AddModule(bus.ModuleTwin, bus.GroupTwin); err != nil {
		t.Fatal(err)
	}
	if err := b.AddModule(bus.ModuleHub, bus.GroupHub); err != nil {
		t.Fatal(err)
	}
	return b
}

func recv(t *testing.T, b *bus.Bus, m bus.Module) bus.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msg, err := b.Receive(ctx, m)
	if err != nil {
		t.Fatalf("Receive(%s) = %v, want a message (depths: hub %d, twin %d)", m, err, b.Depth(bus.ModuleHub), b.Depth(bus.ModuleTwin))
	}
	return msg
}

// sentinel publishes a marker on a hub topic and checks that it is the next
// message on the hub: everything published before it by the same client
// has been routed (MQTT keeps one client's order, and so does EventBus).
func sentinel(t *testing.T, c paho.Client, b *bus.Bus) {
	t.Helper()
	if err := mqtttest.Wait(c.Publish("$hw/events/upload/sentinel", 1, false, "end")); err != nil {
		t.Fatal(err)
	}
	got := recv(t, b, bus.ModuleHub)
	if r := got.Route.Resource; r != "$hw/events/upload/sentinel" && r != base64.URLEncoding.EncodeToString([]byte("$hw/events/upload/sentinel")) {
		t.Fatalf("hub got %s %q before the sentinel, want nothing", got.Route.Operation, got.Route.Resource)
	}
}

type route struct {
	To        bus.Module
	Op        bus.Op
	Group     bus.Group
	Source    bus.Module
	Resource  string
	Payload   string
	HasHeader bool
}

// TestIngressInternal publishes on every subscribed topic with a real paho
// client and checks what reaches the twin and hub stand-ins (docs/protocol.md
// 4.2).
func TestIngressInternal(t *testing.T) {
	for _, era := range []bus.Era{bus.EraV123, bus.EraV03} {
		t.Run(era.String(), func(t *testing.T) {
			b := standIns(t, 64)
			eb := mqtttest.Start(t, mqtt.Config{Era: era}, b, mqtttest.Store(t))
			c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
			testIngress(t, c, b, era, true)
		})
	}
}

// testIngress publishes on every subscribed topic. With acl (the embedded
// broker), .../twin/cloud_updated, which stands for the cloud, is refused.
func testIngress(t *testing.T, c paho.Client, b *bus.Bus, era bus.Era, acl bool) {
	t.Helper()
	enc := func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }
	hubOp, hubRes := bus.OpUpload, func(s string) string { return s }
	if era == bus.EraV03 {
		hubOp, hubRes = bus.OpResponse, enc
	}
	cases := []struct {
		topic string
		want  route
	}{
		{"$hw/events/device/dev1/state/update", route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: "$hw/events/device/dev1/state/update"}},
		{"$hw/events/device/default/dev1/state/update", route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: "$hw/events/device/default/dev1/state/update"}},
		{"$hw/events/device/dev1/twin/update", route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: "$hw/events/device/dev1/twin/update"}},
		{"$hw/events/device/dev1/twin/get", route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: "$hw/events/device/dev1/twin/get"}},
		{"$hw/events/device/default/dev1/twin/update", route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: "$hw/events/device/default/dev1/twin/update"}},
		{"$hw/events/node/node1/membership/get", route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: "$hw/events/node/node1/membership/get"}},
		{"$hw/events/upload/a/b", route{To: bus.ModuleHub, Op: hubOp, Resource: hubRes("$hw/events/upload/a/b")}},
		{"$hw/events/upload", route{To: bus.ModuleHub, Op: hubOp, Resource: hubRes("$hw/events/upload")}},
		{"a/user", route{To: bus.ModuleHub, Op: hubOp, Resource: hubRes("a/user")}},
		{"SYS/dis/upload_records", route{To: bus.ModuleHub, Op: hubOp, Resource: "SYS/dis/upload_records"}},
		{"default/user/temperature", route{To: bus.ModuleHub, Op: hubOp, Resource: hubRes("default/user/temperature")}},
		{"app/user/a/b/c", route{To: bus.ModuleHub, Op: hubOp, Resource: hubRes("app/user/a/b/c")}},
	}
	cloudSync := "$hw/events/device/default/dev1/twin/cloud_updated"
	if !acl {
		cases = append(cases, struct {
			topic string
			want  route
		}{cloudSync, route{To: bus.ModuleTwin, Op: bus.OpResponse, Resource: cloudSync}})
	}
	for i, tc := range cases {
		payload := fmt.Sprintf(`{"event_id":"%d","quote":"\"x\""}`, i)
		if err := mqtttest.Wait(c.Publish(tc.topic, 1, false, payload)); err != nil {
			t.Fatalf("publish %s: %v", tc.topic, err)
		}
		msg := recv(t, b, tc.want.To)
		s, _ := bus.ContentString(msg.Content)
		if tc.want.To == bus.ModuleTwin {
			s = string(msg.Content) // as it arrived
		}
		got := route{To: tc.want.To, Op: msg.Route.Operation, Group: msg.Route.Group, Source: msg.Route.Source,
			Resource: msg.Route.Resource, Payload: s, HasHeader: !msg.Header.ID.IsZero() && msg.Header.Timestamp > 0}
		want := tc.want
		want.Group, want.Source, want.Payload, want.HasHeader = bus.GroupUser, bus.ModuleBusSrc, payload, true
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("publish on %s: bus message -want +got:\n%s", tc.topic, diff)
		}
	}
	// Topics nobody subscribed to, too few or too many levels for the
	// device filters, and topics the ACL refuses reach neither module. QoS
	// 0: the embedded broker disconnects an MQTT 3.1.1 client whose QoS 1
	// publish the ACL refuses, as the protocol has no refusal to send.
	neither := []string{"other/topic", "$hw/events/device/dev1/state", "$hw/events/device/a/b/c/state/update",
		"$hw/events/device/dev1/twin/update/result", "$hw/events/node/n/membership/get/result", "user/x"}
	if acl {
		neither = append(neither, cloudSync)
	}
	for _, topic := range neither {
		if err := mqtttest.Wait(c.Publish(topic, 0, false, "x")); err != nil {
			t.Fatal(err)
		}
	}
	sentinel(t, c, b)
	if n := b.Depth(bus.ModuleTwin); n != 0 {
		t.Errorf("twin queue holds %d messages, want 0", n)
	}
}

// TestDeliveredOnce: a topic matching a static and a dynamic filter, and
// two overlapping dynamic filters, is routed once.
func TestDeliveredOnce(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{}, b, mqtttest.Store(t))
	for _, f := range []string{"x/user/y", "x/+/y", "x/#"} {
		if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, f, nil)); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, eb, func(s mqtt.Stats) bool { return s.Subscribed == len(mqtt.StaticTopics())+3 })
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	for _, topic := range []string{"x/user/y", "x"} { // "x/#" matches "x" too
		if err := mqtttest.Wait(c.Publish(topic, 1, false, "once")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, b, bus.ModuleHub); got.Route.Resource != topic {
			t.Fatalf("hub got %q, want %q", got.Route.Resource, topic)
		}
	}
	sentinel(t, c, b)

	// Unsubscribing "x/#" leaves "x" to the stored filter "x".
	for _, m := range []bus.Message{
		bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, "x", nil),
		bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpUnsubscribe, "x/#", nil),
		bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, "bad/#/", nil), // done marker
	} {
		if err := b.Send(bus.ModuleMQTT, m); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, eb, func(s mqtt.Stats) bool { return s.BadRequests == 1 && s.Subscribed == len(mqtt.StaticTopics())+3 })
	if err := mqtttest.Wait(c.Publish("x", 1, false, "still")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b, bus.ModuleHub); got.Route.Resource != "x" {
		t.Fatalf("hub got %q, want x", got.Route.Resource)
	}
	if err := mqtttest.Wait(c.Publish("x/z", 1, false, "gone")); err != nil {
		t.Fatal(err)
	}
	sentinel(t, c, b)
}

// waitStats waits for the egress loop to have handled earlier messages. It
// polls Stats, which has no change notification; the bus has no reply for
// subscribe (KubeEdge sends none).
func waitStats(t *testing.T, eb *mqtt.EventBus, ok func(mqtt.Stats) bool) mqtt.Stats {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := eb.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats() = %+v, condition not reached", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subscriber connects a paho client subscribed to the filters and returns
// the channel of messages it receives.
func subscriber(t *testing.T, server string, filters ...string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 256)
	// One default handler and no per-filter handlers: paho calls every
	// handler whose filter matches, and its matcher lets "#" match "$hw/...".
	o := mqtttest.ClientOptions(server).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { ch <- m })
	c := mqtttest.Connect(t, o)
	for _, f := range filters {
		if err := mqtttest.Wait(c.Subscribe(f, 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	return ch
}

func next(t *testing.T, ch <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(2 * time.Minute):
		t.Fatal("no MQTT message within 2 minutes")
		return nil
	}
}

type egressCase struct {
	name      string
	msg       bus.Message
	topic     string
	payload   string
	badReqs   uint64
	published bool
}

func egressCases() []egressCase {
	return []egressCase{
		{"publish bytes", bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "$hw/events/device/d1/twin/update/result", []byte(`{"event_id":"1","timestamp":5}`)),
			"$hw/events/device/d1/twin/update/result", `{"event_id":"1","timestamp":5}`, 0, true},
		{"publish JSON string", bus.NewMessage(bus.SourceEdgeController, bus.GroupUser, bus.OpPublish, "app/cmd", bus.JSONString(`on "now"`)),
			"app/cmd", `on "now"`, 0, true},
		{"message", bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpMessage, "", []byte(`{"message":{"topic":"app/msg","z":1,"a":"b"}}`)),
			"app/msg", `{"a":"b","topic":"app/msg","z":1}`, 0, true},
		{"get_result auth_info", bus.NewMessage(bus.SourceEdgeController, bus.GroupUser, bus.OpGetResult, bus.ResAuthInfo, []byte(`{"secret":"s"}`)),
			"$hw/events/node/node1/authInfo/get/result", `{"secret":"s"}`, 0, true},
		{"publish wildcard topic", bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "app/+", []byte(`x`)), "", "", 1, false},
		{"message without topic", bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpMessage, "", []byte(`{"message":{"a":1}}`)), "", "", 1, false},
		{"message not JSON", bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpMessage, "", []byte(`{"message":`)), "", "", 1, false},
		{"get_result other", bus.NewMessage(bus.SourceEdgeController, bus.GroupUser, bus.OpGetResult, "other", []byte(`{}`)), "", "", 0, false},
		{"node connection", bus.NewMessage(bus.ModuleEdgeHub, bus.GroupBus, bus.OpConnect, bus.ResNodeConnection, bus.JSONString(bus.CloudConnected)), "", "", 0, false},
	}
}

// TestEgressInternal sends each egress operation to module eventbus and checks
// what a paho subscriber of the embedded broker receives (docs/protocol.md
// 4.3).
func TestEgressInternal(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{}, b, mqtttest.Store(t))
	ch := subscriber(t, eb.Addr(), "#", "$hw/#")
	testEgress(t, b, eb, ch, 1)
}

func testEgress(t *testing.T, b *bus.Bus, eb *mqtt.EventBus, ch <-chan paho.Message, brokers uint64) {
	t.Helper()
	wantPub := eb.Stats().Published
	for _, c := range egressCases() {
		before := eb.Stats()
		if err := b.Send(bus.ModuleMQTT, c.msg); err != nil {
			t.Fatal(err)
		}
		// A marker after each case: when it arrives, the case is done.
		if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, "marker", []byte("m"))); err != nil {
			t.Fatal(err)
		}
		m := next(t, ch)
		if c.published {
			if m.Topic() != c.topic || string(m.Payload()) != c.payload {
				t.Errorf("%s: received %s %q, want %s %q", c.name, m.Topic(), m.Payload(), c.topic, c.payload)
			}
			m = next(t, ch)
			wantPub += brokers
		}
		if m.Topic() != "marker" {
			t.Errorf("%s: received %s %q, want only the marker", c.name, m.Topic(), m.Payload())
		}
		wantPub += brokers
		// The counter moves after the broker has delivered: wait for it.
		after := waitStats(t, eb, func(s mqtt.Stats) bool { return s.Published == wantPub })
		if got := after.BadRequests - before.BadRequests; got != c.badReqs {
			t.Errorf("%s: BadRequests grew by %d, want %d", c.name, got, c.badReqs)
		}
	}
}

// TestDynamicSubscribe: subscribe from the cloud reaches MQTT, is stored in
// sub_topics and survives a restart; unsubscribe undoes it.
func TestDynamicSubscribe(t *testing.T) {
	store := mqtttest.Store(t)
	ctx := context.Background()
	run := func(t *testing.T, sends ...bus.Message) (*bus.Bus, paho.Client, func()) {
		b := standIns(t, 64)
		cfg := mqtt.Config{Internal: mqtt.BrokerConfig{Listen: "127.0.0.1:0"}, NodeName: "node1"}
		eb, err := mqtt.New(cfg, b, store, mqtttest.Log(t))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- eb.Run(rctx) }()
		<-eb.Ready()
		for _, m := range sends {
			if err := b.Send(bus.ModuleMQTT, m); err != nil {
				t.Fatal(err)
			}
		}
		want := len(mqtt.StaticTopics()) + 1
		if len(sends) > 0 && sends[0].Route.Operation == bus.OpUnsubscribe {
			want--
		}
		waitStats(t, eb, func(s mqtt.Stats) bool { return s.Subscribed == want })
		c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
		return b, c, func() {
			c.Disconnect(50)
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v", err)
			}
		}
	}
	sub := bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, "factory/line1/+", nil)

	b, c, stop := run(t, sub)
	if err := mqtttest.Wait(c.Publish("factory/line1/temp", 1, false, "21")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b, bus.ModuleHub); got.Route.Resource != "factory/line1/temp" || got.Route.Operation != bus.OpUpload {
		t.Errorf("hub got %s %q, want upload factory/line1/temp", got.Route.Operation, got.Route.Resource)
	}
	stop()
	if got, err := store.SubTopics(ctx); err != nil || !cmp.Equal(got, []string{"factory/line1/+"}) {
		t.Fatalf("SubTopics() = %q, %v, want [factory/line1/+]", got, err)
	}

	// Restart: the stored filter is subscribed again.
	b, c, stop = run(t)
	if err := mqtttest.Wait(c.Publish("factory/line1/hum", 1, false, "40")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b, bus.ModuleHub); got.Route.Resource != "factory/line1/hum" {
		t.Errorf("after restart hub got %q, want factory/line1/hum", got.Route.Resource)
	}
	stop()

	// Unsubscribe: gone from MQTT and from the table; a static filter and a
	// bad filter are refused without touching the table.
	unsub := bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpUnsubscribe, "factory/line1/+", nil)
	b, c, stop = run(t, unsub,
		bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpUnsubscribe, "+/user/#", nil),
		bus.NewMessage(bus.SourceRouterEventBus, bus.GroupUser, bus.OpSubscribe, "bad/#/filter", nil))
	if err := mqtttest.Wait(c.Publish("factory/line1/temp", 1, false, "22")); err != nil {
		t.Fatal(err)
	}
	sentinel(t, c, b)
	if err := mqtttest.Wait(c.Publish("a/user/b", 1, false, "static still there")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b, bus.ModuleHub); got.Route.Resource != "a/user/b" {
		t.Errorf("hub got %q, want a/user/b", got.Route.Resource)
	}
	stop()
	if got, err := store.SubTopics(ctx); err != nil || len(got) != 0 {
		t.Errorf("SubTopics() after unsubscribe = %q, %v, want none", got, err)
	}
}

// TestAuth: on a non-loopback address the broker needs credentials; on
// loopback it is anonymous unless credentials are configured.
func TestAuth(t *testing.T) {
	b := standIns(t, 64)
	if _, err := mqtt.New(mqtt.Config{Internal: mqtt.BrokerConfig{Listen: "0.0.0.0:0"}}, b, mqtttest.Store(t), mqtttest.Log(t)); !errors.Is(err, mqtt.ErrNoCredentials) {
		t.Fatalf("New(listen 0.0.0.0, no credentials) = %v, want ErrNoCredentials", err)
	}
	cfg := mqtt.Config{Internal: mqtt.BrokerConfig{Listen: "0.0.0.0:0", Username: "dev", Password: "pw", AllowPlaintext: true}}
	eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
	_, port, _ := net.SplitHostPort(eb.Addr())
	addr := "127.0.0.1:" + port
	cases := []struct {
		name, user, pass, id string
		ok                   bool
	}{
		{"anonymous", "", "", "", false},
		{"wrong password", "dev", "nope", "", false},
		{"unknown user", "eve", "pw", "", false},
		{"user without password", "dev", "", "", false},
		{"right", "dev", "pw", "", true},
		{"inline client id", "dev", "pw", "inline", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := mqtttest.ClientOptions(addr)
			if c.user != "" {
				o.SetUsername(c.user)
			}
			if c.pass != "" {
				o.SetPassword(c.pass)
			}
			if c.id != "" {
				o.SetClientID(c.id)
			}
			cl := paho.NewClient(o)
			err := mqtttest.Wait(cl.Connect())
			if (err == nil) != c.ok {
				t.Errorf("connect as %q/%q id %q = %v, want ok %v", c.user, c.pass, c.id, err, c.ok)
			}
			if err == nil {
				cl.Disconnect(50)
			}
		})
	}
	if s := eb.Stats(); s.AuthRefused != 5 {
		t.Errorf("Stats().AuthRefused = %d, want 5", s.AuthRefused)
	}
}

// TestAuthFile: users from the credentials file in the data dir; a
// malformed file is a clear error at New.
func TestAuthFile(t *testing.T) {
	dir := t.TempDir()
	b := standIns(t, 64)
	write := func(s string) {
		if err := writeFile(dir+"/"+mqtt.DefaultCredentials, s); err != nil {
			t.Fatal(err)
		}
	}
	write("broken line\n")
	if _, err := mqtt.New(mqtt.Config{DataDir: dir, Internal: mqtt.BrokerConfig{Listen: "0.0.0.0:0"}}, b, mqtttest.Store(t), mqtttest.Log(t)); !errors.Is(err, mqtt.ErrBadCredentials) {
		t.Fatalf("New(bad credentials file) = %v, want ErrBadCredentials", err)
	}
	write("# devices\nsensor:s3cret\n")
	eb := mqtttest.Start(t, mqtt.Config{DataDir: dir, Internal: mqtt.BrokerConfig{Listen: "0.0.0.0:0", AllowPlaintext: true}}, b, mqtttest.Store(t))
	_, port, _ := net.SplitHostPort(eb.Addr())
	o := mqtttest.ClientOptions("127.0.0.1:" + port).SetUsername("sensor").SetPassword("s3cret")
	mqtttest.Connect(t, o)
	cl := paho.NewClient(mqtttest.ClientOptions("127.0.0.1:" + port))
	if err := mqtttest.Wait(cl.Connect()); err == nil {
		cl.Disconnect(50)
		t.Error("anonymous connect succeeded, want refused")
	}
}

// TestOversize: a payload over maxPayload for the cloud is dropped and
// counted; one for DeviceTwin is counted and cut to maxPayload+1 bytes, so
// that twin can answer the app with an error result (a real app otherwise
// waits for an answer that never comes); the next one arrives whole.
func TestOversize(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{MaxPayload: 100}, b, mqtttest.Store(t))
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	for _, p := range []struct{ topic, payload string }{
		{"$hw/events/upload/big", strings.Repeat("u", 101)},
		{"$hw/events/device/d/twin/update", strings.Repeat("x", 5000)},
		{"$hw/events/device/d/twin/update", strings.Repeat("y", 100)},
		{"$hw/events/upload/small", "ok"},
	} {
		if err := mqtttest.Wait(c.Publish(p.topic, 1, false, p.payload)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{strings.Repeat("x", 101), strings.Repeat("y", 100)} {
		got := recv(t, b, bus.ModuleTwin)
		if s := string(got.Content); s != want {
			t.Errorf("twin got %d bytes %.10q..., want %d bytes %.10q...", len(s), s, len(want), want)
		}
	}
	if got := recv(t, b, bus.ModuleHub); got.Route.Resource != "$hw/events/upload/small" {
		t.Errorf("cloud got %q, want only $hw/events/upload/small (the oversize upload dropped)", got.Route.Resource)
	}
	if s := eb.Stats(); s.DropOversize != 2 {
		t.Errorf("Stats().DropOversize = %d, want 2", s.DropOversize)
	}
}

// TestStuckBus: nobody reads the twin queue. The broker keeps serving MQTT
// clients, EventBus counts what the bus refused, and nothing blocks.
func TestStuckBus(t *testing.T) {
	b := standIns(t, 2)
	eb := mqtttest.Start(t, mqtt.Config{QueueLen: 4}, b, mqtttest.Store(t))
	ch := subscriber(t, eb.Addr(), "$hw/events/device/+/twin/update")
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	const n = 200
	for i := range n {
		if err := mqtttest.Wait(c.Publish("$hw/events/device/d/twin/update", 1, false, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if m := next(t, ch); string(m.Payload()) != fmt.Sprint(i) {
			t.Fatalf("subscriber message %d = %q, want %d", i, m.Payload(), i)
		}
	}
	s := waitStats(t, eb, func(s mqtt.Stats) bool { return s.ToTwin+s.DropBus+s.DropQueueFull == n })
	if s.ToTwin != 2 || s.DropBus+s.DropQueueFull != n-2 {
		t.Errorf("Stats() = %+v, want 2 to twin and %d dropped", s, n-2)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// TestPortTaken: while another process holds the port, the node keeps
// running and retries; once the port is free the broker binds it.
func TestPortTaken(t *testing.T) {
	// A port below the ephemeral range: once the blocker closes it, no
	// other process's port-0 listener or connection can take it before
	// the broker's retry binds it.
	blocker, err := net.Listen("tcp", mqtttest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := blocker.Addr().String()
	b := standIns(t, 64)
	eb, err := mqtt.New(mqtt.Config{Internal: mqtt.BrokerConfig{Listen: addr}}, b, mqtttest.Store(t), mqtttest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eb.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	s := waitStats(t, eb, func(s mqtt.Stats) bool { return s.ListenFailures > 0 })
	if s.Listening || eb.Addr() != "" {
		t.Fatalf("Stats() = %+v, Addr() = %q while the port is taken", s, eb.Addr())
	}
	blocker.Close()
	select {
	case <-eb.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatalf("not ready 2 minutes after the port was freed: %+v", eb.Stats())
	}
	if eb.Addr() != addr {
		t.Errorf("Addr() = %q, want %q", eb.Addr(), addr)
	}
	c := mqtttest.Connect(t, mqtttest.ClientOptions(addr))
	if err := mqtttest.Wait(c.Publish("$hw/events/device/d/twin/get", 1, false, "{}")); err != nil {
		t.Fatal(err)
	}
	recv(t, b, bus.ModuleTwin)
}
