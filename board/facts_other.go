//go:build !linux

package board

import (
	"errors"
	"net"
	"os"
	"runtime"
	"time"
)

var errNotLinux = errors.New("board: only supported on linux")

// HostUname returns what the Go runtime knows; edgenode runs on Linux.
func HostUname() (Uname, error) {
	h, _ := os.Hostname()
	return Uname{Machine: runtime.GOARCH, Nodename: h}, nil
}

// StatDisk is not supported outside Linux.
func StatDisk(path string) (Disk, error) { return Disk{}, errNotLinux }

// InterfaceIPv4 is not supported outside Linux.
func InterfaceIPv4(string) (net.IP, bool, error) { return nil, false, errNotLinux }

var errAddrInUse = errors.New("address in use")

func setTimeout(any, time.Duration) error { return errNotLinux }
