package rpc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// rawCodec lets stock grpc-go send and receive message bytes as they are,
// so the framing is tested on its own; package dmi tests the DMI messages
// with generated types.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

const echo = "/test.Echo/Echo"

func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return ln, path
}

// serve runs s on a fresh unix socket until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, path := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Serve(ctx, ln); err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return path
}

// grpcDial dials path the way the KubeEdge mapper-framework does: the raw
// socket path as target, a unix dialer, no TLS.
func grpcDial(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func echoServer() *Server {
	s := NewServer(ServerConfig{}, nil)
	s.Handle(echo, func(ctx context.Context, req []byte) ([]byte, error) {
		switch {
		case bytes.HasPrefix(req, []byte("fail:")):
			return nil, Errorf(NotFound, "%s", req[5:])
		case bytes.HasPrefix(req, []byte("plain")):
			return nil, errors.New("plain error")
		case bytes.HasPrefix(req, []byte("deadline")):
			dl, ok := ctx.Deadline()
			if !ok || time.Until(dl) > time.Minute {
				return nil, Errorf(InvalidArgument, "no deadline from grpc-timeout")
			}
		}
		return append([]byte("echo:"), req...), nil
	})
	return s
}

func TestServerWithGRPCClient(t *testing.T) {
	cc := grpcDial(t, serve(t, echoServer()))
	big := bytes.Repeat([]byte("x"), 120<<10)
	tests := []struct {
		name     string
		method   string
		req      []byte
		want     []byte
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "small", method: echo, req: []byte("hi"), want: []byte("echo:hi")},
		{name: "empty", method: echo, req: []byte{}, want: []byte("echo:")},
		{name: "120KiB", method: echo, req: big, want: append([]byte("echo:"), big...)},
		{name: "status", method: echo, req: []byte("fail:gone 100% ü\n"), wantCode: codes.NotFound, wantMsg: "gone 100% ü\n"},
		{name: "plain error", method: echo, req: []byte("plain"), wantCode: codes.Unknown, wantMsg: "plain error"},
		{name: "unknown method", method: "/test.Echo/Nope", req: []byte("x"), wantCode: codes.Unimplemented},
		{name: "deadline", method: echo, req: []byte("deadline"), want: []byte("echo:deadline")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var got []byte
			err := cc.Invoke(ctx, tt.method, &tt.req, &got)
			if st := status.Convert(err); st.Code() != tt.wantCode || (tt.wantMsg != "" && st.Message() != tt.wantMsg) {
				t.Fatalf("Invoke(%s) error = %v, want code %v message %q", tt.method, err, tt.wantCode, tt.wantMsg)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Errorf("Invoke(%s) = %d bytes %.40q, want %d bytes %.40q", tt.method, len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

func TestServerConcurrentCalls(t *testing.T) {
	cc := grpcDial(t, serve(t, echoServer()))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			req := []byte(strings.Repeat("c", i))
			var got []byte
			if err := cc.Invoke(context.Background(), echo, &req, &got); err != nil || string(got) != "echo:"+string(req) {
				t.Errorf("Invoke(%d) = %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()
}

func TestServerLimit(t *testing.T) {
	s := echoServer()
	s.cfg.MaxMessage = 1 << 10
	cc := grpcDial(t, serve(t, s))
	req := bytes.Repeat([]byte("x"), 2<<10)
	var got []byte
	err := cc.Invoke(context.Background(), echo, &req, &got)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Invoke(2 KiB) error = %v, want ResourceExhausted", err)
	}
}

// grpcEcho serves an echo method with stock grpc-go on a fresh unix socket.
func grpcEcho(t *testing.T) string {
	t.Helper()
	ln, path := listen(t)
	gs := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Echo", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var b []byte
			if err := dec(&b); err != nil {
				return nil, err
			}
			if msg, ok := bytes.CutPrefix(b, []byte("fail:")); ok {
				return nil, status.Error(codes.NotFound, string(msg))
			}
			if bytes.Equal(b, []byte("deadline")) {
				if _, ok := ctx.Deadline(); !ok {
					return nil, status.Error(codes.InvalidArgument, "no deadline")
				}
			}
			out := append([]byte("echo:"), b...)
			return &out, nil
		}}},
	}, struct{}{})
	var wg sync.WaitGroup
	wg.Go(func() { gs.Serve(ln) })
	t.Cleanup(func() { gs.Stop(); wg.Wait() })
	return path
}

func TestClientWithGRPCServer(t *testing.T) {
	c := UnixClient(ClientConfig{}, grpcEcho(t))
	defer c.Close()
	big := bytes.Repeat([]byte("y"), 120<<10)
	tests := []struct {
		name     string
		method   string
		req      []byte
		want     []byte
		wantCode Code
		wantMsg  string
	}{
		{name: "small", method: echo, req: []byte("hi"), want: []byte("echo:hi")},
		{name: "120KiB", method: echo, req: big, want: append([]byte("echo:"), big...)},
		{name: "status", method: echo, req: []byte("fail:no such device 50%"), wantCode: NotFound, wantMsg: "no such device 50%"},
		{name: "unknown method", method: "/test.Echo/Nope", req: []byte("x"), wantCode: Unimplemented},
		{name: "deadline", method: echo, req: []byte("deadline"), want: []byte("echo:deadline")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := c.Call(ctx, tt.method, tt.req)
			if CodeOf(err) != tt.wantCode {
				t.Fatalf("Call(%s) error = %v, want code %d", tt.method, err, tt.wantCode)
			}
			var st *Status
			if tt.wantMsg != "" && (!errors.As(err, &st) || st.Message != tt.wantMsg) {
				t.Fatalf("Call(%s) error = %v, want message %q", tt.method, err, tt.wantMsg)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Errorf("Call(%s) = %.40q, want %.40q", tt.method, got, tt.want)
			}
		})
	}
}

func TestClientNoServer(t *testing.T) {
	c := UnixClient(ClientConfig{}, filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	_, err := c.Call(context.Background(), echo, []byte("x"))
	if CodeOf(err) != Unavailable {
		t.Fatalf("Call(no server) error = %v, want Unavailable", err)
	}
}

// Our client against our server, both directions of this package.
func TestClientServer(t *testing.T) {
	c := UnixClient(ClientConfig{}, serve(t, echoServer()))
	defer c.Close()
	got, err := c.Call(context.Background(), echo, []byte("a"))
	if err != nil || string(got) != "echo:a" {
		t.Fatalf("Call(a) = %q, %v, want echo:a", got, err)
	}
	_, err = c.Call(context.Background(), echo, []byte("fail:x"))
	if CodeOf(err) != NotFound {
		t.Fatalf("Call(fail:x) error = %v, want NotFound", err)
	}
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Second, "1000000u"}, {1500 * time.Millisecond, "1500000u"}, {time.Nanosecond, "1n"}, {200 * time.Hour, "720000S"},
	}
	for _, tt := range tests {
		s := formatTimeout(tt.in)
		if s != tt.want {
			t.Errorf("formatTimeout(%v) = %q, want %q", tt.in, s, tt.want)
		}
		if d, ok := parseTimeout(s); !ok || d < tt.in {
			t.Errorf("parseTimeout(%q) = %v, %v, want at least %v", s, d, ok, tt.in)
		}
	}
	for _, bad := range []string{"", "1", "123456789S", "1x", "-1S", "S"} {
		if _, ok := parseTimeout(bad); ok {
			t.Errorf("parseTimeout(%q) ok, want a failure", bad)
		}
	}
}
