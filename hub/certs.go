package hub

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgenode/internal/durable"
)

// Certificate errors.
var (
	// ErrBadToken is a token that is not <64 hex>.<header>.<claims>.<sig>.
	ErrBadToken = errors.New("hub: malformed token (want <sha256 hex of CA>.<JWT>)")
	// ErrCAHashMismatch means the CA served by the certificate server is
	// not the one the token names: the node refuses to trust it.
	ErrCAHashMismatch = errors.New("hub: CA certificate does not match the token's CA hash")
	// ErrTokenRefused means the certificate server turned the token or
	// the current certificate down.
	ErrTokenRefused = errors.New("hub: certificate server refused the request")
	// ErrNoCertificate means there is no usable node certificate and no
	// token to get one.
	ErrNoCertificate = errors.New("hub: no valid node certificate and no token")
)

// maxCertBody bounds what is read from the certificate server.
const maxCertBody = 64 << 10

// splitToken splits a KubeEdge join token into the CA hash and the JWT
// (docs/protocol.md 2.4 step 3: four dot-separated parts, the first the sha256
// hex of the CA's DER).
func splitToken(token string) (caHash, jwt string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 {
		return "", "", ErrBadToken
	}
	if len(parts[0]) != sha256.Size*2 {
		return "", "", ErrBadToken
	}
	if _, err := hex.DecodeString(parts[0]); err != nil {
		return "", "", ErrBadToken
	}
	for _, p := range parts[1:] {
		if p == "" {
			return "", "", ErrBadToken
		}
	}
	return strings.ToLower(parts[0]), strings.Join(parts[1:], "."), nil
}

// nodeCN is the common name KubeEdge gives a node certificate (docs/protocol.md
// 2.4 step 1 and 5).
func nodeCN(node string) string { return "system:node:" + node }

// loadNodeCert loads the node's key pair and checks that it is valid at
// now and, unless cfg.NodeName is empty, that it belongs to that node.
func loadNodeCert(cfg Config, now time.Time) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("hub: load certificate: %w", err)
	}
	leaf := pair.Leaf
	if cfg.NodeName != "" && leaf.Subject.CommonName != nodeCN(cfg.NodeName) {
		return tls.Certificate{}, fmt.Errorf("hub: certificate %s: CN %q, want %q", cfg.CertFile, leaf.Subject.CommonName, nodeCN(cfg.NodeName))
	}
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("hub: certificate %s: not valid at %s (valid %s to %s)",
			cfg.CertFile, now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return pair, nil
}

// bootstrap gets a node certificate with the token (docs/protocol.md 2.4 steps
// 2-7): fetch the CA, check its hash against the token, write it, make an ECDSA
// P-256 key and CSR, have the CSR signed, and write certificate and key.
func bootstrap(ctx context.Context, cfg Config) error {
	wantHash, jwt, err := splitToken(cfg.Token)
	if err != nil {
		return err
	}
	if cfg.CertServer == "" {
		return errors.New("hub: bootstrap: no certificate server configured")
	}
	// The CA is fetched without verification: the token's hash is what
	// makes it trusted (docs/protocol.md 2.4 step 2-3).
	insecure := oneShotClient(&tls.Config{InsecureSkipVerify: true}, 0)
	caDER, err := certRequest(ctx, insecure, cfg.CertServer+"/ca.crt", nil, nil)
	if err != nil {
		return fmt.Errorf("hub: bootstrap: get CA: %w", err)
	}
	sum := sha256.Sum256(caDER)
	if got := hex.EncodeToString(sum[:]); got != wantHash {
		return fmt.Errorf("%w: server CA %s, token %s", ErrCAHashMismatch, got[:12], wantHash[:12])
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("hub: bootstrap: parse CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client := oneShotClient(&tls.Config{RootCAs: pool}, 0)
	hdr := http.Header{"Authorization": {"Bearer " + jwt}, "NodeName": {cfg.NodeName}}
	certDER, keyPEM, err := signCSR(ctx, client, cfg, hdr)
	if err != nil {
		return fmt.Errorf("hub: bootstrap: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return saveCerts(cfg, caPEM, certDER, keyPEM)
}

// oneShotClient returns an HTTPS client for the few requests of a
// bootstrap, a renewal or a placement lookup. It keeps no connection open
// once a response is read: a kept one would sit idle until the server
// drops it, for the node's life if the server never does (its transport
// has no idle timeout), holding two goroutines and its TLS and read and
// write buffers, while nothing asks that server again for months. timeout
// 0 means none (the caller's context bounds the request).
func oneShotClient(tc *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}, Timeout: timeout}
}

// renew replaces the node certificate, authenticating with the current
// one (docs/protocol.md 2.4 step 8).
func renew(ctx context.Context, cfg Config, cur tls.Certificate) error {
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return fmt.Errorf("hub: renew: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("hub: renew: no certificate in %s", cfg.CAFile)
	}
	client := oneShotClient(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cur}}, 0)
	certDER, keyPEM, err := signCSR(ctx, client, cfg, http.Header{"NodeName": {cfg.NodeName}})
	if err != nil {
		return fmt.Errorf("hub: renew: %w", err)
	}
	return saveCerts(cfg, nil, certDER, keyPEM)
}

// signCSR makes a fresh key and CSR and has /edge.crt sign it.
func signCSR(ctx context.Context, client *http.Client, cfg Config, hdr http.Header) (certDER, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{
		Country: []string{"CN"}, Organization: []string{"system:nodes"}, Locality: []string{"Hangzhou"},
		Province: []string{"Zhejiang"}, CommonName: nodeCN(cfg.NodeName),
	}}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CSR: %w", err)
	}
	certDER, err = certRequest(ctx, client, cfg.CertServer+"/edge.crt", hdr, csr)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CSR: %w", err)
	}
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(&key.PublicKey) {
		return nil, nil, errors.New("signed certificate is not for our key")
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return certDER, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// certRequest does a GET (with a body when body is not nil: KubeEdge's
// /edge.crt takes the CSR as the body of a GET, docs/protocol.md 2.4 step 6) and
// returns the body of a 200 answer.
func certRequest(ctx context.Context, client *http.Client, url string, hdr http.Header, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCertBody))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return b, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s: %s", ErrTokenRefused, resp.Status, strings.TrimSpace(string(b)))
	default:
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
}

// saveCerts writes the files, each with writeCertFile; the
// key is written before the certificate so that a crash leaves either
// the old pair or a key with no matching certificate, which
// loadNodeCert rejects and bootstrap repairs.
func saveCerts(cfg Config, caPEM, certDER, keyPEM []byte) error {
	if caPEM != nil {
		if err := writeCertFile(cfg.CAFile, caPEM, 0o644); err != nil {
			return err
		}
	}
	if err := writeCertFile(cfg.KeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	return writeCertFile(cfg.CertFile, certPEM, 0o644)
}

// writeCertFile makes path's folder if needed and writes data there with
// durable.WriteFile, so that a power cut leaves the old file or the new.
func writeCertFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("hub: write %s: %w", path, err)
	}
	if err := durable.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// renewAt picks the renewal time at a random point between 70 % and 90 %
// of the certificate's lifetime (docs/protocol.md 2.4 step 8).
func renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	frac := 0.7 + 0.2*mrand.Float64()
	return leaf.NotBefore.Add(time.Duration(float64(life) * frac))
}

// isTrustFailure reports whether a dial failed because one side did not
// trust the other's certificate: the cloud's CA is not ours (a
// reinstalled cloud) or the cloud refused our certificate.
func isTrustFailure(err error) bool {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return true
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return true
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		// bad_certificate, unsupported_certificate, certificate_revoked,
		// certificate_expired, certificate_unknown, unknown_ca (RFC 8446
		// 6.2).
		switch alert {
		case 42, 43, 44, 45, 46, 48:
			return true
		}
	}
	return false
}
