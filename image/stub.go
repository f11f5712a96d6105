//go:build !(cgo && pacific)

package image

import "context"

// Conn is a connection to a Ceph cluster. This build has no Ceph support:
// every method fails with ErrNoCeph.
type Conn struct{}

// Connect fails: this build has no Ceph support (it needs cgo and a Ceph
// release tag such as -tags pacific).
func Connect(ctx context.Context, opts ConnectOptions) (*Conn, error) { return nil, ErrNoCeph }

// MonHost is empty.
func (c *Conn) MonHost() string { return "" }

// Close does nothing.
func (c *Conn) Close() {}

func (c *Conn) checkTarget(ref Ref, force bool) error { return ErrNoCeph }

// Upload fails with ErrNoCeph.
func (c *Conn) Upload(ctx context.Context, file string, ref Ref, opts UploadOptions) (*BuildResult, error) {
	return nil, ErrNoCeph
}

// List fails with ErrNoCeph.
func (c *Conn) List(ref Ref) ([]ListEntry, error) { return nil, ErrNoCeph }

// Info fails with ErrNoCeph.
func (c *Conn) Info(ref Ref) (*ImageInfo, error) { return nil, ErrNoCeph }

// Remove fails with ErrNoCeph.
func (c *Conn) Remove(ref Ref, force bool) error { return ErrNoCeph }
