package image

import "errors"

// Sentinel errors of the package.
var (
	// ErrBadImage: an image archive or manifest that cannot be used.
	ErrBadImage = errors.New("image: bad image")
	// ErrNotFound: no such image.
	ErrNotFound = errors.New("image: not found")
	// ErrUnsafePath: an archive entry that would write outside its root.
	ErrUnsafePath = errors.New("image: unsafe path in archive")
)
