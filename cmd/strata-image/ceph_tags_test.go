//go:build ceph && !(pacific && cgo)

package main

import "testing"

func TestCLI(t *testing.T) {
	t.Fatal("the Ceph tests need cgo and the Ceph release tag: CGO_ENABLED=1 go test -tags 'ceph pacific' ./cmd/strata-image")
}
