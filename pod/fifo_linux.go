package pod

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// makeFifo creates a fresh FIFO at path, replacing what was there: a new
// container instance gets a new pipe, so an old instance's leftover
// writers never mix into it.
func makeFifo(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return unix.Mkfifo(path, 0o600)
}

// openFifoReader opens the FIFO for edgenode's end: read-only and
// non-blocking, so the Go runtime polls it (an idle container costs no
// wakeup) and a read sees EOF once every writer has closed it. The open
// never blocks and needs no writer.
func openFifoReader(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		f.Close()
		return nil, errors.New(path + " is not a FIFO")
	}
	growPipe(f)
	return f, nil
}

// openFifoWriter opens the container's end: blocking (its own open file
// description, so the reader's O_NONBLOCK does not leak into the
// container) and read-write, so the container never gets SIGPIPE while
// edgenode is away: it only blocks once the pipe is full.
func openFifoWriter(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openFifoInput opens a container's stdin FIFO for edgenode to write:
// write-only and non-blocking, so the Go runtime polls it; it fails
// (ENXIO) when no process holds the reading end.
func openFifoInput(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0)
}

var pipeMax = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
})

// growPipe raises the pipe's capacity (F_SETPIPE_SZ) to what
// /proc/sys/fs/pipe-max-size allows, up to maxPipeBuffer, so a container
// can write that much while edgenode is not reading. Failure leaves the
// 64 KiB default.
func growPipe(f *os.File) {
	size := min(pipeMax(), maxPipeBuffer)
	if size <= 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
	})
}

// pipeSize returns the capacity of the pipe f, or 0.
func pipeSize(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) { n, _ = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) })
	return n
}

// readReady waits in the runtime's poller until the FIFO f has data or is
// at its end, and only then takes a buffer from relayBufs and reads into
// it. It returns the buffer (nil when nothing was read) and the bytes
// read; io.EOF once every writer has closed f, or the poller's error
// (deadline, closed file). The caller gives the buffer back.
func readReady(f *os.File) (*relayScratch, int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	var (
		sc   *relayScratch
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		if sc == nil {
			sc = relayBufs.Get().(*relayScratch)
		}
		for {
			n, rerr = unix.Read(int(fd), sc.in[:])
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			relayBufs.Put(sc)
			sc = nil
			return false // wait until readable
		}
		return true
	})
	switch {
	case err != nil:
	case rerr != nil:
		err = &os.PathError{Op: "read", Path: f.Name(), Err: rerr}
	case n == 0:
		err = io.EOF
	}
	if n <= 0 && sc != nil {
		relayBufs.Put(sc)
		sc, n = nil, 0
	}
	return sc, n, err
}
