package pod

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"edgenode/stream"
)

// scrapePods is how many running pods BenchmarkScrape's node has.
const scrapePods = 10

// BenchmarkScrape measures one scrape of the kubelet paths metrics-server
// reads every 15 s (/metrics/resource; /stats/summary for older ones), on
// a node with 10 running busybox pods: through the stream tunnel as the
// cloud asks for it (the in-process test cloud's side of the tunnel is
// counted too), and the handler alone (the edge's sampling and
// formatting, no tunnel). body-B is the size of the answer.
func BenchmarkScrape(b *testing.B) {
	h := newHarness(b, "", nil)
	h.runSleepers("scrape", scrapePods)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handler := h.r.Handler()
	srv := runTunnel(b, ctx, handler)
	wait, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	tun, err := srv.Tunnel(wait)
	if err != nil {
		b.Fatal(err)
	}
	// Every pod's container is in the answer, so a scrape that lost them
	// does not pass as a cheap one.
	last := `pod="scrape` + strconv.Itoa(scrapePods-1) + `"`
	for _, p := range []struct{ name, path, want string }{
		{"resource", "/metrics/resource", last},
		{"summary", "/stats/summary", `"name": "scrape` + strconv.Itoa(scrapePods-1) + `"`},
	} {
		b.Run(p.name+"/tunnel", func(b *testing.B) {
			var body []byte
			for b.Loop() {
				r, err := tun.Open(stream.TypeMetrics, p.path, nil)
				if err != nil {
					b.Fatal(err)
				}
				if body, err = r.ReadAll(wait); err != nil {
					b.Fatal(err)
				}
			}
			if !strings.Contains(string(body), p.want) {
				b.Fatalf("%s through the tunnel has no %s:\n%s", p.path, p.want, body)
			}
			b.ReportMetric(float64(len(body)), "body-B")
		})
		b.Run(p.name+"/handler", func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, p.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			var w countWriter
			for b.Loop() {
				w = countWriter{h: w.h}
				handler.ServeHTTP(&w, req)
			}
			if w.code != 0 && w.code != http.StatusOK || w.n == 0 {
				b.Fatalf("%s: status %d, %d bytes", p.path, w.code, w.n)
			}
			b.ReportMetric(float64(w.n), "body-B")
		})
	}
}

// countWriter is an http.ResponseWriter that counts the body and keeps
// nothing but its header map, so the handler's own cost is measured.
type countWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *countWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}

func (w *countWriter) WriteHeader(code int) { w.code = code }

func (w *countWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}
