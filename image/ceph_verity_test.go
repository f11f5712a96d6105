//go:build ceph && pacific && cgo

package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ceph/go-ceph/rbd"

	"github.com/strata-project/strata/internal/verity"
)

// A --verity build: the image holds the squashfs, the hash tree at its end
// rounded up to a block and the trailer in the last block; the real
// veritysetup verifies a copy of it with the trailer's parameters; Info
// and the image's metadata say the same root hash; a rebuild without
// --verity removes both.
func (e *cephEnv) testBuildVerity(t *testing.T) {
	needTools(t, "veritysetup")
	conn := e.connect(t)
	ref := Ref{Pool: "rbd", Image: "verity"}
	var progress bytes.Buffer
	res, sq := e.build(t, conn, bigTree(t, 6<<20), ref, BuildOptions{Verity: true, Progress: NewProgress(&progress, false)})
	v := res.Verity
	if v == nil || v.HashOffset != uint64(len(sq)+4095)/4096*4096 || !res.Verified {
		t.Fatalf("result %+v for a %d-byte squashfs", res, len(sq))
	}
	if !strings.Contains(progress.String(), "the hash tree and trailer read back") {
		t.Errorf("progress does not say the tree was read back:\n%s", progress.String())
	}
	back := e.readImage(t, ref, int64(res.ImageSize))
	if !bytes.Equal(back[:len(sq)], sq) {
		t.Fatal("the image differs from the squashfs")
	}
	got, err := verity.ParseTrailer(back[len(back)-verity.TrailerSize:], uint64(len(back)))
	if err != nil || !bytes.Equal(got.RootHash, v.RootHash) {
		t.Fatalf("trailer: %+v, %v", got, err)
	}
	file := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(file, back, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("veritysetup", "verify", "--hash-offset="+strconv.FormatUint(got.HashOffset, 10),
		file, file, got.RootHashHex()).CombinedOutput()
	if err != nil {
		t.Errorf("veritysetup verify of the image: %v\n%s", err, out)
	}
	in, err := conn.Info(ref)
	if err != nil || in.Verity == nil || in.Verity.RootHashHex() != v.RootHashHex() {
		t.Errorf("info: %+v (%s), %v", in.Verity, in.NoVerity, err)
	}
	ioc := e.rawIOContext(t, ref.Pool)
	img, err := rbd.OpenImageReadOnly(ioc, ref.Image, rbd.NoSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := img.GetMetadata(MetaVerity)
	if err != nil || !strings.Contains(meta, `"root_hash":"`+v.RootHashHex()+`"`) {
		t.Errorf("metadata %s: %q, %v", MetaVerity, meta, err)
	}
	img.Close()

	// A rebuild without --verity leaves neither a trailer nor the
	// metadata: no stale root hash for an admin to read.
	if _, err := conn.Build(context.Background(), testTree(t), ref, BuildOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if in, err = conn.Info(ref); err != nil || in.Verity != nil || in.Metadata[MetaVerity] != "" {
		t.Errorf("after a rebuild without verity: verity %+v, metadata %v, %v", in.Verity, in.Metadata, err)
	}
}
