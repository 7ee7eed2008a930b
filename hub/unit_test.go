package hub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgenode/bus"
	"edgenode/hub/hubtest"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Server: "10.0.0.1:10000", DataDir: "/data", NodeName: "n"}.Defaults()
	checks := []struct{ name, got, want string }{
		{"CertServer", c.CertServer, "https://10.0.0.1:10002"},
		{"ProjectID", c.ProjectID, DefaultProjectID},
		{"CAFile", c.CAFile, "/data/certs/ca.crt"},
		{"CertFile", c.CertFile, "/data/certs/edge.crt"},
		{"KeyFile", c.KeyFile, "/data/certs/edge.key"},
		{"Probe", c.Probe, ProbePing},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("Defaults().%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if c.Heartbeat != 15*time.Second || c.MessageQPS != 30 || c.MessageBurst != 60 {
		t.Errorf("Defaults() heartbeat %v qps %v burst %d, want 15s 30 60", c.Heartbeat, c.MessageQPS, c.MessageBurst)
	}
	if p := (Config{Era: bus.EraV03}).Defaults().Probe; p != ProbeNone {
		t.Errorf("v0.3 probe = %q, want none", p)
	}
	if got := (Config{Server: "[::1]:10000"}).Defaults().CertServer; got != "https://[::1]:10002" {
		t.Errorf("IPv6 cert server = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Server: "h:1", Token: hash + ".a.b.c"}, ""},
		{"no cloud", Config{}, ""},
		{"bad server", Config{Server: "nohostport"}, "hub.server"},
		{"http cert server", Config{Server: "h:1", CertServer: "http://h:2"}, "hub.certServer"},
		{"bad placement", Config{PlacementURL: "ftp://x"}, "hub.placementURL"},
		{"bad token", Config{Server: "h:1", Token: "abc"}, "hub.token"},
		{"bad probe", Config{Server: "h:1", Probe: "pong"}, "hub.probe"},
		{"bad project", Config{Server: "h:1", ProjectID: "a/b"}, "hub.projectID"},
		{"negative", Config{Server: "h:1", MessageQPS: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errors.Join(tt.cfg.Validate()...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestLinkURL(t *testing.T) {
	tests := []struct{ base, want string }{
		{"wss://h:10000", "wss://h:10000/p/n/events"},
		{"wss://h:10000/", "wss://h:10000/p/n/events"},
		{"wss://placement.example/cloudhub", "wss://placement.example/cloudhub/p/n/events"},
	}
	for _, tt := range tests {
		if got := linkURL(tt.base, "p", "n"); got != tt.want {
			t.Errorf("linkURL(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

var tokenTests = []struct {
	name, token string
	wantErr     bool
}{
	{"ok", strings.Repeat("0a", 32) + ".eyJh.eyJi.c2ln", false},
	{"upper hex", strings.Repeat("0A", 32) + ".h.c.s", false},
	{"three parts", strings.Repeat("0a", 32) + ".h.c", true},
	{"five parts", strings.Repeat("0a", 32) + ".h.c.s.x", true},
	{"short hash", "abcd.h.c.s", true},
	{"not hex", strings.Repeat("zz", 32) + ".h.c.s", true},
	{"empty part", strings.Repeat("0a", 32) + ".h..s", true},
	{"empty", "", true},
}

func TestSplitToken(t *testing.T) {
	for _, tt := range tokenTests {
		t.Run(tt.name, func(t *testing.T) {
			hash, jwt, err := splitToken(tt.token)
			if tt.wantErr {
				if !errors.Is(err, ErrBadToken) {
					t.Fatalf("splitToken(%q) = %v, want ErrBadToken", tt.token, err)
				}
				return
			}
			if err != nil || len(hash) != 64 || strings.Count(jwt, ".") != 2 || hash != strings.ToLower(hash) {
				t.Fatalf("splitToken(%q) = %q, %q, %v", tt.token, hash, jwt, err)
			}
		})
	}
}

func FuzzSplitToken(f *testing.F) {
	for _, tt := range tokenTests {
		f.Add(tt.token)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		hash, jwt, err := splitToken(tok)
		if err != nil {
			return
		}
		if len(hash) != 64 || strings.Count(jwt, ".") != 2 || !strings.HasSuffix(tok, jwt) {
			t.Fatalf("splitToken(%q) = %q, %q: inconsistent", tok, hash, jwt)
		}
	})
}

func TestBootstrapRefusals(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	other := newServer(t, hubtest.Config{})
	_, otherJWT, _ := splitToken(other.Token(testNode))
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"token of another CA", other.Token(testNode), ErrCAHashMismatch},
		{"JWT of another server", srv.CAHash() + "." + otherJWT, ErrTokenRefused},
		{"malformed", "nonsense", ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, srv, bus.EraV123)
			cfg.Token = tt.token
			cfg = cfg.Defaults()
			err := bootstrap(ctxT(t), cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("bootstrap() = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(cfg.CertFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("certificate file after a refusal: %v, want none", err)
			}
		})
	}
	if got := srv.Issued(); got != 0 {
		t.Errorf("certificates issued = %d, want 0", got)
	}
}

func TestRunKeepsGoingWithBadToken(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	other := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	cfg.Token = other.Token(testNode)
	n := startNode(t, cfg)
	// The node stays up without a cloud: a sync request is answered with
	// an error at once.
	q := bus.NewMessage(bus.ModuleMeta, bus.GroupMeta, bus.OpQuery, "default/configmap/c", nil)
	resp, err := n.b.SendSync(ctxT(t), bus.ModuleHub, q, 10*time.Second)
	if err != nil || resp.Route.Operation != bus.OpError {
		t.Fatalf("SendSync() = %+v, %v, want an error reply", resp.Route, err)
	}
	if err := n.c.Err(); !errors.Is(err, ErrCAHashMismatch) {
		t.Errorf("Err() = %v, want ErrCAHashMismatch", err)
	}
	if srv.Connects() != 0 || srv.Issued() != 0 {
		t.Errorf("connects %d issued %d, want 0 0", srv.Connects(), srv.Issued())
	}
}

func TestCertWithWrongNodeIsReplaced(t *testing.T) {
	srv := newServer(t, hubtest.Config{})
	cfg := testConfig(t, srv, bus.EraV123)
	cfg.NodeName = "other-node"
	cfg.Token = srv.Token("other-node")
	full := cfg.Defaults()
	if err := bootstrap(ctxT(t), full); err != nil {
		t.Fatal(err)
	}
	// Same data dir, node renamed: the saved certificate has the wrong CN.
	cfg.NodeName = testNode
	if _, err := loadNodeCert(cfg.Defaults(), time.Now()); err == nil {
		t.Fatal("loadNodeCert() with the wrong CN = nil error")
	}
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q", got)
	}
	if got := srv.Issued(); got != 2 {
		t.Errorf("issued = %d, want 2", got)
	}
}

// TestWriteCertFile checks that the folder is made and a second write
// replaces the first without leaving a temp file.
func TestWriteCertFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "f")
	for _, data := range []string{"one", "two"} {
		if err := writeCertFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != data {
			t.Errorf("content = %q, want %q", b, data)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("files in dir = %d, want 1 (no temp files left)", len(ents))
	}
}

func TestNewChecks(t *testing.T) {
	b := bus.New(bus.Config{}, nil)
	if _, err := New(Config{Server: "h:1"}, b, nil); !errors.Is(err, ErrNoNodeName) {
		t.Errorf("New(no node) = %v, want ErrNoNodeName", err)
	}
	if _, err := New(Config{Server: "bad", NodeName: "n", DataDir: "/d"}, b, nil); err == nil {
		t.Error("New(bad server) = nil error")
	}
	if _, err := New(Config{Server: "h:1", NodeName: "n", DataDir: "/d"}, b, nil); err != nil {
		t.Fatalf("New() = %v", err)
	}
	if !b.Has(bus.ModuleHub) {
		t.Error("New did not register module websocket")
	}
	if _, err := New(Config{Server: "h:1", NodeName: "n", DataDir: "/d"}, b, nil); !errors.Is(err, bus.ErrDuplicate) {
		t.Errorf("second New() = %v, want ErrDuplicate", err)
	}
	_ = context.Background
}

func TestRejoinAfterCloudReinstall(t *testing.T) {
	// The node joined cloud A; the cloud is reinstalled with a new CA
	// (cloud B) and the node is given a new token: the saved certificate
	// is not trusted any more, so the node joins again.
	a := newServer(t, hubtest.Config{})
	cfg := testConfig(t, a, bus.EraV123)
	if err := bootstrap(ctxT(t), cfg.Defaults()); err != nil {
		t.Fatal(err)
	}
	b := newServer(t, hubtest.Config{})
	cfg.Server, cfg.CertServer, cfg.Token = b.Addr, b.CertURL, b.Token(testNode)
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
	if got := b.Issued(); got != 1 {
		t.Errorf("cloud B issued %d certificates, want 1", got)
	}
}

func TestSeedCertificateWithoutNodeCN(t *testing.T) {
	// v0.3 certificates come from certgen.sh with CN kubeedge.io; with era
	// v0.3 and no token they are used as they are.
	srv := newServer(t, hubtest.Config{Era: bus.EraV03})
	cfg := testConfig(t, srv, bus.EraV03)
	cfg.Token = ""
	cfg.InsecureSkipVerify = true
	full := cfg.Defaults()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kubeedge.io"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := saveCerts(full, nil, der, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cfg)
	if got := n.recvConn(fakeMeta); got != bus.CloudConnected {
		t.Fatalf("event = %q, want connected", got)
	}
}
