package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Whiteout markers of the OCI image layer spec ("Whiteouts").
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// unpackLayer applies one uncompressed layer tarball on top of root. Every
// entry is confined to root: names are cleaned, and symlinks met on the way
// to an entry are resolved as if root were "/" (chroot semantics), so a
// layer cannot write through "../" or a planted symlink. Whiteouts delete
// what lower layers put there; an opaque marker empties its directory of
// lower-layer content. Device nodes are created only when running as root.
func unpackLayer(root string, r io.Reader) error {
	tr := tar.NewReader(r)
	created := map[string]bool{} // paths this layer wrote, kept by opaque dirs
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: layer: %v", ErrBadImage, err)
		}
		name, err := cleanEntry(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // the root itself
		}
		dir, base := path.Split(name)
		parent, err := resolveInRoot(root, dir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("image: unpack %s: %w", name, err)
		}
		if base == whiteoutOpaque {
			if err := emptyDir(parent, root, created); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			if err := os.RemoveAll(filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))); err != nil {
				return fmt.Errorf("image: whiteout %s: %w", name, err)
			}
			continue
		}
		target := filepath.Join(parent, base)
		created[target] = true
		if err := writeEntry(root, target, h, tr); err != nil {
			return fmt.Errorf("image: unpack %s: %w", name, err)
		}
	}
}

// cleanEntry turns a tar name into a clean relative path, or fails for a
// name that climbs out with "..".
func cleanEntry(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	c := path.Clean("/" + name)
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
		}
	}
	return strings.TrimPrefix(c, "/"), nil
}

// resolveInRoot returns the host path of rel inside root, following
// symlinks in rel with root as "/". At most 255 links are followed.
func resolveInRoot(root, rel string) (string, error) {
	parts := strings.Split(rel, "/")
	cur := "" // resolved, relative to root, clean
	links := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		if p == "" || p == "." {
			continue
		}
		if p == ".." {
			cur = strings.TrimPrefix(path.Dir("/"+cur), "/")
			continue
		}
		next := path.Join(cur, p)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next // missing (created later) or not a link
			continue
		}
		links++
		if links > 255 {
			return "", fmt.Errorf("%w: too many links in %q", ErrUnsafePath, rel)
		}
		dest, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("image: readlink: %w", err)
		}
		if path.IsAbs(dest) {
			cur = ""
		}
		parts = append(strings.Split(dest, "/"), parts...)
	}
	return filepath.Join(root, cur), nil
}

// emptyDir removes what lower layers left in dir, keeping what this layer
// created (an opaque marker may come after the layer's own entries).
func emptyDir(dir, root string, created map[string]bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("image: opaque %s: %w", dir, err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if created[p] {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("image: opaque %s: %w", dir, err)
		}
	}
	return nil
}

// writeEntry creates one entry at target (already confined to root).
func writeEntry(root, target string, h *tar.Header, r io.Reader) error {
	mode := fs.FileMode(h.Mode) & fs.ModePerm
	if h.Mode&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	// Replace whatever is there, except a directory by a directory.
	if fi, err := os.Lstat(target); err == nil {
		if !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	case tar.TypeReg:
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if strings.ContainsRune(h.Linkname, 0) {
			return fmt.Errorf("%w: link %q", ErrUnsafePath, h.Linkname)
		}
		return lchown(os.Symlink(h.Linkname, target), target, h)
	case tar.TypeLink:
		ln, err := cleanEntry(h.Linkname)
		if err != nil {
			return err
		}
		dir, base := path.Split(ln)
		pdir, err := resolveInRoot(root, dir)
		if err != nil {
			return err
		}
		src := filepath.Join(pdir, base)
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("%w: hard link to missing %q", ErrBadImage, h.Linkname)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: hard link to non-file %q", ErrUnsafePath, h.Linkname)
		}
		return os.Link(src, target)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := mknod(target, h); err != nil {
			return nil // not root or not allowed: leave the node out
		}
	default:
		return nil // pax globals, GNU sparse, ...: nothing to write
	}
	if err := lchown(nil, target, h); err != nil {
		return err
	}
	if err := os.Chmod(target, mode); err != nil {
		return err
	}
	return os.Chtimes(target, h.ModTime, h.ModTime)
}

// lchown sets owner as root; unprivileged unpacking keeps the caller's ids.
func lchown(prev error, target string, h *tar.Header) error {
	if prev != nil {
		return prev
	}
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(target, h.Uid, h.Gid)
}
