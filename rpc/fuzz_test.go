package rpc

import (
	"bytes"
	"testing"
)

// FuzzReadUnary feeds outside bytes (a request or response body) to the
// frame reader: it must not panic, must respect the limit, and must give
// back what appendFrame wrote.
func FuzzReadUnary(f *testing.F) {
	f.Add(appendFrame(nil, []byte("hello")))
	f.Add(appendFrame(nil, nil))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 1, 'x'})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Add(append(appendFrame(nil, []byte("a")), appendFrame(nil, []byte("b"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := readUnary(bytes.NewReader(b), 1<<10)
		if err != nil {
			return
		}
		if len(msg) > 1<<10 {
			t.Fatalf("readUnary() = %d bytes, over the 1 KiB limit", len(msg))
		}
		if !bytes.Equal(appendFrame(nil, msg), b) {
			t.Fatalf("readUnary(%x) = %x, which does not frame back to the input", b, msg)
		}
	})
}

func FuzzTimeoutAndMessage(f *testing.F) {
	for _, s := range []string{"1S", "100m", "99999999H", "%41b%", "ü", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseTimeout(s)
		if got := decodeMessage(encodeMessage(s)); got != s {
			t.Fatalf("decodeMessage(encodeMessage(%q)) = %q", s, got)
		}
	})
}
