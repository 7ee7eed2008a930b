package board

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// HostUname calls uname(2).
func HostUname() (Uname, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Uname{}, fmt.Errorf("board: uname: %w", err)
	}
	return Uname{
		Machine:  unix.ByteSliceToString(u.Machine[:]),
		Release:  unix.ByteSliceToString(u.Release[:]),
		Nodename: unix.ByteSliceToString(u.Nodename[:]),
	}, nil
}

// StatDisk returns the space of the file system holding path, as seen by an
// unprivileged user (f_bavail), which is what a pod can use.
func StatDisk(path string) (Disk, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return Disk{}, fmt.Errorf("board: statfs %s: %w", path, err)
	}
	bs := uint64(s.Bsize)
	return Disk{
		Total:      uint64(s.Blocks) * bs,
		Free:       uint64(s.Bavail) * bs,
		Inodes:     uint64(s.Files),
		InodesFree: uint64(s.Ffree),
	}, nil
}

var errAddrInUse = unix.EADDRINUSE
