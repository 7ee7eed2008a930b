package streamtest

import (
	"context"
	"net/http"
	"strings"

	"edgenode/stream"
)

// ServeHTTP makes the tunnel cloudstream's stream server for exec and
// attach, so that a test can point a real client (client-go's SPDY
// executor) at an httptest.Server of it. As KubeEdge v1.23.1
// cloud/pkg/cloudstream/streamserver.go (getExec, getAttach) and
// containerexec_connection.go do, it checks for an upgrade, hijacks the
// client's connection without answering, sends ExecConnect or
// AttachConnect with the client's method, URL and whole header, and then
// passes raw bytes both ways: the client's as Data in reads of at most
// 256 bytes, the edge's Data to the client. The edge's RemoveConnect
// closes the client's connection; the client's EOF sends RemoveConnect.
// Other paths get 404.
func (t *Tunnel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var typ stream.Type
	switch {
	case strings.HasPrefix(r.URL.Path, "/exec/"):
		typ = stream.TypeExec
	case strings.HasPrefix(r.URL.Path, "/attach/"):
		typ = stream.TypeAttach
	default:
		http.NotFound(w, r)
		return
	}
	if !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		http.Error(w, "request was not an upgrade", http.StatusInternalServerError)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	req, err := t.open(typ, r.Method, r.URL.RequestURI(), r.Header.Clone())
	if err != nil {
		return
	}
	fromClient := make(chan struct{})
	go func() {
		defer close(fromClient)
		var buf [256]byte
		for {
			n, err := brw.Reader.Read(buf[:])
			if n > 0 {
				if req.Write(append([]byte(nil), buf[:n]...)) != nil {
					return
				}
			}
			if err != nil {
				_ = req.Remove()
				return
			}
		}
	}()
	for {
		d, ok, err := req.Next(context.Background())
		if err != nil || !ok {
			break
		}
		if _, err := conn.Write(d); err != nil {
			_ = req.Remove()
			break
		}
	}
	conn.Close()
	<-fromClient
}
