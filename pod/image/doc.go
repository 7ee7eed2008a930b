// Package image is edgenode's image store: OCI and Docker images pulled
// from registries or imported from archives, each unpacked once into a
// flattened root filesystem that pods' containers start from. The pod
// module's runner and the "edgenode image" command share it.
//
// In: image references to pull (with the pod's pull secrets), archives to
// import (docker save, OCI archive or layout; a read-only folder of them is
// imported once per file), and removals and garbage collection.
// Out: Image records (ID, names, platform, the config a container starts
// from, size) and the rootfs path of each.
//
// Persisted under <data-dir>/images: blobs/sha256 (manifests and configs),
// rootfs/<hex> (one unpacked root filesystem per image), index.json (names
// and images, written durably), and a lock file that serialises writers
// across processes (the running node and the image command). Layer blobs
// are not kept once unpacked: on a board the disk is the scarce thing.
//
// Goroutines: none of its own; a pull runs in the caller's goroutine and
// callers pulling the same reference share it.
package image
