package pod

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"time"
)

// logQuery is what to read of a container log: the kubelet's
// PodLogOptions.
type logQuery struct {
	follow     bool
	tail       int64 // last records; -1: all
	since      time.Time
	timestamps bool
	limit      int64 // bytes; 0: no limit
	previous   bool
}

// errLogLimit ends a read at limitBytes.
var errLogLimit = errors.New("limitBytes reached")

// logWriter writes records as the kubelet does (cri-client logs.go,
// logWriter.write): the text only, or with timestamps "<time> <text>",
// the time only where a line starts (not on the pieces after a P record);
// records older than since are skipped; output stops at limit bytes.
type logWriter struct {
	w       io.Writer
	q       logQuery
	left    int64
	midLine bool // the last record written was a P record
	buf     []byte
	br      *bufio.Reader // reused by copyRecords
	// each, when set, gets every record after since instead of w.
	each func(s logStream, text []byte, partial bool) error
}

func newLogWriter(w io.Writer, q logQuery) *logWriter {
	return &logWriter{w: w, q: q, left: q.limit}
}

// record writes one log file line; it returns errLogLimit once limit
// bytes are out.
func (l *logWriter) record(line []byte) error {
	r := parseRecord(line)
	if !l.q.since.IsZero() && r.time.Before(l.q.since) {
		return nil
	}
	if l.each != nil {
		return l.each(r.stream, r.text, r.partial)
	}
	b := l.buf[:0]
	if l.q.timestamps && !l.midLine && !r.time.IsZero() {
		b = r.time.AppendFormat(b, timeFormatOut)
		b = append(b, ' ')
	}
	b = append(b, r.text...)
	if !r.partial {
		b = append(b, '\n')
	}
	l.midLine = r.partial
	l.buf = b
	if l.q.limit > 0 && int64(len(b)) >= l.left {
		b = b[:l.left]
		l.left = 0
		if _, err := l.w.Write(b); err != nil {
			return err
		}
		return errLogLimit
	}
	l.left -= int64(len(b))
	_, err := l.w.Write(b)
	return err
}

// copyRecords writes the complete lines of f from off on and returns the
// offset after the last one. With final, a last line without a newline
// counts too (a log from before the CRI format, whose container died
// mid-line).
func copyRecords(l *logWriter, f *os.File, off int64, final bool) (int64, error) {
	sr := io.NewSectionReader(f, off, 1<<62)
	if l.br == nil {
		l.br = bufio.NewReaderSize(sr, 32<<10)
	}
	br := l.br
	br.Reset(sr)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any record edgenode writes: an old plain line.
			// Pass it on in pieces.
			if werr := l.record(line); werr != nil {
				return off, werr
			}
			off += int64(len(line))
			continue
		}
		if err != nil {
			if final && len(line) > 0 {
				off += int64(len(line))
				if werr := l.record(line); werr != nil {
					return off, werr
				}
			}
			return off, nil
		}
		off += int64(len(line))
		if werr := l.record(line[:len(line)-1]); werr != nil {
			return off, werr
		}
	}
}

// logFiles lists a log's rotated copies, oldest first, then path.
func logFiles(path string) []string {
	var files []string
	for i := 9; i >= 1; i-- {
		if _, err := os.Stat(path + "." + strconv.Itoa(i)); err == nil {
			files = append(files, path+"."+strconv.Itoa(i))
		}
	}
	return append(files, path)
}

// openLog opens the files of a log (logFiles), skipping missing ones,
// and notes their sizes.
func openLog(files []string) ([]*os.File, []int64) {
	var fs []*os.File
	var sizes []int64
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			continue
		}
		fs = append(fs, f)
		sizes = append(sizes, fi.Size())
	}
	return fs, sizes
}

// tailStart finds where the last n lines begin: the file index and the
// offset in it. A last line without its newline counts as a line, as in
// the kubelet's tail (cri-client logs.go findTailLineStartIndex).
func tailStart(files []*os.File, sizes []int64, n int64) (int, int64) {
	if len(files) == 0 {
		return 0, 0
	}
	if n == 0 {
		return len(files) - 1, sizes[len(files)-1]
	}
	buf := make([]byte, 8<<10)
	skipLast := true // the newline that ends the very last line
	for i := len(files) - 1; i >= 0; i-- {
		end := sizes[i]
		for end > 0 {
			k := min(end, int64(len(buf)))
			if _, err := files[i].ReadAt(buf[:k], end-k); err != nil && err != io.EOF {
				break
			}
			for j := k - 1; j >= 0; j-- {
				if buf[j] != '\n' {
					skipLast = false
					continue
				}
				if skipLast {
					skipLast = false
					continue
				}
				if n--; n <= 0 {
					return i, end - k + j + 1
				}
			}
			end -= k
		}
	}
	return 0, 0
}

// writeLog writes the log files (oldest first) from the tail on, the
// last to its current end. It returns the offset reached in the last
// file. final as in copyRecords, for the last file.
func writeLog(l *logWriter, files []*os.File, sizes []int64, tail int64, final bool) (int64, error) {
	start, off := 0, int64(0)
	if tail >= 0 {
		start, off = tailStart(files, sizes, tail)
	}
	for i := start; i < len(files); i++ {
		if i > start {
			off = 0
		}
		var err error
		if off, err = copyRecords(l, files[i], off, final || i < len(files)-1); err != nil {
			return off, err
		}
	}
	return off, nil
}

// read writes the container's log as q asks: the previous instance's
// file, or the current log with its rotated copies, then with follow what
// the container writes until its output ends (it exited), a newer
// instance starts, or ctx ends. A container without a relay (its output
// ended, or adopted from before the CRI format) is not followed.
func (o *output) read(ctx context.Context, w io.Writer, q logQuery) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	defer bw.Flush()
	return o.readTo(ctx, newLogWriter(bw, q), bw.Flush)
}

// readTo is read into l. With follow, flush runs once the place to follow
// from is fixed (what the container writes from then on reaches l), and
// before each wait for more.
func (o *output) readTo(ctx context.Context, l *logWriter, flush func() error) error {
	o.mu.Lock()
	files := logFiles(o.path)
	if l.q.previous {
		files = []string{o.previousPath()}
	}
	fs, sizes := openLog(files)
	rl, gen, seq := o.cur, o.gen, o.seq
	o.mu.Unlock()
	live := l.q.follow && !l.q.previous && rl != nil && len(fs) > 0
	off, err := writeLog(l, fs, sizes, l.q.tail, !live)
	for i, f := range fs {
		if !live || err != nil || i < len(fs)-1 {
			f.Close()
		}
	}
	if err != nil || !live {
		return ignoreLimit(err)
	}
	if err := flush(); err != nil {
		fs[len(fs)-1].Close()
		return err
	}
	return ignoreLimit(o.follow(ctx, l, flush, followPos{rl: rl, f: fs[len(fs)-1], off: off, gen: gen, seq: seq}))
}

// followPos is where a follower is: the instance it follows, the file it
// reads (closed by follow) and how far, and the output's gen and seq it
// has seen.
type followPos struct {
	rl       *relay
	f        *os.File
	off      int64
	gen, seq int
}

// follow writes what the relay p.rl appends from p on, asleep between
// writes, until the instance's output ends or a newer one begins, or ctx
// ends.
func (o *output) follow(ctx context.Context, l *logWriter, flush func() error, p followPos) error {
	defer func() { p.f.Close() }()
	for {
		o.mu.Lock()
		switch {
		case o.seq != p.seq && o.gen == p.gen:
			p.seq = o.seq // more records in the same file
			o.mu.Unlock()
		case o.gen != p.gen:
			next := o.rotatedSince(p)
			p.gen, p.seq = o.gen, o.seq
			o.mu.Unlock()
			// Every record of the old file is in it now: read them, then
			// go on in the newer files while the instance is the same.
			_, err := copyRecords(l, p.f, p.off, true)
			p.f.Close()
			for i, f := range next {
				if err == nil && i < len(next)-1 {
					_, err = copyRecords(l, f, 0, true)
				}
				if i < len(next)-1 {
					f.Close()
				}
			}
			if err != nil || len(next) == 0 {
				return err // no next file: a newer instance, this one has ended
			}
			p.f, p.off = next[len(next)-1], 0
		case p.rl.ended():
			o.mu.Unlock()
			_, err := copyRecords(l, p.f, p.off, true)
			return err
		default:
			if o.wake == nil {
				o.wake = make(chan struct{})
			}
			wake := o.wake
			o.mu.Unlock()
			if err := flush(); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
			}
			continue
		}
		var err error
		if p.off, err = copyRecords(l, p.f, p.off, false); err != nil {
			return err
		}
	}
}

// rotatedSince opens the files written after p's file while p's instance
// is still the current one, oldest first: k rotations put p's file at .k
// and what came after it at .k-1 to .1, then the log itself (unless the
// follower fell more than LogMaxFiles rotations behind). None for a newer
// instance. o.mu is held.
func (o *output) rotatedSince(p followPos) []*os.File {
	if o.cur != p.rl {
		return nil
	}
	var next []*os.File
	for i := o.gen - p.gen - 1; i >= 1; i-- {
		if f, err := os.Open(o.path + "." + strconv.Itoa(i)); err == nil {
			next = append(next, f)
		}
	}
	if f, err := os.Open(o.path); err == nil {
		next = append(next, f)
	}
	return next
}

func ignoreLimit(err error) error {
	if errors.Is(err, errLogLimit) {
		return nil
	}
	return err
}
