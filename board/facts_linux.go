package board

import (
	"errors"
	"fmt"
	"net"
	"time"

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

// InterfaceIPv4 returns the primary IPv4 address of interface name and
// whether the interface is up, with two ioctls and no netlink dump: the
// cheap check, at each status round, that the address picked from the full
// list still holds.
func InterfaceIPv4(name string) (net.IP, bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("board: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return nil, false, fmt.Errorf("board: interface %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return nil, false, fmt.Errorf("board: flags of %s: %w", name, err)
	}
	up := ifr.Uint16()&unix.IFF_UP != 0
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFADDR, ifr); err != nil {
		return nil, up, fmt.Errorf("board: address of %s: %w", name, err)
	}
	ip, err := ifr.Inet4Addr()
	if err != nil {
		return nil, up, fmt.Errorf("board: address of %s: %w", name, err)
	}
	return net.IP(ip), up, nil
}

var errAddrInUse = unix.EADDRINUSE

// setTimeout programs a watchdog device's timeout (WDIOC_SETTIMEOUT, in
// whole seconds). dev must be an open device file.
func setTimeout(dev any, d time.Duration) error {
	f, ok := dev.(interface{ Fd() uintptr })
	if !ok {
		return errors.New("board: not a device file")
	}
	secs := int((d + time.Second - 1) / time.Second)
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil {
		return fmt.Errorf("board: WDIOC_SETTIMEOUT %d: %w", secs, err)
	}
	return nil
}
