package board

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RestrictPerms takes away group and other access from the data dir and
// from the named paths in it (relative to dir, or absolute): files become
// at most 0600 and directories 0700. It runs at every start, because a
// data dir that exists already keeps its mode (a board image's init script
// may mkdir -p it 0755), and SQLite creates its files 0644, while the
// database holds the cloud's secrets and the certificate dir the node's
// key. Missing paths and symbolic links are skipped. It returns the paths
// whose mode it changed, for the caller to log.
func RestrictPerms(dir string, paths ...string) ([]string, error) {
	var changed []string
	for _, p := range append([]string{"."}, paths...) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Mode()&fs.ModeSymlink != 0) {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("board: restrict %s: %w", p, err)
		}
		mode := fi.Mode().Perm()
		if mode&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, mode&^0o077); err != nil {
			return changed, fmt.Errorf("board: restrict %s: %w", p, err)
		}
		changed = append(changed, p)
	}
	return changed, nil
}
