package hubtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"edgenode/bus"
)

func TestJWT(t *testing.T) {
	key := []byte("k1")
	now := time.Unix(1_700_000_000, 0)
	good := jwt(key, map[string]any{"exp": now.Add(time.Hour).Unix()})
	tests := []struct {
		name  string
		token string
		key   []byte
		want  error
	}{
		{"valid", good, key, nil},
		{"other key", good, []byte("k2"), errJWTSig},
		{"expired", jwt(key, map[string]any{"exp": now.Add(-time.Second).Unix()}), key, errJWTExpired},
		{"two parts", "a.b", key, errJWTFormat},
		{"tampered claims", strings.Replace(good, ".", ".x", 1), key, errJWTSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := verifyJWT(tt.key, tt.token, now); err != tt.want {
				t.Errorf("verifyJWT() = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerifyJWT(f *testing.F) {
	key := []byte("k")
	f.Add(jwt(key, map[string]any{"exp": 1}))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		if verifyJWT(key, tok, time.Unix(0, 0)) == nil && !strings.HasPrefix(tok, "eyJ") {
			t.Fatalf("verifyJWT(%q) accepted a token with a foreign header", tok)
		}
	})
}

func TestTokenAndCertEndpoints(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	tok := s.Token("n1")
	hash, jwtPart, ok := strings.Cut(tok, ".")
	if !ok || hash != s.CAHash() || strings.Count(jwtPart, ".") != 2 {
		t.Fatalf("Token() = %q, want <CA hash>.<JWT>", tok)
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Get(s.CertURL + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(der, s.ca.der) {
		t.Fatal("/ca.crt is not the CA's DER")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1"}}, key)
	sign := func(auth, node string) int {
		req, _ := http.NewRequest(http.MethodGet, s.CertURL+"/edge.crt", bytes.NewReader(csr))
		req.Header.Set("Authorization", auth)
		req.Header.Set("NodeName", node)
		resp, err := insecure.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, auth, node string
		want             int
	}{
		{"token", "Bearer " + jwtPart, "n1", http.StatusOK},
		{"no token", "", "n1", http.StatusUnauthorized},
		{"bad token", "Bearer " + jwtPart + "x", "n1", http.StatusUnauthorized},
		{"other node", "Bearer " + jwtPart, "n2", http.StatusBadRequest},
	}
	for _, tt := range tests {
		if got := sign(tt.auth, tt.node); got != tt.want {
			t.Errorf("%s: /edge.crt status = %d, want %d", tt.name, got, tt.want)
		}
	}
	if s.Issued() != 1 {
		t.Errorf("Issued() = %d, want 1", s.Issued())
	}
}

func TestSeedIdentityFromPath(t *testing.T) {
	s := NewServer(Config{Era: bus.EraV03})
	defer s.Close()
	dial := func(path string) error {
		d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		ws, _, err := d.DialContext(context.Background(), "wss://"+s.Addr+path, nil)
		if err == nil {
			ws.Close()
		}
		return err
	}
	if err := dial("/proj/node-7/events"); err != nil {
		t.Fatalf("dial with identity in the path: %v", err)
	}
	if err := s.WaitConnects(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if err := dial("/events"); err == nil {
		t.Error("dial without identity in the path succeeded")
	}
	if got := s.Rejected(); got != 1 {
		t.Errorf("Rejected() = %d, want 1", got)
	}
}
