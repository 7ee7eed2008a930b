package mqtt_test

import (
	"crypto/tls"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"edgenode/bus"
	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestTLSInternal: the embedded broker serves TLS, and with clientCAFile
// requires a client certificate.
func TestTLSInternal(t *testing.T) {
	f := mqtttest.NewTLSFiles(t)
	cases := []struct {
		name     string
		clientCA bool
		tls      *tls.Config
		ok       bool
	}{
		{"trusted", false, f.ClientConfig(t, false), true},
		{"unknown CA", false, &tls.Config{MinVersion: tls.VersionTLS12}, false},
		{"client cert required, missing", true, f.ClientConfig(t, false), false},
		{"client cert required, given", true, f.ClientConfig(t, true), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := standIns(t, 64)
			cfg := mqtt.Config{Internal: mqtt.BrokerConfig{CertFile: f.Cert, KeyFile: f.Key}}
			if c.clientCA {
				cfg.Internal.ClientCAFile = f.CA
			}
			eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
			cl := paho.NewClient(mqtttest.ClientOptions("ssl://" + eb.Addr()).SetTLSConfig(c.tls))
			err := mqtttest.Wait(cl.Connect())
			if (err == nil) != c.ok {
				t.Fatalf("TLS connect = %v, want ok %v", err, c.ok)
			}
			if err != nil {
				return
			}
			defer cl.Disconnect(50)
			if err := mqtttest.Wait(cl.Publish("$hw/events/device/d/twin/get", 1, false, "{}")); err != nil {
				t.Fatal(err)
			}
			recv(t, b, bus.ModuleTwin)
		})
	}
}

// TestTLSExternal: EventBus reaches a TLS mosquitto, verifying it against
// caFile.
func TestTLSExternal(t *testing.T) {
	f := mqtttest.NewTLSFiles(t)
	m := mqtttest.StartMosquitto(t, "cafile "+f.CA+"\ncertfile "+f.Cert+"\nkeyfile "+f.Key+"\n")
	b := standIns(t, 64)
	cfg := externalConfig("ssl://" + m.Addr)
	cfg.External.CAFile = f.CA
	eb := mqtttest.Start(t, cfg, b, mqtttest.Store(t))
	subscribedOnce(t, eb, 0)
	c := mqtttest.Connect(t, mqtttest.ClientOptions("ssl://"+m.Addr).SetTLSConfig(f.ClientConfig(t, false)))
	if err := mqtttest.Wait(c.Publish("$hw/events/upload/tls", 1, false, "x")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, b, bus.ModuleHub); got.Route.Resource != "$hw/events/upload/tls" {
		t.Errorf("hub got %q, want $hw/events/upload/tls", got.Route.Resource)
	}
}
