package image

import (
	"archive/tar"

	"golang.org/x/sys/unix"
)

func mknod(target string, h *tar.Header) error {
	mode := uint32(h.Mode & 0o7777)
	switch h.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	return unix.Mknod(target, mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
}
