package pod

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// annLogFormat marks a container whose stdout and stderr are edgenode's
// FIFOs (value "cri"). An adopted container without it was started by an
// edgenode from before the CRI log format: it appends its raw output to
// its log file itself, which is then rotated the old way (rotateLegacy)
// until the container ends.
const annLogFormat = "io.edgenode.container.log"

// How a container's output reaches its log, with no process of ours
// beside the container: the container's stdout and stderr are two FIFOs
// under <pod dir>/io, which the container holds open read-write (so it
// never gets SIGPIPE, and only blocks when the pipe is full while
// edgenode is away). edgenode reads them through the Go runtime's poller,
// stamps each line and appends it to logs/<name>.log. It is the log
// file's only writer, so it rotates by rename between records and loses
// nothing. After a restart of edgenode, the FIFOs of adopted containers
// are opened again and read on from what is still in the pipe.

// outputs are the container outputs of one worker, by container name;
// the zero value is ready to use.
type outputs struct {
	mu sync.Mutex
	m  map[string]*output
}

// output returns the output of the named container, creating it.
func (w *worker) output(name string) *output {
	w.outs.mu.Lock()
	defer w.outs.mu.Unlock()
	if o := w.outs.m[name]; o != nil {
		return o
	}
	if w.outs.m == nil {
		w.outs.m = map[string]*output{}
	}
	o := &output{r: w.r, path: w.logPath(name), fifo: filepath.Join(w.dir, "io", name)}
	w.outs.m[name] = o
	return o
}

// output is the log of one container across its instances: the current
// log file logs/<name>.log, its rotated copies .1 (newest) to .N, and the
// last file of the previous instance, <name>.previous.log (container
// names are DNS labels, so the names cannot clash).
type output struct {
	r    *Runner
	path string
	fifo string // FIFO path prefix: <fifo>.stdout, <fifo>.stderr

	mu     sync.Mutex
	cur    *relay // the newest instance relayed, nil if none
	legacy bool   // an adopted container writes path itself
	gen    int    // bumped when path is renamed (rotation, new instance)
	seq    int    // bumped on every write and end
	wake   chan struct{}
}

func (o *output) previousPath() string {
	return o.path[:len(o.path)-len(".log")] + ".previous.log"
}

// notify wakes the followers; o.mu is held.
func (o *output) notify() {
	o.seq++
	if o.wake != nil {
		close(o.wake)
		o.wake = nil
	}
}

// relay copies one container instance's stdout and stderr into the log.
type relay struct {
	o     *output
	f     *os.File // the log file written, nil after a failed reopen; o.mu
	size  int64
	moved bool // f is no longer o.path: a newer instance took over
	open  int  // streams not yet ended
	done  chan struct{}
	werr  bool // a write error was logged
}

// begin prepares the output of a new instance of the container: the
// previous instance's log becomes <name>.previous.log (its rotated copies
// are dropped, as the kubelet keeps only the last file of a dead
// container), fresh FIFOs are made, and relaying starts under ctx (the
// runner's lifetime). It returns the container's ends of the FIFOs, which
// the caller passes to runc and then closes.
func (o *output) begin(ctx context.Context) (out, errf *os.File, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur != nil {
		o.cur.moved = true
	}
	o.cur, o.legacy = nil, false
	if _, err := os.Stat(o.path); err == nil {
		if err := os.Rename(o.path, o.previousPath()); err != nil {
			return nil, nil, err
		}
		for i := 1; i <= 9; i++ {
			_ = os.Remove(o.path + "." + strconv.Itoa(i))
		}
	}
	o.gen++
	o.notify()
	if err := os.MkdirAll(filepath.Dir(o.fifo), 0o700); err != nil {
		return nil, nil, err
	}
	var rd, wr [2]*os.File
	closeAll := func() {
		for _, f := range append(rd[:], wr[:]...) {
			if f != nil {
				f.Close()
			}
		}
	}
	for i, s := range []logStream{stdout, stderr} {
		p := o.fifo + "." + s.String()
		if err = makeFifo(p); err == nil {
			if rd[i], err = openFifoReader(p); err == nil {
				wr[i], err = openFifoWriter(p)
			}
		}
		if err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	f, err := os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	o.start(ctx, f, 0, rd)
	return wr[0], wr[1], nil
}

// stdinPath is the FIFO of a container with stdin: true.
func (o *output) stdinPath() string { return o.fifo + ".stdin" }

// stdinEnd makes a fresh stdin FIFO for a new instance of a container with
// stdin: true and returns the container's end, which the caller passes to
// runc and then closes. The container holds it open read-write, so it
// never reads end-of-file: what attach writes reaches it, attach after
// attach, as with the kubelet's stdin without stdinOnce.
func (o *output) stdinEnd() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(o.fifo), 0o700); err != nil {
		return nil, err
	}
	if err := makeFifo(o.stdinPath()); err != nil {
		return nil, err
	}
	return openFifoWriter(o.stdinPath())
}

// adopt relays the output of a container started by an earlier run of
// edgenode. cri is whether it was started with FIFOs (annLogFormat).
func (o *output) adopt(ctx context.Context, cri bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !cri {
		o.legacy = true
		return nil
	}
	var rd [2]*os.File
	for i, s := range []logStream{stdout, stderr} {
		f, err := openFifoReader(o.fifo + "." + s.String())
		if err != nil {
			if rd[0] != nil {
				rd[0].Close()
			}
			return err
		}
		rd[i] = f
	}
	f, err := os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		rd[0].Close()
		rd[1].Close()
		return err
	}
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	o.start(ctx, f, size, rd)
	return nil
}

// start runs one relay goroutine per stream; o.mu is held.
func (o *output) start(ctx context.Context, f *os.File, size int64, rd [2]*os.File) {
	rl := &relay{o: o, f: f, size: size, open: 2, done: make(chan struct{})}
	o.cur = rl
	o.r.wg.Add(2)
	for i, s := range []logStream{stdout, stderr} {
		go func() {
			defer o.r.wg.Done()
			rl.copy(ctx, rd[i], s)
		}()
	}
}

// maxPipeBuffer caps the pipe capacity asked for (growPipe): 1 MiB, the
// kernel's default pipe-max-size. The kernel allocates pipe pages as data
// arrives and frees them as they are read, so a drained pipe costs no
// memory whatever its capacity; a full one, while edgenode is away, pins
// this much kernel memory per stream.
const maxPipeBuffer = 1 << 20

// relayBuf is the read size of a relay.
const relayBuf = 4 << 10

// relayBufs holds the relays' read and record buffers. A stream takes
// them only once its FIFO is readable (readReady) and gives them back
// once what it read is stamped and written, so an idle container's
// streams hold no buffer, and the goroutine waiting on each stays at a
// small stack: with a buffer of its own in its frame, every stream held
// at least 8 KiB of stack for the container's life.
var relayBufs = sync.Pool{New: func() any { return new(relayScratch) }}

// relayScratch is one read's buffers: what was read, and the records
// made of it.
type relayScratch struct {
	in  [relayBuf]byte
	out []byte
}

// copy relays one stream until the container's end of it is closed (EOF)
// or ctx ends. Each read's lines are stamped and written with one write.
// A line longer than maxLogLine is split into P records; so is a line
// still unfinished when edgenode stops, whose rest comes after the
// restart.
func (rl *relay) copy(ctx context.Context, f *os.File, s logStream) {
	defer rl.end()
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	var line []byte // an unfinished line, carried to the next read
	for {
		sc, n, err := readReady(f)
		now := time.Now()
		var out []byte
		if sc != nil {
			out = sc.out[:0]
			data := sc.in[:n]
			for len(data) > 0 {
				i := bytes.IndexByte(data, '\n')
				end := len(data)
				if i >= 0 {
					end = i
				}
				if len(line) == 0 && i >= 0 && end <= maxLogLine {
					// A whole line in this read: stamped as it is.
					out = appendRecord(out, now, s, false, data[:end])
					data = data[end+1:]
					continue
				}
				take := min(end, maxLogLine-len(line))
				line = append(line, data[:take]...)
				data = data[take:]
				switch {
				case take == end && i >= 0:
					out = appendRecord(out, now, s, false, line)
					line, data = line[:0], data[1:]
				case len(line) == maxLogLine:
					out = appendRecord(out, now, s, true, line)
					line = line[:0]
				}
			}
		}
		if err != nil && len(line) > 0 {
			// EOF: the output ended without a newline, the line is whole.
			// Otherwise edgenode stops: the rest is still in the pipe.
			out = appendRecord(out, now, s, !errors.Is(err, io.EOF), line)
		}
		if len(out) > 0 {
			rl.write(out)
		}
		if len(line) == 0 {
			line = nil // no line is unfinished: hold no buffer for one
		}
		if sc != nil {
			sc.out = out[:0]
			if cap(out) > 4*relayBuf {
				sc.out = nil
			}
			relayBufs.Put(sc)
		}
		if err != nil {
			return
		}
	}
}

// write appends records to the log, rotating it at a record boundary so
// that a file stays within LogMaxSize (a single record longer than that
// gets a file of its own).
func (rl *relay) write(b []byte) {
	o := rl.o
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(b) > 0 {
		n := len(b)
		if room := o.r.cfg.LogMaxSize - rl.size; !rl.moved && int64(n) > room {
			n = bytes.LastIndexByte(b[:max(room, 0)], '\n') + 1
			if n == 0 && rl.size == 0 {
				n = bytes.IndexByte(b, '\n') + 1
			}
		}
		if n > 0 {
			rl.append(b[:n])
			b = b[n:]
		}
		if len(b) > 0 {
			rl.rotate()
		}
	}
	o.notify()
}

// append writes to the log file, reopening it after a failed rotation;
// o.mu is held.
func (rl *relay) append(b []byte) {
	o := rl.o
	if rl.f == nil && !rl.moved {
		rl.f, _ = os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	}
	if rl.f == nil {
		return
	}
	n, err := rl.f.Write(b)
	rl.size += int64(n)
	if err != nil && !rl.werr {
		rl.werr = true // once per instance: a full disk would repeat it per line
		o.r.log.Warn("container log not written: lines dropped", "file", o.path, "err", err)
	}
}

// rotate renames the log to .1 (older copies shift up to .LogMaxFiles,
// the oldest goes) and opens a new one; o.mu is held. Since the relay is
// the only writer and rotates between records, no line is lost or split.
func (rl *relay) rotate() {
	o := rl.o
	n := o.r.cfg.LogMaxFiles
	_ = os.Remove(o.path + "." + strconv.Itoa(n))
	for i := n - 1; i >= 1; i-- {
		_ = os.Rename(o.path+"."+strconv.Itoa(i), o.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(o.path, o.path+".1"); err != nil {
		rl.size = 0 // the pod dir is going: keep writing where we are
		return
	}
	o.gen++
	rl.f.Close()
	rl.size = 0
	var err error
	if rl.f, err = os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		rl.f = nil
	}
}

// end marks one stream ended; the last closes the log file.
func (rl *relay) end() {
	o := rl.o
	o.mu.Lock()
	defer o.mu.Unlock()
	if rl.open--; rl.open > 0 {
		return
	}
	if rl.f != nil {
		rl.f.Close()
		rl.f = nil
	}
	rl.moved = true
	close(rl.done)
	o.notify()
}

// ended reports whether the relay's streams have both ended.
func (rl *relay) ended() bool {
	select {
	case <-rl.done:
		return true
	default:
		return false
	}
}
