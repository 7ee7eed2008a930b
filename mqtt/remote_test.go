package mqtt_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"testing"

	"edgenode/mqtt"
	"edgenode/mqtt/mqtttest"
)

// TestClientTLSVerifies: the external client's TLS config verifies the
// broker against caFile, or the system roots when none is set, unless
// insecureSkipVerify says otherwise.
func TestClientTLSVerifies(t *testing.T) {
	f := mqtttest.NewTLSFiles(t)
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	log := slog.New(slog.DiscardHandler)
	cases := []struct {
		name string
		cfg  mqtt.ClientConfig
		ok   bool
	}{
		{"caFile", mqtt.ClientConfig{Server: "ssl://" + ln.Addr().String(), CAFile: f.CA}, true},
		{"system roots", mqtt.ClientConfig{Server: "ssl://" + ln.Addr().String()}, false},
		{"insecure", mqtt.ClientConfig{Server: "tls://" + ln.Addr().String(), InsecureSkipVerify: true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := mqtt.ClientTLS(c.cfg, log)
			if err != nil || cfg == nil {
				t.Fatalf("clientTLS() = %v, %v", cfg, err)
			}
			cfg.ServerName = "127.0.0.1"
			conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			if err == nil {
				conn.Close()
			}
			var uae x509.UnknownAuthorityError
			if (err == nil) != c.ok || (err != nil && !errors.As(err, &uae)) {
				t.Errorf("handshake with %s = %v, want ok %v", c.name, err, c.ok)
			}
		})
	}
	if cfg, err := mqtt.ClientTLS(mqtt.ClientConfig{Server: "tcp://127.0.0.1:1883"}, log); cfg != nil || err != nil {
		t.Errorf("clientTLS(tcp) = %v, %v, want no TLS", cfg, err)
	}
}
