package pod

import (
	"golang.org/x/sys/unix"
)

// diskStats returns total and available bytes of dir's file system.
func diskStats(dir string) (total, free uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}
