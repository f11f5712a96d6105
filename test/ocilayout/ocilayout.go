// Package ocilayout makes, for the tests that boot a built OCI image (the
// testbed's loopback scheme, the VM's RBD one), an OCI image layout out of
// a booting root directory: the root as the bottom layer, and on top a
// layer that adds a file and whites one out, so a boot shows both.
package ocilayout

import (
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	Tag = "boot" // the layout's one image, as oci:DIR:boot

	AddedFile     = "/etc/strata-oci" // added by the top layer
	AddedContent  = "from the upper layer"
	WhitedOutFile = "/etc/motd" // in the root, deleted by the top layer
)

// OfRoot writes at dir a layout tagged Tag: root (tar with owners and
// xattrs) as the bottom layer, the top layer adding AddedFile and whiting
// out WhitedOutFile. It returns the image's manifest digest.
func OfRoot(t testing.TB, root, dir string) v1.Hash {
	t.Helper()
	tmp := t.TempDir()
	base := filepath.Join(tmp, "root.tar")
	tar := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", root, "-cf", base, ".")
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar of %s: %v\n%s", root, err, out)
	}
	if _, err := os.Lstat(filepath.Join(root, WhitedOutFile)); err != nil {
		t.Fatalf("the root must hold %s for the whiteout to show: %v", WhitedOutFile, err)
	}
	top := filepath.Join(tmp, "top")
	etc := filepath.Join(top, "etc")
	must(t, os.MkdirAll(etc, 0o755))
	must(t, os.WriteFile(filepath.Join(top, AddedFile), []byte(AddedContent), 0o644))
	must(t, os.WriteFile(filepath.Join(etc, ".wh."+filepath.Base(WhitedOutFile)), nil, 0o644))
	topTar := filepath.Join(tmp, "top.tar")
	if out, err := exec.Command("tar", "--numeric-owner", "--owner=0", "--group=0", "-C", top, "-cf", topTar,
		"."+AddedFile, "./etc/.wh."+filepath.Base(WhitedOutFile)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	var layers []v1.Layer
	for _, f := range []string{base, topTar} {
		l, err := tarball.LayerFromFile(f, tarball.WithCompressionLevel(gzip.BestSpeed))
		must(t, err)
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/bash"}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	p, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": Tag})))
	dig, err := img.Digest()
	must(t, err)
	return dig
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
