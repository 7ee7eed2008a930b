package mqtt

import (
	"context"
	"log/slog"
)

// msgConnEnded names the one kind of line mochi-mqtt logs without a
// message: its listeners log the error that ended a client's connection
// (a client that went away without DISCONNECT, a bad CONNECT, refused
// credentials) as msg="" with the error as an attribute (mochi-mqtt
// v2.7.9 listeners/tcp.go Serve).
const msgConnEnded = "client connection ended with an error"

// mochiHandler is the handler of the logger given to mochi-mqtt: it passes
// every record on, giving the records mochi logs with an empty message a
// readable one. It holds no state of its own.
type mochiHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" {
		named := slog.NewRecord(r.Time, r.Level, msgConnEnded, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			named.AddAttrs(a)
			return true
		})
		r = named
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h mochiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return mochiHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h mochiHandler) WithGroup(name string) slog.Handler {
	return mochiHandler{h.Handler.WithGroup(name)}
}
