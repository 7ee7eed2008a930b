package mqtt_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestPlaintext: a broker beyond loopback without TLS does not start unless
// allowPlaintext is set.
func TestPlaintext(t *testing.T) {
	b := standIns(t, 64)
	cfg := mqtt.Config{Internal: mqtt.BrokerConfig{Listen: "0.0.0.0:0", Username: "dev", Password: "pw"}}
	if _, err := mqtt.New(cfg, b, mqtttest.Store(t), mqtttest.Log(t)); !errors.Is(err, mqtt.ErrPlaintext) {
		t.Fatalf("New(listen 0.0.0.0, no TLS) = %v, want ErrPlaintext", err)
	}
	cfg.Internal.AllowPlaintext = true
	if _, err := mqtt.New(cfg, b, mqtttest.Store(t), mqtttest.Log(t)); err != nil {
		t.Fatalf("New(listen 0.0.0.0, allowPlaintext) = %v, want nil", err)
	}
}

// TestSilentSockets: 2,000 connections that never send CONNECT are all
// closed by the broker (at once beyond maxPending, else at the CONNECT
// deadline), and a real client still connects meanwhile and afterwards.
func TestSilentSockets(t *testing.T) {
	const n = 2000
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{Internal: mqtt.BrokerConfig{ConnectTimeout: time.Second, MaxPending: 100}}, b, mqtttest.Store(t))
	conns := dialSilent(t, eb.Addr(), n)
	// Let the broker accept every silent socket first: a client accepted
	// among them would be one of the oldest waiting and could be the one
	// closed to make room (on a loaded machine the accept loop lags).
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s := eb.BrokerStats(); uint64(s.Pending)+s.PendingRefused+s.ConnectTimeouts >= n {
			break
		}
	}
	c := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	if !c.IsConnected() {
		t.Error("client not connected while silent sockets wait")
	}
	var wg sync.WaitGroup
	var open sync.Map
	for i, cn := range conns {
		wg.Go(func() {
			// The broker must close it; the read deadline only stops a
			// broken broker from hanging the test.
			cn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			if _, err := cn.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				open.Store(i, err)
			}
		})
	}
	wg.Wait()
	open.Range(func(k, v any) bool {
		t.Errorf("silent socket %d: Read = %v, want closed by the broker", k, v)
		return false
	})
	// The broker closes a socket before it counts it: wait for the count.
	s := eb.BrokerStats()
	for deadline := time.Now().Add(2 * time.Minute); s.Pending != 0 && time.Now().Before(deadline); s = eb.BrokerStats() {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Pending != 0 || s.PendingRefused+s.ConnectTimeouts != n || s.PendingRefused == 0 {
		t.Errorf("BrokerStats() = %+v, want 0 pending, %d refused or timed out, some refused", s, n)
	}
	mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func dialSilent(tb testing.TB, addr string, n int) []net.Conn {
	tb.Helper()
	conns := make([]net.Conn, 0, n)
	tb.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatalf("dial %d: %v (ulimit -n too low?)", len(conns), err)
		}
		conns = append(conns, c)
	}
	return conns
}

// BenchmarkSilentSockets reports the process's VmRSS idle, with 2,000
// silent sockets open, and after the broker has closed them.
func BenchmarkSilentSockets(b *testing.B) {
	bb := bus.New(bus.Config{QueueLen: 64}, mqtttest.Log(b))
	eb := mqtttest.Start(b, mqtt.Config{Internal: mqtt.BrokerConfig{ConnectTimeout: time.Second}}, bb, mqtttest.Store(b))
	idle := vmRSS(b)
	var peak, after float64
	for b.Loop() {
		conns := dialSilent(b, eb.Addr(), 2000)
		peak = max(peak, vmRSS(b))
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(time.Minute))
			c.Read(make([]byte, 1))
			c.Close()
		}
		after = vmRSS(b)
	}
	b.ReportMetric(idle, "idle-MB")
	b.ReportMetric(peak, "peak-MB")
	b.ReportMetric(after, "after-MB")
}

func vmRSS(tb testing.TB) float64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status")
	}
	for l := range strings.Lines(string(s)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// TestACL: clients publish requests and read answers; publishes on the
// node's answer topics never reach another client or DeviceTwin; a user
// limited to device patterns reaches only those devices and no membership.
func TestACL(t *testing.T) {
	b := standIns(t, 64)
	cfg := mqtt.Config{Internal: mqtt.BrokerConfig{
		Username: "admin", Password: "pw",
		DeviceACL: map[string][]string{"thermo": {"default/thermo-*"}},
	}}
	dir := t.TempDir()
	if err := writeFile(dir+"/users", "thermo:pw2\n"); err != nil {
		t.Fatal(err)
	}
	cfg.Internal.CredentialsFile = dir + "/users"
	eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
	admin := func() *paho.ClientOptions {
		return mqtttest.ClientOptions(eb.Addr()).SetUsername("admin").SetPassword("pw")
	}
	thermo := func() *paho.ClientOptions {
		return mqtttest.ClientOptions(eb.Addr()).SetUsername("thermo").SetPassword("pw2")
	}
	allSeen := subscriberOpts(t, admin(), "$hw/#")
	thermoSeen := subscriberOpts(t, thermo(), "$hw/#")
	pubAdmin := mqtttest.Connect(t, admin())
	pubThermo := mqtttest.Connect(t, thermo())

	forged := []string{
		"$hw/events/device/default/thermo-1/twin/update/result",
		"$hw/events/device/default/thermo-1/twin/update/document",
		"$hw/events/device/default/thermo-1/twin/update/delta",
		"$hw/events/device/default/thermo-1/twin/get/result",
		"$hw/events/device/default/thermo-1/state/update/result",
		"$hw/events/device/default/thermo-1/twin/cloud_updated",
		"$hw/events/device/default/thermo-1/updated",
		"$hw/events/device/thermo-1/updated",
		"$hw/events/node/node1/membership/updated",
		"$hw/events/node/node1/membership/get/result",
		"$hw/events/node/node1/authInfo/get/result",
		"$SYS/broker/clients/connected",
	}
	for _, c := range []paho.Client{pubAdmin, pubThermo} {
		for _, topic := range forged {
			if err := mqtttest.Wait(c.Publish(topic, 0, false, `{"forged":true}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Requests: allowed for admin everywhere, for thermo on its devices.
	// The allowed ones at QoS 1: their PUBACK says the broker has handled
	// everything its client published before.
	for _, p := range []struct {
		c     paho.Client
		topic string
		qos   byte
	}{
		{pubThermo, "$hw/events/device/default/pump-1/twin/update", 0}, // refused
		{pubThermo, "$hw/events/node/node1/membership/get", 0},         // refused
		{pubThermo, "$hw/events/device/default/thermo-1/twin/update", 1},
		{pubAdmin, "$hw/events/device/default/pump-1/twin/get", 1},
	} {
		if err := mqtttest.Wait(p.c.Publish(p.topic, p.qos, false, `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	// The node answers both devices.
	for _, topic := range []string{"$hw/events/device/default/pump-1/twin/get/result", "$hw/events/device/default/thermo-1/twin/update/result"} {
		if err := b.Send(bus.ModuleMQTT, bus.NewMessage(bus.ModuleTwin, bus.GroupUser, bus.OpPublish, topic, []byte(`{"node":true}`))); err != nil {
			t.Fatal(err)
		}
	}
	sentinel(t, pubAdmin, b)

	var toTwin []string
	for range 2 {
		toTwin = append(toTwin, recv(t, b, bus.ModuleTwin).Route.Resource)
	}
	slices.Sort(toTwin)
	if want := []string{"$hw/events/device/default/pump-1/twin/get", "$hw/events/device/default/thermo-1/twin/update"}; !slices.Equal(toTwin, want) {
		t.Errorf("twin got %q, want %q", toTwin, want)
	}
	if n := b.Depth(bus.ModuleTwin); n != 0 {
		t.Errorf("twin queue holds %d more messages, want 0", n)
	}
	want := map[string][]string{
		"admin": {"$hw/events/device/default/thermo-1/twin/update", "$hw/events/device/default/pump-1/twin/get",
			"$hw/events/device/default/pump-1/twin/get/result", "$hw/events/device/default/thermo-1/twin/update/result", "$hw/events/upload/sentinel"},
		"thermo": {"$hw/events/device/default/thermo-1/twin/update", "$hw/events/device/default/thermo-1/twin/update/result", "$hw/events/upload/sentinel"},
	}
	for user, ch := range map[string]<-chan paho.Message{"admin": allSeen, "thermo": thermoSeen} {
		var got []string
		for len(got) < len(want[user]) {
			m := next(t, ch)
			if strings.Contains(string(m.Payload()), "forged") {
				t.Errorf("%s received forged %s", user, m.Topic())
			}
			got = append(got, m.Topic())
		}
		slices.Sort(got)
		slices.Sort(want[user])
		if strings.Join(got, "\n") != strings.Join(want[user], "\n") {
			t.Errorf("%s received\n%s\nwant\n%s", user, strings.Join(got, "\n"), strings.Join(want[user], "\n"))
		}
	}
	if s := eb.BrokerStats(); s.ACLRefused == 0 {
		t.Errorf("BrokerStats().ACLRefused = 0, want some")
	}
	// A limited user cannot subscribe to another device's answers.
	c := paho.NewClient(thermo())
	if err := mqtttest.Wait(c.Connect()); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(50)
	tok := c.Subscribe("$hw/events/device/default/pump-1/twin/get/result", 1, nil)
	mqtttest.Wait(tok)
	if r := tok.(*paho.SubscribeToken).Result()["$hw/events/device/default/pump-1/twin/get/result"]; r != 0x80 {
		t.Errorf("thermo subscribe to pump-1 result: SUBACK %#x, want 0x80 (failure)", r)
	}
}

func subscriberOpts(t *testing.T, o *paho.ClientOptions, filters ...string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 256)
	o = o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { ch <- m })
	c := mqtttest.Connect(t, o)
	for _, f := range filters {
		if err := mqtttest.Wait(c.Subscribe(f, 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	return ch
}

// TestSessionCap: sessions kept after their connection (clean session
// off) count against twice maxClients, so new client ids cannot pile them
// up; a known id still reconnects.
func TestSessionCap(t *testing.T) {
	b := standIns(t, 64)
	eb := mqtttest.Start(t, mqtt.Config{Internal: mqtt.BrokerConfig{MaxClients: 2}}, b, mqtttest.Store(t))
	connect := func(id string) error {
		c := paho.NewClient(mqtttest.ClientOptions(eb.Addr()).SetClientID(id).SetCleanSession(false))
		err := mqtttest.Wait(c.Connect())
		if err == nil {
			c.Disconnect(50)
		}
		return err
	}
	var i int
	for ; i < 10; i++ {
		if err := connect(fmt.Sprintf("keep-%d", i)); err != nil {
			break
		}
	}
	if i == 10 || i < 2 {
		t.Fatalf("%d kept sessions were accepted, want between 2 and 4", i)
	}
	// The broker counts a connection until it has processed the client's
	// DISCONNECT, which on a loaded machine can trail Disconnect: while
	// it does, MaxClients answers "server unavailable". The session cap
	// itself would refuse keep-0 as a bad user name or password, at once
	// and for good.
	err := connect("keep-0")
	for deadline := time.Now().Add(5 * time.Second); err != nil && strings.Contains(err.Error(), "Unavailable") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		err = connect("keep-0")
	}
	if err != nil {
		t.Errorf("reconnect of a kept session = %v, want accepted", err)
	}
}
