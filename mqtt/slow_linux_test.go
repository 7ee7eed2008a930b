package mqtt_test

import (
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestSlowSubscriber: a client that subscribes and then never reads cannot
// hold up the broker: another subscriber gets every message, and the
// broker drops (and counts) what the stuck client's queue cannot take.
func TestSlowSubscriber(t *testing.T) {
	b := standIns(t, 64)
	cfg := mqtt.Config{Internal: mqtt.BrokerConfig{ClientQueue: 4}}
	eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))

	// A raw MQTT 3.1.1 client: CONNECT, SUBSCRIBE app/data at QoS 0, then
	// nothing more is read from the socket.
	// A small receive buffer, so the stuck client's socket fills soon.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", eb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := "stuck"
	connect := append([]byte{0x10, byte(10 + 2 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
	topic := "app/data"
	subscribe := append([]byte{0x82, byte(2 + 2 + len(topic) + 1), 0, 1, 0, byte(len(topic))}, topic...)
	subscribe = append(subscribe, 0)
	if _, err := conn.Write(append(connect, subscribe...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4+5) // CONNACK and SUBACK
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[4] != 0x90 {
		t.Fatalf("raw client handshake = % x, %v", ack, err)
	}

	ch := subscriber(t, eb.Addr(), topic)
	pub := mqtttest.Connect(t, mqtttest.ClientOptions(eb.Addr()))
	// Publish in lock step with the good subscriber, whose own queue is
	// just as short, until the broker has dropped messages for the stuck
	// client (when its socket buffers and queue are full). 32 MB at most.
	payload := []byte(strings.Repeat("p", 16<<10))
	for i := 0; eb.Stats().ClientDrops == 0; i++ {
		if i == 2048 {
			t.Fatalf("no drops after %d messages: Stats() = %+v", i, eb.Stats())
		}
		if err := mqtttest.Wait(pub.Publish(topic, 0, false, payload)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if m := next(t, ch); len(m.Payload()) != len(payload) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m.Payload()), len(payload))
		}
	}
}
