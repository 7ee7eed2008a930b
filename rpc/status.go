package rpc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Code is a gRPC status code (grpc/grpc doc/statuscodes.md).
type Code uint32

// The status codes this package and its users produce or test for.
const (
	OK                Code = 0
	Canceled          Code = 1
	Unknown           Code = 2
	InvalidArgument   Code = 3
	DeadlineExceeded  Code = 4
	NotFound          Code = 5
	ResourceExhausted Code = 8
	Unimplemented     Code = 12
	Internal          Code = 13
	Unavailable       Code = 14
)

// Status is a non-OK gRPC status as an error.
type Status struct {
	Code    Code
	Message string
}

func (s *Status) Error() string {
	return fmt.Sprintf("rpc: status %d: %s", s.Code, s.Message)
}

// Errorf returns a *Status error with code and a formatted message.
func Errorf(code Code, format string, args ...any) error {
	return &Status{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: OK for nil, the code of a *Status in its
// chain, Unknown otherwise (what grpc-go's server sends for a plain error).
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	var s *Status
	if errors.As(err, &s) {
		return s.Code
	}
	return Unknown
}

// statusOf returns the code and message to send for err.
func statusOf(err error) (Code, string) {
	var s *Status
	if errors.As(err, &s) {
		return s.Code, s.Message
	}
	return Unknown, err.Error()
}

// encodeMessage percent-encodes a grpc-message value: bytes outside
// printable ASCII, and '%', become %XX (PROTOCOL-HTTP2.md, "Responses").
func encodeMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// decodeMessage undoes encodeMessage; a malformed escape is kept as it is.
func decodeMessage(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
