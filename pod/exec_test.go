package pod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"

	"edgenode/bus"
	"edgenode/stream"
	"edgenode/stream/streamtest"
)

var execQueryTests = []struct {
	name    string
	query   string
	want    execOptions
	wantErr string
}{
	{"kubelet style", "command=ls&input=1&output=1&error=1", execOptions{stdin: true, stdout: true, stderr: true}, ""},
	{"true and false", "output=true&error=false", execOptions{stdout: true}, ""},
	{"tty drops stderr", "output=1&error=1&tty=1", execOptions{stdout: true, tty: true}, ""},
	{"no stream", "command=ls&tty=1", execOptions{}, "at least 1 of stdin"},
	{"not a boolean", "output=yes please", execOptions{}, "output"},
	{"nothing", "", execOptions{}, "at least 1"},
}

func TestParseExecOptions(t *testing.T) {
	for _, tt := range execQueryTests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tt.query)
			got, err := parseExecOptions(q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseExecOptions(%q) error %v, want one with %q", tt.query, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseExecOptions(%q) = %+v, %v, want %+v", tt.query, got, err, tt.want)
			}
		})
	}
}

func FuzzExecQuery(f *testing.F) {
	for _, tt := range execQueryTests {
		f.Add(tt.query)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		o, err := parseExecOptions(q)
		if err == nil && !o.stdin && !o.stdout && !o.stderr {
			t.Fatalf("parseExecOptions(%q) = %+v with no stream and no error", s, o)
		}
		if o.tty && o.stderr {
			t.Fatalf("parseExecOptions(%q) = tty with stderr", s)
		}
	})
}

var resizeTests = []struct {
	name string
	in   string
	want []termSize
}{
	{"two", `{"Width":80,"Height":24}{"Width":100,"Height":30}`, []termSize{{80, 24}, {100, 30}}},
	{"newlines", "{\"Width\":1,\"Height\":2}\n{\"Width\":3}\n", []termSize{{1, 2}, {3, 0}}},
	{"stops at garbage", `{"Width":5,"Height":6}xx{"Width":7,"Height":8}`, []termSize{{5, 6}}},
	{"out of range", `{"Width":70000,"Height":1}`, nil},
	{"negative", `{"Width":-1,"Height":1}`, nil},
	{"empty", ``, nil},
}

func TestReadResizes(t *testing.T) {
	for _, tt := range resizeTests {
		t.Run(tt.name, func(t *testing.T) {
			var got []termSize
			readResizes(strings.NewReader(tt.in), func(s termSize) { got = append(got, s) })
			if len(got) != len(tt.want) {
				t.Fatalf("readResizes(%q) = %v, want %v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("readResizes(%q) = %v, want %v", tt.in, got, tt.want)
				}
			}
		})
	}
}

func FuzzResize(f *testing.F) {
	for _, tt := range resizeTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		readResizes(bytes.NewReader(b), func(termSize) { n++ })
		if n > len(b) {
			t.Fatalf("readResizes: %d sizes from %d bytes", n, len(b))
		}
	})
}

// TestExitStatusJSON: the error stream's Status is what metav1.Status
// marshals to, as the kubelet writes it.
func TestExitStatusJSON(t *testing.T) {
	tests := []struct {
		name string
		got  status
		want metav1.Status
	}{
		{"success", exitStatus(0, nil, nil), metav1.Status{Status: metav1.StatusSuccess}},
		{"exit 3", exitStatus(3, []string{"sh", "-c", "exit 3"}, nil), metav1.Status{
			Status: metav1.StatusFailure, Reason: "NonZeroExitCode",
			Message: "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: "3"}}}}},
		{"internal", exitStatus(-1, nil, errors.New("boom")), metav1.Status{
			Status: metav1.StatusFailure, Code: 500, Reason: metav1.StatusReasonInternalError,
			Message: "Internal error occurred: boom",
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Message: "boom"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := json.Marshal(tt.got)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("status JSON = %s, want %s", got, want)
			}
		})
	}
}

// execEdge is a node with pods, its tunnel and a stream server for
// client-go to dial.
type execEdge struct {
	h   *harness
	tun *streamtest.Tunnel
	url string // of the stream server
}

func startExecEdge(t *testing.T, pods ...*Pod) *execEdge {
	t.Helper()
	h := newHarness(t, "", nil)
	for _, p := range pods {
		h.send(bus.OpInsert, bus.KindPod, "default", p.Metadata.Name, p)
	}
	for _, p := range pods {
		var names []string
		for _, c := range p.Spec.Containers {
			names = append(names, c.Name)
		}
		h.waitStatus(p.Metadata.Name, 2*time.Minute, running(names...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := runTunnel(t, ctx, h.r.Handler())
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	tun, err := srv.Tunnel(wctx)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(tun)
	t.Cleanup(hs.Close)
	return &execEdge{h: h, tun: tun, url: hs.URL}
}

// run streams a remote command through the tunnel with client-go's SPDY
// executor, the client the API server uses towards a kubelet. protocols
// nil means client-go's full list.
func (e *execEdge) run(ctx context.Context, pathQuery string, o remotecommand.StreamOptions, protocols ...string) error {
	u, err := url.Parse(e.url + pathQuery)
	if err != nil {
		return err
	}
	cfg := &rest.Config{Host: e.url}
	var ex remotecommand.Executor
	if protocols == nil {
		ex, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
	} else {
		tr, upg, err := spdy.RoundTripperFor(cfg)
		if err != nil {
			return err
		}
		ex, err = remotecommand.NewSPDYExecutorForProtocols(tr, upg, "POST", u, protocols...)
		if err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, o)
}

func execQuery(cmd ...string) string {
	q := url.Values{"command": cmd}
	return q.Encode()
}

func TestExecAndAttachThroughTunnel(t *testing.T) {
	p := testPod("tunnel-exec",
		sh("main", "exec sleep 1000"),
		sh("ticker", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"))
	e := startExecEdge(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := "/exec/default/tunnel-exec/main?"

	t.Run("stdin to stdout", func(t *testing.T) {
		var out bytes.Buffer
		err := e.run(ctx, base+"input=1&output=1&"+execQuery("cat"),
			remotecommand.StreamOptions{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out})
		if err != nil || out.String() != "hello\nworld\n" {
			t.Errorf("exec cat = %q, %v, want hello world and no error", out.String(), err)
		}
	})

	t.Run("path with uid", func(t *testing.T) {
		var out bytes.Buffer
		err := e.run(ctx, "/exec/default/tunnel-exec/uid-tunnel-exec/main?output=1&"+execQuery("echo", "uid"), remotecommand.StreamOptions{Stdout: &out})
		if err != nil || out.String() != "uid\n" {
			t.Errorf("exec with the pod's uid in the path = %q, %v, want uid", out.String(), err)
		}
	})

	t.Run("stdout and stderr", func(t *testing.T) {
		var out, errb bytes.Buffer
		err := e.run(ctx, base+"output=1&error=1&"+execQuery("sh", "-c", "echo out; echo err >&2"),
			remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
		if err != nil || out.String() != "out\n" || errb.String() != "err\n" {
			t.Errorf("exec = stdout %q, stderr %q, %v; want out, err, no error", out.String(), errb.String(), err)
		}
	})

	t.Run("exit code", func(t *testing.T) {
		var out bytes.Buffer
		err := e.run(ctx, base+"output=1&"+execQuery("sh", "-c", "echo bye; exit 3"), remotecommand.StreamOptions{Stdout: &out})
		var ce utilexec.CodeExitError
		if !errors.As(err, &ce) || ce.Code != 3 || out.String() != "bye\n" {
			t.Errorf("exec exit 3 = %q, %v, want bye and exit code 3 (NonZeroExitCode with cause ExitCode \"3\")", out.String(), err)
		}
	})

	t.Run("v3 and v2 protocols", func(t *testing.T) {
		for _, proto := range []string{"v3.channel.k8s.io", "v2.channel.k8s.io"} {
			var out bytes.Buffer
			err := e.run(ctx, base+"output=1&"+execQuery("echo", "two"), remotecommand.StreamOptions{Stdout: &out}, proto)
			if err != nil || out.String() != "two\n" {
				t.Errorf("exec over %s = %q, %v, want two", proto, out.String(), err)
			}
			// These write the failure as text on the error stream.
			err = e.run(ctx, base+"output=1&"+execQuery("sh", "-c", "exit 3"), remotecommand.StreamOptions{Stdout: io.Discard}, proto)
			if err == nil || !strings.Contains(err.Error(), "non-zero exit code: error executing command [sh -c exit 3], exit code 3") {
				t.Errorf("exec exit 3 over %s = %v, want the exit code as text", proto, err)
			}
		}
	})

	t.Run("unknown command", func(t *testing.T) {
		err := e.run(ctx, base+"output=1&"+execQuery("/no/such/thing"), remotecommand.StreamOptions{Stdout: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
			t.Errorf("exec of a missing binary = %v, want runc's error", err)
		}
	})

	t.Run("killed when the client goes away", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- e.run(cctx, base+"output=1&"+execQuery("sh", "-c", "echo started; exec sleep 999"), remotecommand.StreamOptions{Stdout: out})
		}()
		for !strings.Contains(out.String(), "started") {
			select {
			case err := <-done:
				t.Fatalf("exec ended early: %v, %q", err, out.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		ccancel()
		<-done
		for i := 0; ; i++ {
			var ps bytes.Buffer
			if err := e.run(ctx, base+"output=1&"+execQuery("ps"), remotecommand.StreamOptions{Stdout: &ps}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ps.String(), "sleep 999") {
				break
			}
			if i == 100 {
				t.Fatalf("the command still runs after the client went away:\n%s", ps.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("tty with resize", func(t *testing.T) {
		sizes := &sizeQueue{c: make(chan remotecommand.TerminalSize, 2)}
		sizes.c <- remotecommand.TerminalSize{Width: 100, Height: 30}
		stdinR, stdinW := io.Pipe()
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- e.run(ctx, base+"input=1&output=1&tty=1&"+execQuery("sh"),
				remotecommand.StreamOptions{Stdin: stdinR, Stdout: out, Tty: true, TerminalSizeQueue: sizes})
		}()
		waitSize := func(want string) {
			t.Helper()
			// Resizes and input travel on different streams: ask until
			// the terminal shows the size (a bounded wait for an event).
			re := regexp.MustCompile(`(?m)^` + want + `\r?$`)
			for i := 0; !re.MatchString(out.String()); i++ {
				if i == 200 || ctx.Err() != nil {
					t.Fatalf("tty output %q never showed size %q", out.String(), want)
				}
				io.WriteString(stdinW, "stty size\n")
				time.Sleep(50 * time.Millisecond)
			}
		}
		waitSize("30 100")
		sizes.c <- remotecommand.TerminalSize{Width: 120, Height: 50}
		waitSize("50 120")
		io.WriteString(stdinW, "exit 4\n")
		var ce utilexec.CodeExitError
		if err := <-done; !errors.As(err, &ce) || ce.Code != 4 {
			t.Errorf("tty sh exit 4 = %v, want exit code 4", err)
		}
		stdinW.Close()
		close(sizes.c)
	})

	t.Run("attach", func(t *testing.T) {
		actx, acancel := context.WithCancel(ctx)
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- e.run(actx, "/attach/default/tunnel-exec/ticker?output=1&error=1", remotecommand.StreamOptions{Stdout: out, Stderr: io.Discard})
		}()
		for strings.Count(out.String(), "tick") < 3 {
			select {
			case err := <-done:
				t.Fatalf("attach ended: %v with %q", err, out.String())
			case <-ctx.Done():
				t.Fatalf("attach output %q, want ticks", out.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		acancel()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("attach did not end after the client went away")
		}
	})

	t.Run("attach with stdin", func(t *testing.T) {
		c := sh("reader", "while read l; do echo got:$l; done")
		c.Stdin = true
		p := testPod("tunnel-attach-in", c)
		e.h.send(bus.OpInsert, bus.KindPod, "default", "tunnel-attach-in", p)
		e.h.waitStatus("tunnel-attach-in", 2*time.Minute, running("reader"))
		// Attach after attach reaches it, and each sees the answer to its
		// own input however soon the input comes: the output is followed
		// before the input goes in (it once was not, and one attach in a
		// few dozen on a loaded machine saw nothing).
		for i := range 40 {
			word := "w" + strconv.Itoa(i)
			actx, acancel := context.WithCancel(ctx)
			in, inw := io.Pipe()
			out := &syncBuffer{}
			done := make(chan error, 1)
			go func() {
				done <- e.run(actx, "/attach/default/tunnel-attach-in/reader?input=1&output=1", remotecommand.StreamOptions{Stdin: in, Stdout: out})
			}()
			go func() { _, _ = inw.Write([]byte(word + "\n")) }()
			for !strings.Contains(out.String(), "got:"+word) {
				select {
				case err := <-done:
					t.Fatalf("attach %d ended: %v with %q", i, err, out.String())
				case <-ctx.Done():
					t.Fatalf("attach %d output %q, want got:%s", i, out.String(), word)
				case <-time.After(20 * time.Millisecond):
				}
			}
			acancel()
			inw.Close()
			<-done
		}
	})

	t.Run("attach ends with the container", func(t *testing.T) {
		p := testPod("tunnel-attach-exit", sh("once", "sleep 2; echo late; sleep 1"))
		p.Spec.RestartPolicy = "Never"
		e.h.send(bus.OpInsert, bus.KindPod, "default", "tunnel-attach-exit", p)
		e.h.waitStatus("tunnel-attach-exit", 2*time.Minute, running("once"))
		var out bytes.Buffer
		err := e.run(ctx, "/attach/default/tunnel-attach-exit/once?output=1", remotecommand.StreamOptions{Stdout: &out})
		if err != nil || out.String() != "late\n" {
			t.Errorf("attach until the container exits = %q, %v, want \"late\\n\" and Success", out.String(), err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		stopped := testPod("tunnel-stopped", sh("done", "true"))
		stopped.Spec.RestartPolicy = "Never"
		e.h.send(bus.OpInsert, bus.KindPod, "default", "tunnel-stopped", stopped)
		e.h.waitStatus("tunnel-stopped", 2*time.Minute, func(s PodStatus) bool {
			return len(s.ContainerStatuses) == 1 && s.ContainerStatuses[0].State.Terminated != nil
		})
		tests := []struct {
			name, path, want string
		}{
			{"unknown pod", "/exec/default/nope/main?output=1&" + execQuery("ls"), "pod does not exist"},
			{"unknown container", "/exec/default/tunnel-exec/nope?output=1&" + execQuery("ls"), `container not found ("nope")`},
			{"attach unknown pod", "/attach/other/tunnel-exec/main?output=1", "pod does not exist"},
			{"attach unknown container", "/attach/default/tunnel-exec/nope?output=1", "container nope not found in pod tunnel-exec_default"},
			{"uid mismatch", "/exec/default/tunnel-exec/other-uid/main?output=1&" + execQuery("ls"), "pod does not exist"},
			{"stopped container", "/exec/default/tunnel-stopped/done?output=1&" + execQuery("ls"), `container not found ("done")`},
			{"no stream", "/exec/default/tunnel-exec/main?" + execQuery("ls"), "at least 1 of stdin, stdout, stderr"},
			{"no command", "/exec/default/tunnel-exec/main?output=1", "command is required"},
		}
		for _, tt := range tests {
			err := e.run(ctx, tt.path, remotecommand.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want one with %q", tt.name, err, tt.want)
			}
		}
		// Scratch directories of every exec are gone.
		if m, _ := filepath.Glob(filepath.Join(PodsDir(e.h.cfg.DataDir), "*", "exec-*")); len(m) > 0 {
			t.Errorf("exec scratch left behind: %v", m)
		}
		// The raw answer through the tunnel: the kubelet's 404 and then
		// RemoveConnect, so the API server's request ends.
		r, err := e.tun.Open(stream.TypeExec, "/exec/default/nope/main?output=1&command=ls", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadAll(ctx)
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 404 Not Found\r\n") || !strings.HasSuffix(string(got), "\r\n\r\npod does not exist\n") {
			t.Errorf("raw exec of an unknown pod = %q, %v, want a 404 with \"pod does not exist\" and RemoveConnect", got, err)
		}
	})
}

// sizeQueue is a remotecommand.TerminalSizeQueue fed by the test.
type sizeQueue struct {
	c chan remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q.c
	if !ok {
		return nil
	}
	return &s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
