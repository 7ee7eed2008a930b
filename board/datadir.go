package board

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// CheckDataDir makes sure dir exists and takes a durable write: it creates
// dir if missing, then writes, fsyncs and removes a probe file. On a
// read-only root (design "Files on the board") every write edgenode makes
// goes under dir, so this is the one place a mis-mounted image shows up;
// the error says what is wrong and what to do. It wraps ErrDataDir and the
// system error.
func CheckDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return dataDirError(dir, "cannot create it", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return dataDirError(dir, "cannot stat it", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("board: data dir %s is not a directory: %w", dir, ErrDataDir)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return dataDirError(dir, "cannot create a file in it", err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write([]byte("edgenode write probe\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return dataDirError(dir, "cannot write and sync a file in it", err)
	}
	if err := os.Remove(name); err != nil {
		return dataDirError(dir, "cannot remove a file from it", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return dataDirError(dir, "cannot open it", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return dataDirError(dir, "cannot sync it", err)
	}
	return nil
}

// dataDirError adds a hint for the causes seen on boards.
func dataDirError(dir, what string, err error) error {
	var hint string
	switch {
	case errors.Is(err, syscall.EROFS):
		hint = "its file system is read-only: mount a writable partition or tmpfs on it, or set dataDir / --data-dir to a writable path"
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		hint = "permission denied: run edgenode as root or give its user the directory"
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		hint = "the file system is full: free space or move dataDir"
	case errors.Is(err, syscall.ENOTDIR):
		hint = "a parent of it is a file, not a directory"
	default:
		hint = "check the mount and the path"
	}
	return fmt.Errorf("board: data dir %s: %s (%s): %w: %w", dir, what, hint, ErrDataDir, err)
}
