//go:build ceph && !(pacific && cgo)

package image

import "testing"

// The Ceph tests were asked for (-tags ceph) but cannot be built: fail,
// never pass quietly with nothing run.
func TestCeph(t *testing.T) {
	t.Fatal("the Ceph tests need cgo and the Ceph release tag: CGO_ENABLED=1 go test -tags 'ceph pacific' ./image")
}
