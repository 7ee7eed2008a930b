package pod

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func (w *worker) logPath(container string) string {
	return filepath.Join(w.dir, "logs", container+".log")
}

// rotateLogs caps the log of each container adopted from an edgenode
// that predates the CRI log format (output.legacy): such a container
// appends to its log file itself, so past LogMaxSize the file is copied to
// .1 (older copies shift up to LogMaxFiles) and truncated in place; lines
// written between copy and truncate are lost. The logs of the other
// containers are rotated by their relay (relay.rotate), which loses none.
func (w *worker) rotateLogs() {
	for name := range w.ctrs {
		o := w.output(name)
		o.mu.Lock()
		legacy := o.legacy
		o.mu.Unlock()
		if !legacy {
			continue
		}
		p := w.logPath(name)
		fi, err := os.Stat(p)
		if err != nil || fi.Size() < w.r.cfg.LogMaxSize {
			continue
		}
		n := w.r.cfg.LogMaxFiles
		_ = os.Remove(p + "." + strconv.Itoa(n))
		for i := n - 1; i >= 1; i-- {
			_ = os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1))
		}
		if err := copyFile(p, p+".1"); err != nil {
			w.r.log.Warn("log rotation", "file", p, "err", err)
			continue
		}
		_ = os.Truncate(p, 0)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// WriteLogs writes the log of one container of a pod stored under dataDir,
// oldest rotated file first: the text of each line, with timestamps
// prefixed by its time as kubectl logs --timestamps does. pod is "name" or
// "namespace/name"; container may be empty when the pod has one
// container.
func WriteLogs(w io.Writer, dataDir, pod, container string, timestamps bool) error {
	dir, p, err := findPod(PodsDir(dataDir), pod)
	if err != nil {
		return err
	}
	if container == "" {
		if len(p.Spec.Containers) != 1 {
			names := make([]string, 0, len(p.Spec.Containers))
			for _, c := range p.Spec.Containers {
				names = append(names, c.Name)
			}
			return fmt.Errorf("pod: %s has containers %v: name one", pod, names)
		}
		container = p.Spec.Containers[0].Name
	}
	base := filepath.Join(dir, "logs", container+".log")
	fs, sizes := openLog(logFiles(base))
	defer func() {
		for _, f := range fs {
			f.Close()
		}
	}()
	if len(fs) == 0 {
		return fmt.Errorf("%w: no log for container %q of %s", ErrNotFound, container, pod)
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	if _, err := writeLog(newLogWriter(bw, logQuery{tail: -1, timestamps: timestamps}), fs, sizes, -1, true); err != nil {
		return err
	}
	return bw.Flush()
}

// findPod finds a stored pod by "name" or "namespace/name".
func findPod(podsDir, key string) (string, *Pod, error) {
	ents, err := os.ReadDir(podsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("pod: %w", err)
	}
	var matches []string
	var found *Pod
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(podsDir, e.Name(), "pod.json"))
		if err != nil {
			continue
		}
		var p Pod
		if json.Unmarshal(b, &p) != nil {
			continue
		}
		if key == p.Metadata.Name || key == p.Metadata.Namespace+"/"+p.Metadata.Name {
			matches = append(matches, filepath.Join(podsDir, e.Name()))
			found = &p
		}
	}
	switch len(matches) {
	case 0:
		return "", nil, fmt.Errorf("%w: pod %q", ErrNotFound, key)
	case 1:
		return matches[0], found, nil
	}
	return "", nil, fmt.Errorf("pod: %q matches %d pods: use namespace/name", key, len(matches))
}

// FollowLogs writes the container's current log file, then what is
// appended to it, until ctx ends. It reads only files (it runs in the
// edgenode logs command, beside the node), so it looks for new records
// four times a second. After a rotation (the file at the path is a new
// one) it reads the old file to its end and goes on with the new one.
func FollowLogs(ctx context.Context, w io.Writer, dataDir, pod, container string, timestamps bool) error {
	dir, p, err := findPod(PodsDir(dataDir), pod)
	if err != nil {
		return err
	}
	if container == "" {
		if len(p.Spec.Containers) != 1 {
			return fmt.Errorf("pod: %s has %d containers: name one", pod, len(p.Spec.Containers))
		}
		container = p.Spec.Containers[0].Name
	}
	path := filepath.Join(dir, "logs", container+".log")
	l := newLogWriter(w, logQuery{tail: -1, timestamps: timestamps})
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var cur *os.File
	var off int64
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	for {
		fresh := false
		if cur != nil {
			fi, err1 := os.Stat(path)
			ci, err2 := cur.Stat()
			fresh = err1 == nil && err2 == nil && !os.SameFile(fi, ci)
		}
		if fresh {
			if _, err := copyRecords(l, cur, off, true); err != nil {
				return err
			}
			cur.Close()
			cur = nil
		}
		if cur == nil {
			if cur, err = os.Open(path); err != nil {
				cur = nil
			}
			off = 0
		}
		if cur != nil {
			if fi, err := cur.Stat(); err == nil && fi.Size() < off {
				off = 0 // truncated: a log rotated the old way (rotateLogs)
			}
			if off, err = copyRecords(l, cur, off, false); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
