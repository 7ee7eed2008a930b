package pod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// podNamespaces creates the network, IPC and UTS namespaces one pod's
// containers share, without a process to hold them: a locked OS thread
// unshares them, sets the hostname, brings loopback up and bind-mounts each
// namespace file under dir. The bind mounts keep the namespaces alive across
// restarts of edgenode (until reboot or releaseNamespaces); the thread then
// exits with its goroutine, since it may not return to Go's pool.
//
// Trade-off against Kubernetes' pause container: no resident process and no
// image to ship, but a namespace is not visible as a process (ip netns does
// not list it) and must be unmounted explicitly.
func podNamespaces(dir, hostname string, withNet, withIPC bool) (paths map[string]string, fresh bool, err error) {
	paths = map[string]string{"uts": filepath.Join(dir, "uts")}
	flags := unix.CLONE_NEWUTS
	if withNet {
		paths["network"] = filepath.Join(dir, "net")
		flags |= unix.CLONE_NEWNET
	}
	if withIPC {
		paths["ipc"] = filepath.Join(dir, "ipc")
		flags |= unix.CLONE_NEWIPC
	}
	if nsMounted(paths) {
		return paths, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("pod: namespaces: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		errc <- func() error {
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("sethostname: %w", err)
			}
			if withNet {
				if err := loopbackUp(); err != nil {
					return err
				}
			}
			tid := unix.Gettid()
			names := map[string]string{"network": "net", "ipc": "ipc", "uts": "uts"}
			for t, p := range paths {
				_ = unix.Unmount(p, unix.MNT_DETACH)
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					return err
				}
				src := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), tid, names[t])
				if err := unix.Mount(src, p, "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("bind %s: %w", t, err)
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		releaseNamespaces(dir)
		return nil, false, fmt.Errorf("pod: namespaces: %w", err)
	}
	return paths, true, nil
}

// nsMounted: every path is a bind-mounted namespace (nsfs) already, as
// after a restart of edgenode.
func nsMounted(paths map[string]string) bool {
	for _, p := range paths {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) != nil || st.Type != unix.NSFS_MAGIC {
			return false
		}
	}
	return true
}

// releaseNamespaces unmounts and removes the namespace files of a pod.
func releaseNamespaces(dir string) {
	for _, n := range []string{"net", "ipc", "uts"} {
		p := filepath.Join(dir, n)
		_ = unix.Unmount(p, unix.MNT_DETACH)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
	}
}

// loopbackUp sets IFF_UP on lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	return nil
}

// mountRootfs mounts an overlay of the image's root filesystem with a
// fresh writable layer at target. When the kernel has no overlayfs (or
// the data dir cannot hold an upper dir) it copies the image instead.
func mountRootfs(image, dir string) (string, error) {
	target := filepath.Join(dir, "rootfs")
	upper := filepath.Join(dir, "upper")
	work := filepath.Join(dir, "work")
	unmountRootfs(dir)
	for _, d := range []string{target, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("pod: rootfs: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", image, upper, work)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err == nil {
		return target, nil
	}
	if err := copyTree(image, target); err != nil {
		return "", fmt.Errorf("pod: rootfs copy: %w", err)
	}
	return target, nil
}

// unmountRootfs undoes mountRootfs and removes the writable layer.
func unmountRootfs(dir string) {
	target := filepath.Join(dir, "rootfs")
	_ = unix.Unmount(target, unix.MNT_DETACH)
	for _, d := range []string{target, filepath.Join(dir, "upper"), filepath.Join(dir, "work")} {
		_ = os.RemoveAll(d)
	}
}

// bindMount and unmount for tmpfs emptyDirs.
func mountTmpfs(dir string, size int64) error {
	opt := "mode=0777"
	if size > 0 {
		opt += fmt.Sprintf(",size=%d", size)
	}
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opt)
}

func unmountAll(dir string) { _ = unix.Unmount(dir, unix.MNT_DETACH) }

// setSubreaper makes this process the reaper of orphaned descendants, so the
// init process of a detached container becomes our child when runc exits.
func setSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// reapPid collects pid if it is our child and has exited. It returns the
// wait status and true when reaped; notChild is true when pid is not our
// child (a container adopted from an earlier run of edgenode).
func reapPid(pid int) (ws unix.WaitStatus, reaped, notChild bool) {
	n, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if errors.Is(err, unix.ECHILD) {
		return ws, false, true
	}
	return ws, n == pid, false
}

// alive reports whether a process exists (signal 0).
func alive(pid int) bool {
	return pid > 0 && unix.Kill(pid, 0) == nil
}

// dialInNetns opens a TCP connection from inside the network namespace at
// nsPath. The socket is created by a thread switched into that namespace
// and keeps it; the thread switches back before it is unlocked (or dies
// with its goroutine when it cannot).
func dialInNetns(ctx context.Context, nsPath, addr string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked; the thread exits with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// removePodCgroups removes the pod's parent cgroup directories that runc
// leaves behind (runc removes only each container's own cgroup), for cgroup
// v1 controllers and the v2 unified tree.
func removePodCgroups(parent string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", parent))
	for _, d := range dirs {
		sub, _ := os.ReadDir(d)
		for _, s := range sub {
			if s.IsDir() {
				_ = unix.Rmdir(filepath.Join(d, s.Name()))
			}
		}
		_ = unix.Rmdir(d)
	}
}
