//go:build ceph && pacific && cgo

package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	cephtest "github.com/strata-project/strata/test/ceph"
)

// TestCephErofs: an erofs build goes through the same upload, read-back
// verification and snapshots as a squashfs one (its own cluster, ~2 s, so
// that it runs alone with -run TestCephErofs).
func TestCephErofs(t *testing.T) {
	needTools(t, "mkfs.erofs", "fsck.erofs", "tar")
	env := &cephEnv{c: cephtest.Start(t)}
	conn := env.connect(t)
	src := bigTree(t, 6<<20)
	tarball := filepath.Join(t.TempDir(), "root.tar")
	if err := os.WriteFile(tarball, tarOf(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := Ref{Pool: "rbd", Image: "erofs"}
	var progress bytes.Buffer
	res, fsFile := env.build(t, conn, tarball, ref, BuildOptions{
		FS: FSErofs, Erofs: ErofsOptions{Compressor: "lz4hc,9"}, Snapshot: "v1", Protect: true,
		Progress: NewProgress(&progress, false),
	})
	if res.FS != FSErofs || !res.Verified || !res.Protected || res.SquashfsSize != int64(len(fsFile)) || res.ImageSize != AutoSize(int64(len(fsFile))) {
		t.Errorf("result %+v for a %d-byte erofs", res, len(fsFile))
	}
	if !bytes.Contains(progress.Bytes(), []byte("erofs lz4hc,9")) || !bytes.Contains(progress.Bytes(), []byte("verify: done")) {
		t.Errorf("progress:\n%s", progress.String())
	}
	snap := Ref{Pool: "rbd", Image: "erofs", Snapshot: "v1"}
	if got := env.readImage(t, snap, int64(len(fsFile))); !bytes.Equal(got, fsFile) {
		t.Fatal("the snapshot differs from the erofs file")
	}
	in, err := conn.Info(snap)
	if err != nil {
		t.Fatal(err)
	}
	if in.Erofs == nil || in.Squashfs != nil || !in.Erofs.Compressed || in.Erofs.Bytes() != uint64(len(fsFile)) {
		t.Errorf("info: erofs %+v, squashfs %+v (%s)", in.Erofs, in.Squashfs, in.NotSquashfs)
	}
	kept := filepath.Join(t.TempDir(), "kept.erofs")
	os.WriteFile(kept, fsFile, 0o644)
	sameTree(t, src, extractErofs(t, kept))

	// An erofs file made before is written as it is, without mkfs.erofs.
	ref2 := Ref{Pool: "rbd", Image: "erofs-file"}
	res2, err := conn.Build(context.Background(), kept, ref2, BuildOptions{Erofs: ErofsOptions{Mkfs: "/nonexistent"}})
	if err != nil || res2.FS != FSErofs || !res2.Verified || res2.Squashfs != 0 {
		t.Fatalf("build of an erofs file: %+v, %v", res2, err)
	}
	if got := env.readImage(t, ref2, int64(len(fsFile))); !bytes.Equal(got, fsFile) {
		t.Error("the image differs from the erofs file")
	}
	env.rm(t, ref2)
}
