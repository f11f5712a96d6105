// Package image builds squashfs images into RBD with librbd: the admin-side
// half of Strata's RBD scheme (squashfs on a shared, read-only RBD image,
// under a tmpfs overlay on each node).
//
// A build makes a squashfs from a directory or a tarball with mksquashfs
// (into a temporary file: mksquashfs needs a seekable output), creates an
// image that many nodes can map read-only at once (feature layering only, no
// exclusive-lock, object-map or fast-diff: what `rbd create --image-shared`
// gives), writes the squashfs with several writes in flight, reads it back to
// compare size and SHA-256, and optionally snapshots and protects it so that
// nodes map an immutable image@snap. List, Info and Remove complete it.
//
// Talking to Ceph needs go-ceph (cgo, librados, librbd) built with the tag
// of the Ceph release, `-tags pacific` for Debian 12's Ceph 16.2. Without cgo
// or that tag, Connect returns ErrNoCeph and everything else in this package
// (making squashfs files, reading their superblocks, progress output, image
// specs, error messages) still works: the rest of Strata builds with
// CGO_ENABLED=0 and never imports go-ceph.
//
// Every error from Ceph is turned into a *Error whose message says what to
// do: no such pool, which cap the user lacks, the cluster unreachable within
// the time-out. errors.Is matches it against ErrNoSuchPool,
// ErrPermissionDenied, ErrUnreachable and the other sentinels.
package image
