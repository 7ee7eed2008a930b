package stream

import (
	"crypto/tls"
	"os"
)

// certCache keeps the node certificate between dials. A tunnel whose
// cloud runs no cloudstream is redialled about once a minute for as long
// as the node runs, and loading the pair read and parsed both files and
// checked the key against the certificate (a P-256 multiplication): about
// 0.5 ms of CPU a dial in a profile of an idle node on the host of README
// "Bench". The pair is loaded again when either file is another file or
// has another size or modification time; the hub renews the certificate
// by renaming new files into place (durable.WriteFile).
type certCache struct {
	cert     *tls.Certificate
	crt, key os.FileInfo
}

// load returns the pair in certFile and keyFile (a client's, always the
// same two), from the cache when neither file changed since it was
// loaded.
func (c *certCache) load(certFile, keyFile string) (*tls.Certificate, error) {
	crt, err := os.Stat(certFile)
	if err != nil {
		return nil, err
	}
	key, err := os.Stat(keyFile)
	if err != nil {
		return nil, err
	}
	if c.cert != nil && same(c.crt, crt) && same(c.key, key) {
		return c.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		c.cert = nil
		return nil, err
	}
	*c = certCache{cert: &pair, crt: crt, key: key}
	return c.cert, nil
}

// same reports whether b is a, unchanged: the same file, size and
// modification time.
func same(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
