//go:build ceph && pacific && cgo

package image

import (
	"context"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An OCI layout built into RBD: the squashfs holds the flattened tree,
// the image's metadata the source, digest and platform (Info shows them,
// and so does `rbd image-meta`), and a rebuild from a directory removes
// them.
func (e *cephEnv) testBuildFromOCI(t *testing.T) {
	conn := e.connect(t)
	img := layeredImage(t)
	dig, _ := img.Digest()
	lay := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, lay, map[string]v1.Image{"v1": img})
	src := "oci:" + lay + ":v1"
	ref := Ref{Pool: "rbd", Image: "from-oci"}
	res, _ := e.build(t, conn, src, ref, BuildOptions{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}})
	if res.OCI == nil || res.OCI.Digest != dig.String() || res.OCI.Systemd {
		t.Errorf("OCI result %+v", res.OCI)
	}
	want := map[string]string{MetaOCISource: src, MetaOCIDigest: dig.String(), MetaOCIPlatform: "linux/amd64"}
	in, err := conn.Info(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Metadata, want) {
		t.Errorf("metadata %v, want %v", in.Metadata, want)
	}
	out, err := e.c.Command("rbd", "image-meta", "get", ref.String(), MetaOCIDigest).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != dig.String() {
		t.Errorf("rbd image-meta get: %v %s", err, out)
	}
	// The tree, read back from the image through unsquashfs.
	sq := filepath.Join(t.TempDir(), "back.sqfs")
	if out, err := e.c.Command("rbd", "export", "--no-progress", ref.String(), sq).CombinedOutput(); err != nil {
		t.Fatalf("rbd export: %v\n%s", err, out)
	}
	x := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command("unsquashfs", "-no-progress", "-d", x, sq).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	wantTree, mtimes := flatWant()
	compareTree(t, "from RBD", describeTree(t, x, mtimes), wantTree)

	if _, err := conn.Build(context.Background(), testTree(t), ref, BuildOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if in, err = conn.Info(ref); err != nil || len(in.Metadata) != 0 {
		t.Errorf("after a rebuild from a directory: metadata %v, %v", in.Metadata, err)
	}
	e.rm(t, ref)
}
