//go:build !linux

package image

import (
	"errors"
	"os"
)

func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
}

func diskFree(string) (uint64, error) {
	return 0, errors.New("image: disk space is only known on linux")
}
