package pod

import "errors"

// Sentinel errors of the package.
var (
	// ErrBadSpec: a pod spec that edgenode cannot run as written.
	ErrBadSpec = errors.New("pod: bad spec")
	// ErrBadQuantity: a resource quantity that does not parse.
	ErrBadQuantity = errors.New("pod: bad quantity")
	// ErrImageNotFound: the image is not in the store and may not be pulled.
	ErrImageNotFound = errors.New("pod: image not found")
	// ErrNoRuntime: the OCI runtime binary is missing.
	ErrNoRuntime = errors.New("pod: OCI runtime not found")
	// ErrNotFound: no such pod or container.
	ErrNotFound = errors.New("pod: not found")
)
