package pod

import (
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

// rotateLogs caps each container log: past LogMaxSize the file is copied
// to .1 (older copies shift up to LogMaxFiles) and truncated in place. The
// container keeps its O_APPEND descriptor, so it writes on at the new end;
// lines written between copy and truncate are lost, the price of having no
// process of ours in the log path.
func (w *worker) rotateLogs() {
	for name := range w.ctrs {
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
// oldest rotated file first. pod is "name" or "namespace/name"; container
// may be empty when the pod has one container.
func WriteLogs(w io.Writer, dataDir, pod, container string) error {
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
	files := []string{}
	for i := 9; i >= 1; i-- {
		if _, err := os.Stat(base + "." + strconv.Itoa(i)); err == nil {
			files = append(files, base+"."+strconv.Itoa(i))
		}
	}
	files = append(files, base)
	found := false
	for _, f := range files {
		in, err := os.Open(f)
		if err != nil {
			continue
		}
		found = true
		_, err = io.Copy(w, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("%w: no log for container %q of %s", ErrNotFound, container, pod)
	}
	return nil
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

// FollowLogs writes the container's current log file, then what the
// container appends, until ctx ends. A rotation (the file shrinks) starts
// over at the top of the new content.
func FollowLogs(ctx context.Context, w io.Writer, dataDir, pod, container string) error {
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
	var off int64
	rotated := rotationStamp(path)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	for {
		// rotateLogs copies to .1, then truncates: a new .1 or a file
		// shorter than what was read means start over.
		if st := rotationStamp(path); st != rotated {
			rotated, off = st, 0
		}
		f, err := os.Open(path)
		if err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < off {
				off = 0
			}
			for {
				n, err := f.ReadAt(buf, off)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr != nil {
						f.Close()
						return werr
					}
					off += int64(n)
				}
				if err != nil {
					break
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// rotationStamp identifies the newest rotated copy of a log.
func rotationStamp(path string) string {
	fi, err := os.Stat(path + ".1")
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}
