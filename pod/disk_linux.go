package pod

import "golang.org/x/sys/unix"

// diskFree returns the bytes available to unprivileged users on dir's
// file system.
func diskFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
