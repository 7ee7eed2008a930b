package db

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// freeBytes is the space unprivileged writers may still use on the file
// system of path's directory.
func freeBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
