package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"edgenode/pod/podtest"
)

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testImages(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Config{Dir: filepath.Join(t.TempDir(), "images"), Platform: "linux/" + podtest.BusyboxArch()}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImportArchives(t *testing.T) {
	img := podtest.BusyboxImage(t, "sh")
	wantID, _ := img.ConfigName()
	dir := t.TempDir()
	tests := []struct {
		name  string
		write func(string, string, v1.Image) error
		ref   string
	}{
		{"docker save", podtest.WriteDockerSave, "example.org/app:1"},
		{"oci archive", podtest.WriteOCIArchive, "busybox:test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testImages(t)
			f := filepath.Join(dir, tt.name+".tar")
			if err := tt.write(f, tt.ref, img); err != nil {
				t.Fatal(err)
			}
			got, err := s.Import(context.Background(), f, false)
			if err != nil {
				t.Fatalf("Import() = %v", err)
			}
			if len(got) != 1 || got[0].ID != wantID.String() {
				t.Fatalf("Import() = %+v, want one image %s", got, wantID)
			}
			li, ok := s.Lookup(tt.ref)
			if !ok || li.ID != wantID.String() {
				t.Fatalf("Lookup(%q) = %v, %v", tt.ref, li.ID, ok)
			}
			if fi, err := os.Lstat(filepath.Join(s.Rootfs(li.ID), "bin/sh")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("rootfs bin/sh = %v, %v, want a symlink", fi, err)
			}
			if _, err := os.Stat(filepath.Join(s.Rootfs(li.ID), "bin/busybox")); err != nil {
				t.Errorf("rootfs bin/busybox: %v", err)
			}
			// Reopen: the index survives.
			s2, err := Open(Config{Dir: s.dir, Platform: "linux/" + podtest.BusyboxArch()}, testLog())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s2.Lookup(tt.ref); !ok {
				t.Errorf("after reopen Lookup(%q) = false", tt.ref)
			}
		})
	}
}

func TestImportBad(t *testing.T) {
	s := testImages(t)
	f := filepath.Join(t.TempDir(), "junk.tar")
	os.WriteFile(f, []byte("this is not a tarball at all, not even close...."), 0o600)
	if _, err := s.Import(context.Background(), f, false); !errors.Is(err, ErrBadImage) {
		t.Errorf("Import(junk) = %v, want ErrBadImage", err)
	}
	img := podtest.BusyboxImage(t)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = "s390x"
	other, _ := mutate.ConfigFile(img, cf)
	f2 := filepath.Join(t.TempDir(), "other.tar")
	if err := podtest.WriteDockerSave(f2, "other:1", other); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(context.Background(), f2, false); !errors.Is(err, ErrBadImage) {
		t.Errorf("Import(s390x image) = %v, want ErrBadImage", err)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("List() has %d images after failed imports, want 0", n)
	}
}

func TestPull(t *testing.T) {
	img := podtest.BusyboxImage(t, "sh")
	reg := podtest.NewRegistry()
	defer reg.Close()
	ref, err := reg.Push("lib/bb:1", img)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture, cf.Variant = "arm", "v6"
	armImg, _ := mutate.ConfigFile(img, cf)
	idxRef, err := reg.PushIndex("lib/multi:1", map[string]v1.Image{
		"linux/" + podtest.BusyboxArch(): img,
		"linux/arm/v6":                   armImg,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := testImages(t)
	got, err := s.Pull(context.Background(), ref, []authn.AuthConfig{{Username: "u", Password: "p"}})
	if err != nil {
		t.Fatalf("Pull(%s) = %v", ref, err)
	}
	id, _ := img.ConfigName()
	if got.ID != id.String() {
		t.Errorf("Pull() ID = %s, want %s", got.ID, id)
	}
	// The multi-arch index resolves to the entry for the store's platform.
	arm, err := Open(Config{Dir: filepath.Join(t.TempDir(), "arm"), Platform: "linux/arm/v6"}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	ga, err := arm.Pull(context.Background(), idxRef, nil)
	if err != nil {
		t.Fatalf("Pull(index) = %v", err)
	}
	armID, _ := armImg.ConfigName()
	if ga.ID != armID.String() || ga.Platform != "linux/arm/v6" {
		t.Errorf("Pull(index) = %s %s, want %s linux/arm/v6", ga.ID, ga.Platform, armID)
	}
	if _, err := s.Pull(context.Background(), reg.Host+"/lib/none:1", nil); err == nil {
		t.Errorf("Pull(missing) = nil error")
	}
}

type tarEntry struct {
	name, link string
	typ        byte
	body       string
}

func mkTar(t testing.TB, ents []tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

var unpackTests = []struct {
	name    string
	layers  [][]tarEntry
	exist   []string
	absent  []string
	wantErr error
}{
	{"files and dirs", [][]tarEntry{{{name: "a/", typ: tar.TypeDir}, {name: "a/b", typ: tar.TypeReg, body: "x"}}}, []string{"a/b"}, nil, nil},
	{"dotdot", [][]tarEntry{{{name: "../evil", typ: tar.TypeReg, body: "x"}}}, nil, nil, ErrUnsafePath},
	{"dotdot inside", [][]tarEntry{{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}}, nil, nil, ErrUnsafePath},
	{"absolute name stays inside", [][]tarEntry{{{name: "/abs", typ: tar.TypeReg, body: "x"}}}, []string{"abs"}, nil, nil},
	{"symlink escape", [][]tarEntry{{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/escaped", typ: tar.TypeReg, body: "x"}}}, []string{"escaped"}, nil, nil},
	{"relative symlink escape", [][]tarEntry{{{name: "d/", typ: tar.TypeDir}, {name: "d/l", typ: tar.TypeSymlink, link: "../../../.."}, {name: "d/l/escaped2", typ: tar.TypeReg, body: "x"}}}, []string{"escaped2"}, nil, nil},
	{"hardlink outside", [][]tarEntry{{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}}, nil, nil, ErrUnsafePath},
	{"whiteout", [][]tarEntry{
		{{name: "a/", typ: tar.TypeDir}, {name: "a/x", typ: tar.TypeReg}, {name: "a/y", typ: tar.TypeReg}},
		{{name: "a/.wh.x", typ: tar.TypeReg}},
	}, []string{"a/y"}, []string{"a/x", "a/.wh.x"}, nil},
	{"opaque", [][]tarEntry{
		{{name: "a/", typ: tar.TypeDir}, {name: "a/old", typ: tar.TypeReg}},
		{{name: "a/new", typ: tar.TypeReg}, {name: "a/.wh..wh..opq", typ: tar.TypeReg}},
	}, []string{"a/new"}, []string{"a/old", "a/.wh..wh..opq"}, nil},
	{"file replaced by dir", [][]tarEntry{
		{{name: "a", typ: tar.TypeReg}},
		{{name: "a/", typ: tar.TypeDir}, {name: "a/b", typ: tar.TypeReg}},
	}, []string{"a/b"}, nil, nil},
}

func TestUnpackLayer(t *testing.T) {
	for _, tt := range unpackTests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			root := filepath.Join(top, "r", "root")
			os.MkdirAll(root, 0o755)
			var err error
			for _, l := range tt.layers {
				if err = unpackLayer(root, bytes.NewReader(mkTar(t, l))); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("unpackLayer() = %v, want %v", err, tt.wantErr)
			}
			for _, p := range tt.exist {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("%s missing: %v", p, err)
				}
			}
			for _, p := range tt.absent {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s exists, want absent", p)
				}
			}
			// Nothing may appear beside root.
			ents, _ := os.ReadDir(filepath.Join(top, "r"))
			if len(ents) != 1 {
				t.Errorf("unpack wrote outside root: %v", ents)
			}
			if _, err := os.Stat(filepath.Join(top, "evil")); err == nil {
				t.Errorf("unpack wrote %s", filepath.Join(top, "evil"))
			}
		})
	}
}

func FuzzUnpackLayer(f *testing.F) {
	for _, tt := range unpackTests {
		for _, l := range tt.layers {
			f.Add(mkTar(f, l))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		top := t.TempDir()
		root := filepath.Join(top, "root")
		os.MkdirAll(root, 0o755)
		_ = unpackLayer(root, bytes.NewReader(b))
		ents, _ := os.ReadDir(top)
		if len(ents) != 1 {
			t.Fatalf("unpack wrote outside root: %v", ents)
		}
	})
}

func TestGCKeepsUsedAndReadOnly(t *testing.T) {
	s := testImages(t)
	dir := t.TempDir()
	var ids []string
	for i, ro := range []bool{false, false, true} {
		img := podtest.BusyboxImage(t, "echo", string(rune('a'+i)))
		f := filepath.Join(dir, "i.tar")
		podtest.WriteDockerSave(f, "img:"+string(rune('a'+i)), img)
		got, err := s.Import(context.Background(), f, ro)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got[0].ID)
	}
	// Ask for more free space than any disk has: everything removable goes.
	removed := s.GC(map[string]bool{ids[0]: true}, 1<<62)
	if len(removed) != 1 || removed[0] != ids[1] {
		t.Fatalf("GC() = %v, want [%s]", removed, ids[1])
	}
	if _, err := os.Stat(s.Rootfs(ids[1])); err == nil {
		t.Errorf("rootfs of removed image still there")
	}
	if n := len(s.List()); n != 2 {
		t.Errorf("List() = %d images, want 2", n)
	}
}

func TestImportDirOnce(t *testing.T) {
	s := testImages(t)
	dir := t.TempDir()
	if err := podtest.WriteOCIArchive(filepath.Join(dir, "a.tar"), "ro:1", podtest.BusyboxImage(t)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o600)
	if n := s.ImportDir(context.Background(), dir); n != 1 {
		t.Fatalf("ImportDir() = %d, want 1", n)
	}
	if n := s.ImportDir(context.Background(), dir); n != 0 {
		t.Errorf("second ImportDir() = %d, want 0 (already imported)", n)
	}
	img, ok := s.Lookup("ro:1")
	if !ok || !img.ReadOnly {
		t.Errorf("Lookup(ro:1) = %+v, %v, want a read-only image", img, ok)
	}
	if got := s.GC(nil, 1<<62); len(got) != 0 {
		t.Errorf("GC() removed %v, want read-only images kept", got)
	}
}

func TestPullBearerRealm(t *testing.T) {
	img := podtest.BusyboxImage(t)
	reg := podtest.NewTokenRegistry("edge", "pw")
	defer reg.Close()
	ref, err := reg.Push("hub/app:1", img)
	if err != nil {
		t.Fatal(err)
	}
	s := testImages(t)
	if _, err := s.Pull(context.Background(), ref, nil); err == nil {
		t.Errorf("Pull() without credentials = nil error, want a refusal")
	}
	got, err := s.Pull(context.Background(), ref, []authn.AuthConfig{{Username: "edge", Password: "pw"}})
	if err != nil {
		t.Fatalf("Pull() through the token realm = %v", err)
	}
	if id, _ := img.ConfigName(); got.ID != id.String() {
		t.Errorf("Pull() = %s, want %s", got.ID, id)
	}
}
