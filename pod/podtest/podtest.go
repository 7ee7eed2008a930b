// Package podtest builds small busybox container images for tests of the
// pod package and of anything that runs pods: a layer made from the host's
// static busybox (Debian's busybox-static), saved as an OCI image archive or
// a `docker save` tarball, or pushed to an in-process registry.
package podtest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPaths are where tests look for a static busybox.
var BusyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// ErrNoBusybox: no static busybox on this host.
var ErrNoBusybox = errors.New("podtest: no static busybox (apt-get install busybox-static)")

// Busybox finds the host's busybox binary.
func Busybox() (string, error) {
	for _, p := range BusyboxPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", ErrNoBusybox
}

// Layer returns an uncompressed layer tarball with busybox at /bin/busybox,
// a symlink per applet in /bin, /etc/passwd and /etc/group with root and
// nobody, and the usual empty mount points. extra adds files (path ->
// content).
func Layer(extra map[string]string) ([]byte, error) {
	bb, err := Busybox()
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, fmt.Errorf("podtest: %w", err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("podtest: busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(1700000000, 0)
	dir := func(n string) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755, ModTime: now})
	}
	file := func(n string, b []byte, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(b)), ModTime: now})
		_, _ = tw.Write(b)
	}
	for _, d := range []string{"bin/", "etc/", "proc/", "sys/", "dev/", "tmp/", "root/", "var/", "run/"} {
		dir(d)
	}
	file("bin/busybox", bin, 0o755)
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	file("etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	for n, c := range extra {
		if d := filepath.Dir(n); d != "." {
			dir(d + "/")
		}
		file(n, []byte(c), 0o755)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image returns a busybox image for this host's architecture with cmd as
// its default command.
func Image(cmd []string, extra map[string]string) (v1.Image, error) {
	lb, err := Layer(extra)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(lb)), nil })
	if err != nil {
		return nil, fmt.Errorf("podtest: layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, fmt.Errorf("podtest: image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", BusyboxArch()
	cf.Config.Cmd = cmd
	cf.Config.Env = []string{"PATH=/bin"}
	return mutate.ConfigFile(img, cf)
}

// BusyboxArch is the GOARCH of the host's busybox binary, read from its ELF
// header; runtime.GOARCH when unknown.
func BusyboxArch() string {
	bb, err := Busybox()
	if err != nil {
		return runtime.GOARCH
	}
	f, err := os.Open(bb)
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	h := make([]byte, 20)
	if _, err := io.ReadFull(f, h); err != nil {
		return runtime.GOARCH
	}
	switch uint16(h[18]) | uint16(h[19])<<8 {
	case 0x3e:
		return "amd64"
	case 0xb7:
		return "arm64"
	case 0x28:
		return "arm"
	case 0x03:
		return "386"
	}
	return runtime.GOARCH
}

// WriteDockerSave writes img as a `docker save` tarball tagged ref.
func WriteDockerSave(file, ref string, img v1.Image) error {
	t, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("podtest: %w", err)
	}
	return tarball.WriteToFile(file, t, img)
}

// WriteOCIArchive writes img as an OCI image archive (a tar of an OCI image
// layout) whose index names it ref.
func WriteOCIArchive(file, ref string, img v1.Image) error {
	dir, err := os.MkdirTemp("", "podtest-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("podtest: layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return fmt.Errorf("podtest: layout: %w", err)
	}
	return tarDir(dir, file)
}

func tarDir(dir, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Registry is an in-process OCI registry on 127.0.0.1.
type Registry struct {
	srv  *httptest.Server
	auth authn.Authenticator
	// Host is host:port of the registry.
	Host string
}

// NewRegistry starts a registry; Close stops it.
func NewRegistry() *Registry {
	srv := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	return &Registry{srv: srv, Host: strings.TrimPrefix(srv.URL, "http://")}
}

// NewAuthRegistry starts a registry that wants HTTP basic auth user:pass
// for every request (Push uses it too).
func NewAuthRegistry(user, pass string) *Registry {
	reg := registry.New(registry.Logger(nopLogger()))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	return &Registry{srv: srv, Host: strings.TrimPrefix(srv.URL, "http://"), auth: &authn.Basic{Username: user, Password: pass}}
}

// NewTokenRegistry starts a registry behind a bearer-token realm, as
// Docker Hub does: requests without a token get 401 with
// WWW-Authenticate: Bearer realm=<this server>/token; the token endpoint
// hands out a token for basic auth user:pass.
func NewTokenRegistry(user, pass string) *Registry {
	reg := registry.New(registry.Logger(nopLogger()))
	const token = "tok-edge"
	var srv *httptest.Server
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, token, token)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test-registry"`, srv.URL))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	})
	srv = httptest.NewServer(h)
	return &Registry{srv: srv, Host: strings.TrimPrefix(srv.URL, "http://"), auth: &authn.Basic{Username: user, Password: pass}}
}

func (r *Registry) opts() []remote.Option {
	if r.auth == nil {
		return nil
	}
	return []remote.Option{remote.WithAuth(r.auth)}
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Push uploads img as host/repo:tag and returns the full reference.
func (r *Registry) Push(repo string, img v1.Image) (string, error) {
	ref := r.Host + "/" + repo
	t, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if err := remote.Write(t, img, r.opts()...); err != nil {
		return "", fmt.Errorf("podtest: push: %w", err)
	}
	return ref, nil
}

// PushIndex uploads a multi-platform index of imgs (platform -> image).
func (r *Registry) PushIndex(repo string, imgs map[string]v1.Image) (string, error) {
	idx := mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json")
	for p, img := range imgs {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return "", err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: pl}})
	}
	ref := r.Host + "/" + repo
	t, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(t, idx, r.opts()...); err != nil {
		return "", fmt.Errorf("podtest: push index: %w", err)
	}
	return ref, nil
}

// BusyboxImage is Image(cmd, nil) for a test: it skips t when the host has
// no static busybox and fails it on any other error.
func BusyboxImage(t testing.TB, cmd ...string) v1.Image {
	t.Helper()
	img, err := Image(cmd, nil)
	if errors.Is(err, ErrNoBusybox) {
		t.Skip("busybox-static missing: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return img
}
