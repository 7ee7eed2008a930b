package hubtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"strings"
	"time"
)

// authority is the server's CA: it signs the server certificates and the
// nodes' CSRs, and its JWT key signs tokens.
type authority struct {
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	der    []byte
	pool   *x509.CertPool
	jwtKey []byte
}

func newAuthority() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hubtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	jwtKey := make([]byte, 32)
	rand.Read(jwtKey)
	return &authority{key: key, cert: cert, der: der, pool: pool, jwtKey: jwtKey}, nil
}

// serverCert makes a certificate for 127.0.0.1 and localhost.
func (a *authority) serverCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "cloudhub"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// sign signs a node CSR for validity (docs/protocol.md 2.4 step 6: client auth).
func (a *authority) sign(csr *x509.CertificateRequest, validity time.Duration) ([]byte, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      csr.Subject,
		NotBefore:    now.Add(-time.Second),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, a.cert, csr.PublicKey, a.key)
}

// caHash is the sha256 hex of the CA's DER, the first part of a token.
func (a *authority) caHash() string {
	sum := sha256.Sum256(a.der)
	return hex.EncodeToString(sum[:])
}

var b64 = base64.RawURLEncoding

// jwt returns an HS256 JWT with the claims, signed with key.
func jwt(key []byte, claims map[string]any) string {
	head := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(claims)
	signing := head + "." + b64.EncodeToString(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(mac.Sum(nil))
}

// Errors of token checks.
var (
	errJWTFormat  = errors.New("hubtest: malformed JWT")
	errJWTSig     = errors.New("hubtest: bad JWT signature")
	errJWTExpired = errors.New("hubtest: JWT expired")
)

// verifyJWT checks an HS256 JWT against key and its exp claim.
func verifyJWT(key []byte, token string, now time.Time) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errJWTFormat
	}
	var head struct {
		Alg string `json:"alg"`
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &head) != nil || head.Alg != "HS256" {
		return errJWTFormat
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return errJWTFormat
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return errJWTSig
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	cb, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(cb, &claims) != nil {
		return errJWTFormat
	}
	if claims.Exp != 0 && now.Unix() >= claims.Exp {
		return errJWTExpired
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
