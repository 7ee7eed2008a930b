//go:build !linux

package image

import (
	"archive/tar"
	"errors"
)

func mknod(string, *tar.Header) error { return errors.New("mknod: not supported") }
