package twin

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// End to end: a real paho client -> a real broker -> eventbus -> twin ->
// SQLite -> result topics back to the client.

type e2e struct {
	*env
	eb  *mqtt.EventBus
	c   paho.Client
	got chan pub

	pmu    sync.Mutex
	topics []string    // every topic twin published on, in order
	quiet  atomic.Bool // topics are not recorded (BenchmarkEndToEnd)
}

// published returns the topics twin has published on, in order.
func (x *e2e) published() []string {
	x.pmu.Lock()
	defer x.pmu.Unlock()
	return slices.Clone(x.topics)
}

// startE2E runs twin behind a real eventbus. With mosquitto nil the
// eventbus runs its embedded broker on 127.0.0.1:0; otherwise it is a
// client of that mosquitto, in external mode.
func startE2E(t testing.TB, cfg Config, mosq *mqtttest.Mosquitto) *e2e {
	t.Helper()
	x := &e2e{got: make(chan pub, 1024)}
	// As main wires it: documents and deltas only for subscribers,
	cfg.Subscribed = func(topic string) bool { return x.eb.Subscribed(topic) }
	cfg.Publish = func(topic string, payload []byte) error {
		if !x.quiet.Load() {
			x.pmu.Lock()
			x.topics = append(x.topics, topic)
			x.pmu.Unlock()
		}
		return x.eb.Publish(topic, payload)
	}
	// and the eventbus takes each client's fair share.
	cfg.Share = bus.NewShare(64)
	x.env = startEnvWith(t, cfg, t.TempDir(), func(e *env) {
		mcfg := mqtt.Config{NodeName: "edge-node", TwinShare: cfg.Share}
		if mosq != nil {
			mcfg.Mode = mqtt.ModeExternal
			mcfg.External = mqtt.ClientConfig{Server: mosq.URL, RetryInterval: 50 * time.Millisecond, MaxReconnect: 200 * time.Millisecond}
		}
		x.eb = mqtttest.Start(t, mcfg, e.b, e.d)
	})
	addr := x.eb.Addr()
	if mosq != nil {
		addr = mosq.Addr
		// The eventbus's paho subscriber reports when it has subscribed;
		// there is no event to wait on.
		deadline := time.Now().Add(2 * time.Minute)
		for s := x.eb.Stats(); !s.External || s.ExternalSubs == 0; s = x.eb.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("eventbus not subscribed to mosquitto: %+v", s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	x.c = mqtttest.Connect(t, mqtttest.ClientOptions(addr))
	for _, f := range e2eFilters {
		if err := mqtttest.Wait(x.c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			x.got <- pub{m.Topic(), string(m.Payload())}
		})); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// e2eFilters are the client's subscriptions: results, documents, deltas,
// membership and attribute publishes.
var e2eFilters = []string{"$hw/events/device/+/+/twin/update/+", "$hw/events/device/+/twin/update/+",
	"$hw/events/device/+/+/twin/get/result", "$hw/events/device/+/twin/get/result",
	"$hw/events/device/+/+/state/update/result", "$hw/events/device/+/state/update/result",
	"$hw/events/node/+/membership/+/+", "$hw/events/node/+/membership/updated", "$hw/events/device/+/+/updated"}

func (x *e2e) publish(topic, payload string) {
	x.t.Helper()
	if err := mqtttest.Wait(x.c.Publish(topic, 1, false, payload)); err != nil {
		x.t.Fatalf("publish %s: %v", topic, err)
	}
}

func (x *e2e) next() pub {
	x.t.Helper()
	select {
	case p := <-x.got:
		return p
	case <-time.After(2 * time.Minute):
		x.t.Fatal("no MQTT message within 2 minutes")
	}
	return pub{}
}

func (x *e2e) expect(want ...pub) {
	x.t.Helper()
	for _, w := range want {
		if p := x.next(); p != w {
			x.t.Errorf("MQTT message\n got %s %s\nwant %s %s", p.Topic, p.Payload, w.Topic, w.Payload)
		}
	}
}

// testDeviceAPI runs every request topic through the broker.
func testDeviceAPI(t *testing.T, x *e2e) {
	x.cloud(bus.OpUpdate, bus.ResMembership, addSensor)
	dev := "$hw/events/device/default/sensor-1"
	tempV := `{"expected":{"value":"25","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}`
	x.expect(
		pub{"$hw/events/node/edge-node/membership/updated", `{"event_id":"id-1","timestamp":` + T + `,"added_devices":[{"id":"default/sensor-1","name":"sensor-1","description":"d","state":"unknown",` +
			`"attributes":{"model":{"value":"CC2650","optional":true,"metadata":{"type":"string"}}},` +
			`"twin":{"temperature":{"expected":{"value":"25","metadata":{"timestamp":1559123456000}},"optional":false,"metadata":{"type":"float"}}}}],"removed_devices":null}`},
		pub{dev + "/twin/update/delta", `{"event_id":"id-2","timestamp":` + T + `,"twin":{"temperature":` + tempV + `},"delta":{"temperature":"25"}}`},
	)

	x.publish(dev+"/twin/update", `{"event_id":"ev-1","timestamp":0,"twin":{"temperature":{"actual":{"value":"25"}}}}`)
	tempCur := `{"expected":{"value":"25","metadata":{"timestamp":` + T + `}},"actual":{"value":"25","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}`
	x.expect(
		pub{dev + "/twin/update/result", `{"event_id":"ev-1","timestamp":` + T + `,"twin":{"temperature":{"actual":{"value":"25","metadata":{"timestamp":` + T + `}},"optional":false,"metadata":{"type":"float"}}}}`},
		pub{dev + "/twin/update/document", `{"event_id":"ev-1","timestamp":` + T + `,"twin":{"temperature":{"last":` + tempV + `,"current":` + tempCur + `}}}`},
	) // expected == actual: no delta

	x.publish(dev+"/twin/get", `{"event_id":"g-1","timestamp":0}`)
	x.expect(pub{dev + "/twin/get/result", `{"event_id":"g-1","timestamp":` + T + `,"twin":{"temperature":` + tempCur + `}}`})

	x.publish(dev+"/state/update", `{"state":"online"}`)
	x.expect(pub{dev + "/state/update/result", `{"event_id":"id-4","timestamp":` + T + `,"device":{"name":"sensor-1","state":"online","lastOnlineTime":"2023-11-14T22:13:20Z"}}`})

	x.publish("$hw/events/node/edge-node/membership/get", `{"event_id":"m-1"}`)
	x.expect(pub{"$hw/events/node/edge-node/membership/get/result", `{"event_id":"m-1","timestamp":` + T + `,"devices":[{"id":"default/sensor-1","name":"sensor-1","description":"d","state":"online","last_online":"2023-11-14T22:13:20Z",` +
		`"attributes":{"model":{"value":"CC2650","optional":true,"metadata":{"type":"string"}}}}]}`})

	// A one-level device id on the same node.
	x.cloud(bus.OpUpdate, bus.ResMembership, `{"added_devices":[{"id":"lamp","name":"lamp"}]}`)
	x.next()
	x.publish("$hw/events/device/lamp/twin/update", `{"event_id":"l","twin":{"power":{"actual":{"value":"on"}}}}`)
	x.expect(
		pub{"$hw/events/device/lamp/twin/update/result", `{"event_id":"l","timestamp":` + T + `,"twin":{"power":{"actual":{"value":"on","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}}}}`},
		pub{"$hw/events/device/lamp/twin/update/document", `{"event_id":"l","timestamp":` + T + `,"twin":{"power":{"last":null,"current":{"actual":{"value":"on","metadata":{"timestamp":` + T + `}},"optional":true,"metadata":{"type":"string"}}}}}`},
	)
	before := x.rows()

	// Bad input: an error result on the request's result topic, no change.
	bad := []struct{ topic, payload, want string }{
		{dev + "/twin/update", `{"event_id":"b1","twin":`, `{"event_id":"","timestamp":` + T + `,"code":400,"reason":"twin: payload is not a valid JSON object of the expected shape: unexpected end of JSON input"}`},
		{dev + "/twin/update", `{"event_id":"b2","twin":{"temperature":{"actual":{"value":"hot"}}}}`, `{"event_id":"b2","timestamp":` + T + `,"code":400,"reason":"twin \"temperature\": twin: twin value does not match its type: \"hot\" is not float"}`},
		{dev + "/twin/update", `{"event_id":"b3","twin":{"a b":{}}}`, `{"event_id":"b3","timestamp":` + T + `,"code":400,"reason":"twin: twin key must be 1-128 characters of a-z A-Z 0-9 - _ . , : / @ #: \"a b\""}`},
		{"$hw/events/device/default/nope/twin/update", `{"event_id":"b4","twin":{}}`, `{"event_id":"b4","timestamp":` + T + `,"code":404,"reason":"update rejected due to the device is not existed"}`},
		{dev + "/twin/update", `{"event_id":"b5","twin":{"temperature":{"actual":{"value":"` + string(make([]byte, 0)) + padding(2000) + `"}}}}`, `{"event_id":"","timestamp":` + T + `,"code":400,"reason":"twin: payload too large"}`},
	}
	for _, b := range bad {
		x.publish(b.topic, b.payload)
		x.expect(pub{b.topic + "/result", b.want})
	}
	// Topics with too many levels are not subscribed, as in KubeEdge; a
	// bad state is dropped. A get afterwards proves nothing came before it.
	x.publish("$hw/events/device/a/b/c/twin/update", `{"event_id":"b6","twin":{}}`)
	x.publish(dev+"/state/update", `{"state":"melted"}`)
	x.publish("$hw/events/device/lamp/twin/get", `{"event_id":"g-2"}`)
	if p := x.next(); p.Topic != "$hw/events/device/lamp/twin/get/result" {
		t.Errorf("after dropped requests got %s %s, want the get result", p.Topic, p.Payload)
	}
	x.settle2()
	if after := x.rows(); !rowsEqual(before, after) {
		t.Errorf("bad input changed the tables")
	}
}

func padding(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '1'
	}
	return string(b)
}

// settle2 waits for every worker, as settle does, without the bus-side
// settle request (its answer goes through the broker).
func (x *e2e) settle2() {
	for _, w := range []*worker{x.tw.mem, x.tw.twin, x.tw.dev, x.tw.com} {
		done := make(chan struct{})
		w.inbox <- &job{done: done}
		<-done
	}
}

func rowsEqual(a, b rows) bool {
	if len(a.Devices) != len(b.Devices) || len(a.Attrs) != len(b.Attrs) || len(a.Twins) != len(b.Twins) {
		return false
	}
	for i := range a.Devices {
		if a.Devices[i] != b.Devices[i] {
			return false
		}
	}
	for i := range a.Attrs {
		if a.Attrs[i] != b.Attrs[i] {
			return false
		}
	}
	for i := range a.Twins {
		if a.Twins[i] != b.Twins[i] {
			return false
		}
	}
	return true
}

func TestEndToEndInternalBroker(t *testing.T) {
	x := startE2E(t, Config{MaxPayload: 1024}, nil)
	testDeviceAPI(t, x)
}

func TestEndToEndMosquitto(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	x := startE2E(t, Config{MaxPayload: 1024}, m)
	testDeviceAPI(t, x)
}
