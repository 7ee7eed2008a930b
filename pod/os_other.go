//go:build !linux

package pod

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// errNotLinux: pods need Linux namespaces, mounts and runc.
var errNotLinux = errors.New("pod: needs linux")

func podNamespaces(string, string, bool, bool) (map[string]string, bool, error) {
	return nil, false, errNotLinux
}
func releaseNamespaces(string)                   {}
func mountRootfs(string, string) (string, error) { return "", errNotLinux }
func unmountRootfs(string)                       {}
func mountTmpfs(string, int64) error             { return errNotLinux }
func unmountAll(string)                          {}
func setSubreaper() error                        { return errNotLinux }
func alive(int) bool                             { return false }
func diskStats(string) (uint64, uint64, error)   { return 0, 0, errNotLinux }
func devOf(fs.FileInfo) uint64                   { return 0 }
func ownerOf(fs.FileInfo) (int, int, bool)       { return 0, 0, false }

func dialInNetns(context.Context, string, string, time.Duration) (net.Conn, error) {
	return nil, errNotLinux
}

type waitStatus struct{}

func (waitStatus) ExitStatus() int         { return -1 }
func (waitStatus) Signaled() bool          { return false }
func (waitStatus) Signal() syscall.Signal  { return 0 }
func reapPid(int) (waitStatus, bool, bool) { return waitStatus{}, false, true }

func removePodCgroups(string) {}

func openPidfd(string, string, int) (*os.File, error) { return nil, errNoPidfd }
func waitPidfd(*os.File) error                        { return errNotLinux }
func fileExited(*os.File) bool                        { return false }

func runWait(c *exec.Cmd) error { return c.Run() }
func waitCmd(c *exec.Cmd) error { return c.Wait() }
