package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Errors of the framing.
var (
	ErrTooLarge   = errors.New("rpc: message larger than the limit")
	ErrCompressed = errors.New("rpc: compressed message (no compression was negotiated)")
	ErrNoMessage  = errors.New("rpc: no message in the stream")
	ErrExtra      = errors.New("rpc: more than one message in a unary stream")
)

// DefaultMaxMessage is the default limit of a received message, grpc-go's
// default receive limit (4 MiB).
const DefaultMaxMessage = 4 << 20

// appendFrame appends msg with its 5-byte prefix: compressed flag 0 and the
// big-endian length (PROTOCOL-HTTP2.md, "Length-Prefixed-Message").
func appendFrame(dst, msg []byte) []byte {
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
	return append(dst, msg...)
}

// readFrame reads one length-prefixed message of at most max bytes. At a
// clean end of stream before any prefix byte it returns io.EOF.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("rpc: truncated message prefix: %w", err)
		}
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, ErrCompressed
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, n, max)
	}
	// Read what arrives rather than trust the prefix with an allocation.
	msg, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("rpc: read message: %w", err)
	}
	if len(msg) < int(n) {
		return nil, fmt.Errorf("rpc: truncated message: %w", io.ErrUnexpectedEOF)
	}
	return msg, nil
}

// readUnary reads the single message of a unary request or response and
// checks that nothing follows it.
func readUnary(r io.Reader, max int) ([]byte, error) {
	msg, err := readFrame(r, max)
	if err == io.EOF {
		return nil, ErrNoMessage
	}
	if err != nil {
		return nil, err
	}
	var one [1]byte
	switch n, err := r.Read(one[:]); {
	case n > 0:
		return nil, ErrExtra
	case err != nil && err != io.EOF:
		return nil, err
	}
	// A reader may return 0, nil once before io.EOF.
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return nil, ErrExtra
	}
	return msg, nil
}

// parseTimeout reads a grpc-timeout header value: at most 8 digits and a
// unit H, M, S, m, u or n (PROTOCOL-HTTP2.md, "Timeout").
func parseTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	v, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(v) * unit, true
}

// formatTimeout writes d as a grpc-timeout value, rounded up to the unit
// that keeps it within 8 digits.
func formatTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	units := []struct {
		d time.Duration
		c byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	for _, u := range units {
		v := (d + u.d - 1) / u.d
		if v < 1e8 {
			return strconv.FormatInt(int64(v), 10) + string(u.c)
		}
	}
	return "99999999H"
}
