//go:build !linux

package pod

import (
	"archive/tar"
	"errors"
)

func mknod(string, *tar.Header) error { return errors.New("mknod: not supported") }
