package rpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler answers one unary call: req is the request message's bytes, the
// result the response message's bytes. A *Status error is sent with its
// code, any other error as Unknown. ctx ends with the call (client gone or
// grpc-timeout passed).
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// ServerConfig configures a Server. The zero value gives the defaults.
type ServerConfig struct {
	// MaxMessage limits a request message. Default DefaultMaxMessage.
	MaxMessage int
	// MaxStreams limits concurrent calls per connection. Default 100.
	MaxStreams int
}

// Server serves unary gRPC methods over unencrypted HTTP/2. Register
// methods with Handle before Serve.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	mu      sync.RWMutex
	methods map[string]Handler
}

// NewServer returns a server with no methods. log may be nil.
func NewServer(cfg ServerConfig, log *slog.Logger) *Server {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 100
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, methods: map[string]Handler{}}
}

// Handle registers h for the full method path, "/<package>.<Service>/<Method>".
func (s *Server) Handle(method string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods[method] = h
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and returns nil once net/http's goroutines are done with
// them. Any :authority is accepted: mapper-framework clients send their
// socket path.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	hs := &http.Server{
		Handler:           s,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.cfg.MaxStreams},
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			hs.Close()
		case <-done:
		}
	})
	err := hs.Serve(ln)
	close(done)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeHTTP answers one gRPC call (PROTOCOL-HTTP2.md, "Requests" and
// "Responses").
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		http.Error(w, "rpc: want a POST of application/grpc", http.StatusUnsupportedMediaType)
		return
	}
	w.Header().Set("Content-Type", "application/grpc")
	s.mu.RLock()
	h, ok := s.methods[r.URL.Path]
	s.mu.RUnlock()
	if !ok {
		writeStatus(w, false, Unimplemented, "unknown method "+r.URL.Path)
		return
	}
	if enc := r.Header.Get("Grpc-Encoding"); enc != "" && enc != "identity" {
		writeStatus(w, false, Unimplemented, "compression "+enc+" not supported")
		return
	}
	ctx := r.Context()
	if t := r.Header.Get("Grpc-Timeout"); t != "" {
		d, ok := parseTimeout(t)
		if !ok {
			writeStatus(w, false, InvalidArgument, "bad grpc-timeout "+t)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	req, err := readUnary(r.Body, s.cfg.MaxMessage)
	if err != nil {
		code := Internal
		if errors.Is(err, ErrTooLarge) {
			code = ResourceExhausted
		}
		writeStatus(w, false, code, err.Error())
		return
	}
	resp, err := h(ctx, req)
	if err != nil {
		code, msg := statusOf(err)
		writeStatus(w, false, code, msg)
		return
	}
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(http.StatusOK)
	w.Write(appendFrame(make([]byte, 0, 5+len(resp)), resp))
	writeStatus(w, true, OK, "")
}

// writeStatus ends a call with its status: as trailers after a message, or
// in the headers of a trailers-only response (no message).
func writeStatus(w http.ResponseWriter, trailers bool, code Code, msg string) {
	h := w.Header()
	h.Set("Grpc-Status", strconv.FormatUint(uint64(code), 10))
	if msg != "" {
		h.Set("Grpc-Message", encodeMessage(msg))
	}
	if !trailers {
		w.WriteHeader(http.StatusOK)
	}
}
