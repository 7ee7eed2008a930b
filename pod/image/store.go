package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"edgenode/internal/durable"
)

// Image is one image in the store: where its names point, what it runs and
// where its root filesystem is unpacked.
type Image struct {
	// ID is the digest of the image config ("sha256:..."), the identity of
	// an image in Docker and in pod status imageID.
	ID       string    `json:"id"`
	Refs     []string  `json:"refs"`
	Digest   string    `json:"digest,omitempty"` // manifest digest, when known
	Platform string    `json:"platform"`
	Config   RunConfig `json:"config"`
	Size     int64     `json:"size"`
	// ReadOnly images come from the read-only images folder and are never
	// removed by garbage collection.
	ReadOnly bool      `json:"readOnly,omitempty"`
	LastUsed time.Time `json:"lastUsed"`
}

// RunConfig is the part of the OCI image config a container starts from.
type RunConfig struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// Store is the content-addressed image store under <data-dir>/images:
// blobs/sha256/<hex> holds manifests and configs, rootfs/<hex> the
// flattened root filesystem of each image (layers applied in order with
// whiteouts), index.json the names. Layer blobs are not kept once unpacked:
// on a board the disk is the scarce thing. Safe for concurrent use.
type Store struct {
	dir      string
	platform v1.Platform
	log      *slog.Logger
	insecure bool

	mu      sync.Mutex
	index   imageIndex
	indexAt time.Time            // mtime of index.json when read
	pull    map[string]*pullCall // in-flight pulls by ref
}

type imageIndex struct {
	Images map[string]*Image `json:"images"` // by ID
	// Archives of the read-only folder already imported: path -> size and
	// mtime, so a boot does not unpack them again.
	Archives map[string]string `json:"archives,omitempty"`
}

type pullCall struct {
	done chan struct{}
	img  *Image
	err  error
}

// Config configures the image store.
type Config struct {
	// Dir is the store's directory (<data-dir>/images).
	Dir string
	// Platform the images must be for, "os/arch[/variant]"; default the
	// platform edgenode was built for (linux/arm/v6 for GOARM=6).
	Platform string
	// InsecureRegistries lets pulls use plain http for every registry; a
	// registry on localhost or 127.0.0.1 uses http anyway.
	Insecure bool
}

// HostPlatform is the image platform of this build: GOOS/GOARCH plus the
// variant (v5..v7 from GOARM, v8 on arm64).
func HostPlatform() string {
	p := runtime.GOOS + "/" + runtime.GOARCH
	switch runtime.GOARCH {
	case "arm":
		v := "7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					v = s.Value[:1]
				}
			}
		}
		p += "/v" + v
	case "arm64":
		p += "/v8"
	}
	return p
}

// Open opens (creating) the store.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if cfg.Platform == "" {
		cfg.Platform = HostPlatform()
	}
	pl, err := v1.ParsePlatform(cfg.Platform)
	if err != nil {
		return nil, fmt.Errorf("image: platform %q: %w", cfg.Platform, err)
	}
	s := &Store{dir: cfg.Dir, platform: *pl, log: log, insecure: cfg.Insecure, pull: map[string]*pullCall{}}
	for _, d := range []string{"blobs/sha256", "rootfs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("image: images: %w", err)
		}
	}
	// Leftovers of an interrupted import or unpack.
	_ = os.RemoveAll(filepath.Join(s.dir, "tmp"))
	_ = os.MkdirAll(filepath.Join(s.dir, "tmp"), 0o700)
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// reloadLocked reads index.json again if another process (edgenode image
// import beside a running node) changed it since it was read.
func (s *Store) reloadLocked() error {
	p := filepath.Join(s.dir, "index.json")
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		if s.index.Images == nil {
			s.index.Images = map[string]*Image{}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("image: images: %w", err)
	}
	if fi.ModTime().Equal(s.indexAt) && s.index.Images != nil {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("image: images: %w", err)
	}
	var idx imageIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("image: images: index.json: %w", err)
	}
	if idx.Images == nil {
		idx.Images = map[string]*Image{}
	}
	s.index, s.indexAt = idx, fi.ModTime()
	return nil
}

// lock takes s.mu and the store's file lock, which serializes changes of
// index.json between processes, and rereads the index.
func (s *Store) lock() (unlock func(), err error) {
	s.mu.Lock()
	f, err := lockFile(filepath.Join(s.dir, "lock"))
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("image: images: lock: %w", err)
	}
	if err := s.reloadLocked(); err != nil {
		f.Close()
		s.mu.Unlock()
		return nil, err
	}
	return func() { f.Close(); s.mu.Unlock() }, nil
}

// NormalizeRef returns the canonical form of an image reference
// ("busybox" -> "index.docker.io/library/busybox:latest").
func NormalizeRef(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("%w: reference %q: %v", ErrBadImage, ref, err)
	}
	return r.Name(), nil
}

// Lookup returns the image a reference names, if present.
func (s *Store) Lookup(ref string) (Image, bool) {
	n, err := NormalizeRef(ref)
	if err != nil {
		return Image{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.reloadLocked()
	for _, img := range s.index.Images {
		for _, r := range img.Refs {
			if r == n {
				return *img, true
			}
		}
		if img.ID == ref || img.Digest != "" && strings.HasSuffix(n, "@"+img.Digest) {
			return *img, true
		}
	}
	return Image{}, false
}

// List returns every image, sorted by first name.
func (s *Store) List() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.reloadLocked()
	out := make([]Image, 0, len(s.index.Images))
	for _, img := range s.index.Images {
		out = append(out, *img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Rootfs returns the directory holding the unpacked root filesystem of id.
func (s *Store) Rootfs(id string) string {
	return filepath.Join(s.dir, "rootfs", strings.TrimPrefix(id, "sha256:"))
}

// Touch records that a container started from id now. The index is
// written at most once an hour per image: GC needs only a rough order.
func (s *Store) Touch(id string) {
	s.mu.Lock()
	img := s.index.Images[id]
	fresh := img != nil && time.Since(img.LastUsed) < time.Hour
	s.mu.Unlock()
	if img == nil || fresh {
		return
	}
	unlock, err := s.lock()
	if err != nil {
		return
	}
	defer unlock()
	if img := s.index.Images[id]; img != nil {
		img.LastUsed = time.Now().UTC().Truncate(time.Second)
		_ = s.saveLocked()
	}
}

// Pull fetches ref from its registry for the store's platform, picking the
// matching entry of a multi-arch index, and unpacks it. Bearer-token realms
// are followed; auths are tried in order, then anonymous. Concurrent pulls
// of one ref share the work.
func (s *Store) Pull(ctx context.Context, ref string, auths []authn.AuthConfig) (Image, error) {
	n, err := NormalizeRef(ref)
	if err != nil {
		return Image{}, err
	}
	s.mu.Lock()
	if c, ok := s.pull[n]; ok {
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return Image{}, ctx.Err()
		}
		if c.err != nil {
			return Image{}, c.err
		}
		return *c.img, nil
	}
	c := &pullCall{done: make(chan struct{})}
	s.pull[n] = c
	s.mu.Unlock()
	c.img, c.err = s.pullOnce(ctx, n, auths)
	s.mu.Lock()
	delete(s.pull, n)
	s.mu.Unlock()
	close(c.done)
	if c.err != nil {
		return Image{}, c.err
	}
	return *c.img, nil
}

func (s *Store) pullOnce(ctx context.Context, ref string, auths []authn.AuthConfig) (*Image, error) {
	var opts []name.Option
	if s.insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: reference %q: %v", ErrBadImage, ref, err)
	}
	cands := make([]authn.Authenticator, 0, len(auths)+1)
	for _, a := range auths {
		cands = append(cands, authn.FromConfig(a))
	}
	cands = append(cands, authn.Anonymous)
	var lastErr error
	for _, a := range cands {
		img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuth(a), remote.WithPlatform(s.platform))
		if err != nil {
			lastErr = err
			continue
		}
		dig, _ := img.Digest()
		return s.add(ctx, img, []string{ref}, dig.String(), false)
	}
	return nil, fmt.Errorf("image: pull %s: %w", ref, lastErr)
}

// add unpacks img (if its ID is new) and records refs for it.
func (s *Store) add(ctx context.Context, img v1.Image, refs []string, digest string, readOnly bool) (*Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrBadImage, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("%w: config digest: %v", ErrBadImage, err)
	}
	pl := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if !platformFits(pl, s.platform) {
		return nil, fmt.Errorf("%w: %s is for %s, this node runs %s", ErrBadImage, strings.Join(refs, ","), pl.String(), s.platform.String())
	}
	s.mu.Lock()
	have := s.index.Images[id.String()]
	s.mu.Unlock()
	var size int64
	if have == nil {
		if size, err = s.unpack(ctx, img, id.Hex); err != nil {
			return nil, err
		}
		if raw, err := img.RawConfigFile(); err == nil {
			_ = durable.WriteFile(filepath.Join(s.dir, "blobs/sha256", id.Hex), raw, 0o600)
		}
		if raw, err := img.RawManifest(); err == nil && strings.HasPrefix(digest, "sha256:") {
			_ = durable.WriteFile(filepath.Join(s.dir, "blobs/sha256", strings.TrimPrefix(digest, "sha256:")), raw, 0o600)
		}
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec := s.index.Images[id.String()]
	if rec == nil {
		rec = &Image{
			ID: id.String(), Digest: digest, Platform: pl.String(), Size: size,
			Config: RunConfig{
				Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env,
				WorkingDir: cf.Config.WorkingDir, User: cf.Config.User,
			},
		}
		s.index.Images[rec.ID] = rec
	}
	rec.ReadOnly = rec.ReadOnly || readOnly
	if rec.Digest == "" {
		rec.Digest = digest
	}
	for _, r := range refs {
		// A name moves to the newest image that claims it.
		for _, other := range s.index.Images {
			other.Refs = without(other.Refs, r)
		}
		rec.Refs = append(rec.Refs, r)
	}
	rec.LastUsed = time.Now().UTC().Truncate(time.Second)
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	out := *rec
	return &out, nil
}

// unpack applies the layers into rootfs/<hex> through a temporary dir, so a
// crash never leaves a half-unpacked root filesystem under its final name.
func (s *Store) unpack(ctx context.Context, img v1.Image, hex string) (int64, error) {
	final := filepath.Join(s.dir, "rootfs", hex)
	if _, err := os.Stat(final); err == nil {
		return dirSize(final), nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "rootfs-")
	if err != nil {
		return 0, fmt.Errorf("image: unpack: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, fmt.Errorf("image: unpack: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, fmt.Errorf("%w: layers: %v", ErrBadImage, err)
	}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, fmt.Errorf("%w: layer %d: %v", ErrBadImage, i, err)
		}
		err = unpackLayer(tmp, rc)
		cerr := rc.Close() // verifies the digest of what was read
		if err != nil {
			return 0, fmt.Errorf("image: layer %d: %w", i, err)
		}
		if cerr != nil {
			return 0, fmt.Errorf("%w: layer %d: %v", ErrBadImage, i, cerr)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("image: unpack: %w", err)
	}
	return dirSize(final), nil
}

// Import reads a `docker save` tarball or an OCI image archive (a tar of an
// OCI image layout) and adds every image in it under its tagged names.
// readOnly marks images baked into a read-only folder, exempt from GC.
func (s *Store) Import(ctx context.Context, file string, readOnly bool) ([]Image, error) {
	kind, err := archiveKind(file)
	if err != nil {
		return nil, err
	}
	var out []Image
	switch kind {
	case "docker":
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadImage, file, err)
		}
		for _, d := range m {
			var refs []string
			for _, t := range d.RepoTags {
				if n, err := NormalizeRef(t); err == nil {
					refs = append(refs, n)
				}
			}
			var tag *name.Tag
			if len(d.RepoTags) > 0 {
				if t, err := name.NewTag(d.RepoTags[0]); err == nil {
					tag = &t
				}
			}
			if tag == nil && len(m) > 1 {
				continue // untagged image among several: nothing to name it by
			}
			img, err := tarball.ImageFromPath(file, tag)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBadImage, file, err)
			}
			rec, err := s.add(ctx, img, refs, "", readOnly)
			if err != nil {
				return nil, err
			}
			out = append(out, *rec)
		}
	case "oci":
		tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "oci-")
		if err != nil {
			return nil, fmt.Errorf("image: import: %w", err)
		}
		defer os.RemoveAll(tmp)
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("image: import: %w", err)
		}
		err = unpackLayer(tmp, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("image: import %s: %w", file, err)
		}
		out, err = s.importLayout(ctx, tmp, readOnly)
		if err != nil {
			return nil, fmt.Errorf("image: import %s: %w", file, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no image for %s", ErrBadImage, file, s.platform.String())
	}
	return out, nil
}

// importLayout adds the images of an OCI image layout directory: each entry
// of index.json named by org.opencontainers.image.ref.name (or containerd's
// io.containerd.image.name); an index entry resolves to this platform.
func (s *Store) importLayout(ctx context.Context, dir string, readOnly bool) ([]Image, error) {
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	var out []Image
	for _, d := range im.Manifests {
		var refs []string
		for _, key := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			if v := d.Annotations[key]; v != "" {
				if n, err := NormalizeRef(v); err == nil {
					refs = append(refs, n)
					break
				}
			}
		}
		var img v1.Image
		if d.MediaType.IsIndex() {
			child, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
			}
			img, err = pickPlatform(child, s.platform)
			if err != nil {
				return nil, err
			}
		} else {
			if img, err = ii.Image(d.Digest); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
			}
		}
		dig, _ := img.Digest()
		rec, err := s.add(ctx, img, refs, dig.String(), readOnly)
		if err != nil {
			if errors.Is(err, ErrBadImage) && len(im.Manifests) > 1 {
				s.log.Warn("image skipped", "refs", refs, "err", err)
				continue
			}
			return nil, err
		}
		out = append(out, *rec)
	}
	return out, nil
}

func pickPlatform(ii v1.ImageIndex, want v1.Platform) (v1.Image, error) {
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && platformFits(*d.Platform, want) {
			return ii.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%w: no entry for %s", ErrBadImage, want.String())
}

// platformFits: same OS and architecture; a variant, when both sides name
// one, must be at most the node's (an arm/v6 image runs on arm/v7).
func platformFits(img, node v1.Platform) bool {
	if img.OS != node.OS || img.Architecture != node.Architecture {
		return false
	}
	if img.Variant == "" || node.Variant == "" {
		return true
	}
	return img.Variant <= node.Variant
}

// archiveKind tells a docker-save tarball (manifest.json) from an OCI
// archive (oci-layout) by the names it holds.
func archiveKind(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("image: import: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	kind := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: %s: not a tar archive: %v", ErrBadImage, file, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "oci-layout":
			return "oci", nil
		case "manifest.json":
			kind = "docker"
		}
	}
	if kind == "" {
		return "", fmt.Errorf("%w: %s has neither oci-layout nor manifest.json", ErrBadImage, file)
	}
	return kind, nil
}

// ImportDir imports every *.tar file of dir as read-only images. A missing
// dir is fine. Errors of single files are logged and skipped.
func (s *Store) ImportDir(ctx context.Context, dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("images folder unreadable", "dir", dir, "err", err)
		}
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue
		}
		stamp := fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
		s.mu.Lock()
		_ = s.reloadLocked()
		done := s.index.Archives[p] == stamp
		s.mu.Unlock()
		if done {
			continue
		}
		imgs, err := s.Import(ctx, p, true)
		if err != nil {
			s.log.Warn("image import failed", "file", e.Name(), "err", err)
			continue
		}
		n += len(imgs)
		if unlock, err := s.lock(); err == nil {
			if s.index.Archives == nil {
				s.index.Archives = map[string]string{}
			}
			s.index.Archives[p] = stamp
			_ = s.saveLocked()
			unlock()
		}
	}
	return n
}

// Remove deletes an image and its root filesystem.
func (s *Store) Remove(id string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := s.index.Images[id]; !ok {
		return fmt.Errorf("%w: image %s", ErrNotFound, id)
	}
	delete(s.index.Images, id)
	if err := s.saveLocked(); err != nil {
		return err
	}
	hex := strings.TrimPrefix(id, "sha256:")
	_ = os.Remove(filepath.Join(s.dir, "blobs/sha256", hex))
	// Move aside first so a crash never leaves a half-deleted rootfs in place.
	gone := filepath.Join(s.dir, "tmp", "rm-"+hex)
	if err := os.Rename(s.Rootfs(id), gone); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image: remove image: %w", err)
	}
	return os.RemoveAll(gone)
}

// GC removes images no container uses, least recently used first, until
// the free space of the store's file system is at least lowFree bytes.
// Read-only images are kept. It returns the IDs removed.
func (s *Store) GC(inUse map[string]bool, lowFree uint64) []string {
	if free, err := diskFree(s.dir); err != nil || free >= lowFree {
		return nil
	}
	cands := s.List()
	sort.Slice(cands, func(i, j int) bool { return cands[i].LastUsed.Before(cands[j].LastUsed) })
	var removed []string
	for _, img := range cands {
		if img.ReadOnly || inUse[img.ID] {
			continue
		}
		if err := s.Remove(img.ID); err != nil {
			s.log.Warn("image gc", "image", img.ID, "err", err)
			continue
		}
		removed = append(removed, img.ID)
		if free, err := diskFree(s.dir); err == nil && free >= lowFree {
			break
		}
	}
	return removed
}

func (s *Store) saveLocked() error {
	b, err := json.MarshalIndent(&s.index, "", " ")
	if err != nil {
		return fmt.Errorf("image: images index: %w", err)
	}
	p := filepath.Join(s.dir, "index.json")
	if err := durable.WriteFile(p, b, 0o600); err != nil {
		return err
	}
	if fi, err := os.Stat(p); err == nil {
		s.indexAt = fi.ModTime()
	}
	return nil
}

func without(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
