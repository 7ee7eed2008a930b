// Package durable writes files that must survive a power cut: the node's
// certificates, a pod's record, image metadata. It is the one place that
// knows the sequence, so that no copy forgets a step.
//
// In: a path and its bytes. Out: the file, whole, or the old file (or none),
// never a torn mix. Goroutines: none. Persistence: the file itself.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with data, with permission perm, so that after a
// crash or power cut at any point path holds either its old content or all
// of data: it writes a temp file in path's folder, fsyncs it, renames it
// over path and fsyncs the folder, which makes the rename itself durable.
// The folder must exist. A failure before the rename removes the temp file
// and leaves path untouched. Errors are *fs.PathError with Op "write".
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return wrap(path, err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return wrap(path, err)
	}
	if err := SyncDir(dir); err != nil {
		return wrap(path, err)
	}
	return nil
}

// SyncDir fsyncs the folder dir, so that the entries created, renamed or
// removed in it survive a power cut. File systems that cannot fsync a
// folder (EINVAL) count as done.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}

func wrap(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &fs.PathError{Op: "write", Path: path, Err: err}
}
