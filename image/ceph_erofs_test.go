//go:build ceph && pacific && cgo

package image

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestCephObjectLayout: --object-size and striping reach librbd's image
// creation, as rbd info and the data objects show, and the image reads
// back the same.
func TestCephObjectLayout(t *testing.T) {
	needTools(t, "mksquashfs")
	env := &cephEnv{c: cephtest.Start(t)}
	conn := env.connect(t)
	src := bigTree(t, 6<<20)
	for _, c := range []struct {
		name          string
		layout        ObjectLayout
		order, su, sc int
		striped       bool
	}{
		// rbd info shows a stripe unit and count only with the feature.
		{"small-objects", ObjectLayout{ObjectSize: 1 << 20}, 20, 0, 0, false},
		{"striped", ObjectLayout{ObjectSize: 4 << 20, StripeUnit: 64 << 10, StripeCount: 8}, 22, 64 << 10, 8, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := Ref{Pool: "rbd", Image: c.name}
			res, sq := env.build(t, conn, src, ref, BuildOptions{Layout: c.layout, Snapshot: "v1"})
			if !res.Verified || res.Layout != c.layout {
				t.Errorf("result %+v", res)
			}
			var info struct {
				Order       int      `json:"order"`
				StripeUnit  int      `json:"stripe_unit"`
				StripeCount int      `json:"stripe_count"`
				Features    []string `json:"features"`
				Prefix      string   `json:"block_name_prefix"`
			}
			out := env.c.Run(t, "rbd", "info", "--format", "json", ref.String())
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("rbd info: %v: %s", err, out)
			}
			striped := slices.Contains(info.Features, "striping")
			if info.Order != c.order || info.StripeUnit != c.su || info.StripeCount != c.sc || striped != c.striped || !slices.Contains(info.Features, "layering") {
				t.Errorf("rbd info: %+v, want order %d, stripe %d x %d, striping %v", info, c.order, c.su, c.sc, c.striped)
			}
			if got := env.readImage(t, Ref{Pool: "rbd", Image: c.name, Snapshot: "v1"}, int64(len(sq))); !bytes.Equal(got, sq) {
				t.Error("the image differs from the squashfs")
			}
			// The data objects: at least one per object size of squashfs
			// (small objects), or StripeCount of them (striped).
			objs := 0
			for _, o := range strings.Fields(env.c.Run(t, "rados", "-p", "rbd", "ls")) {
				if strings.HasPrefix(o, info.Prefix+".") {
					objs++
				}
			}
			if want := max(len(sq)>>c.order, c.sc); objs < want {
				t.Errorf("%d data objects, want at least %d", objs, want)
			}
			t.Logf("%s: %d-byte squashfs in %d objects", c.layout, len(sq), objs)
		})
	}
	// librbd refuses what Validate lets through? Nothing: a bad layout
	// never reaches it.
	if _, err := conn.Build(context.Background(), src, Ref{Pool: "rbd", Image: "bad"}, BuildOptions{Layout: ObjectLayout{StripeUnit: 8 << 20}}); err == nil || !strings.Contains(err.Error(), "stripe unit") {
		t.Errorf("bad layout: %v", err)
	}
}
