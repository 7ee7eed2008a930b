// Package rpc is a small gRPC for unary calls: the server and client side of
// gRPC's HTTP/2 protocol (grpc/grpc PROTOCOL-HTTP2.md) on net/http's own
// unencrypted HTTP/2 (http.Protocols.SetUnencryptedHTTP2), over any
// listener or dialer, typically a unix socket.
//
// Why not google.golang.org/grpc: edgenode must fit in 16 MiB on ARMv6, and
// grpc-go with its generated messages adds about 5 MiB to the binary, more
// than the headroom. net/http already carries an HTTP/2 implementation, so
// gRPC's unary framing costs only this package: a 5-byte prefix per message
// (compressed flag, big-endian length), the grpc-status and grpc-message
// trailers (or a trailers-only response for an error), and grpc-timeout.
// Messages are bytes here; callers encode them with protowire. Streaming,
// compression, metadata beyond the headers above, and TLS are left out: the
// KubeEdge DMI (edge <-> mapper over a unix socket) uses none of them. Tests
// prove the wire against stock grpc-go as both client and server.
//
// In: HTTP/2 requests on the listener given to Server.Serve. Out: HTTP/2
// requests from Client.Call. Goroutines: Serve runs net/http's server (one
// goroutine per connection and per stream) until its context ends; a Client
// runs net/http's transport goroutines until Close. Persistence: none.
package rpc
