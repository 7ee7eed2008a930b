package stream

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a new self-signed pair for cn to dir/node.crt and
// dir/node.key, each through a rename, as the hub renews them.
func writePair(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kd}} {
		if err := os.WriteFile(f+".new", pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f+".new", f); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestCertCacheReloadsRenewedFiles(t *testing.T) {
	dir := t.TempDir()
	crt, key := writePair(t, dir, "first")
	var c certCache
	a, err := c.load(crt, key)
	if err != nil {
		t.Fatalf("load() = %v", err)
	}
	if again, err := c.load(crt, key); err != nil || again != a {
		t.Errorf("second load of unchanged files = %p, %v; want the cached %p", again, err, a)
	}
	writePair(t, dir, "second")
	b, err := c.load(crt, key)
	if err != nil {
		t.Fatalf("load() after renewal = %v", err)
	}
	if b == a || bytes.Equal(b.Certificate[0], a.Certificate[0]) {
		t.Error("load() after renewal returned the old certificate")
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if got, err := c.load(crt, key); err == nil {
		t.Errorf("load() without a key file = %p, want an error", got)
	}
}
