//go:build integration

package integration

import (
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-project/strata/test/testbed"
)

// TestOCIImageBoots is issue 13 end to end: the testbed's own Debian root
// becomes an OCI layout (the root as one layer, a second layer that adds
// a file and whites one out), `strata-image build oci:... --output` makes
// the squashfs and --print-definition the definition, and that container
// boots in the testbed under the loopback scheme.
func TestOCIImageBoots(t *testing.T) {
	tmp := t.TempDir()
	lay := ociLayoutOfRoot(t, testbed.DefaultRootDir(), filepath.Join(tmp, "layout"))

	bin := filepath.Join(tmp, "strata-image")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/strata-image")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // --output needs no Ceph
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building strata-image: %v\n%s", err, out)
	}
	sqfs := filepath.Join(tmp, "oci.sqfs")
	cmd := exec.Command(bin, "build", "oci:"+lay+":boot", "--output", sqfs, "--print-definition", "--progress", "lines")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	def, err := cmd.Output()
	if err != nil {
		t.Fatalf("strata-image build: %v\n%s", err, stderr.String())
	}
	t.Logf("strata-image build:\n%s", stderr.String())
	if !strings.Contains(stderr.String(), "the image holds systemd: it boots") || !strings.Contains(string(def), `"systemd": true`) {
		t.Fatalf("the testbed root was not seen as booting:\n%s\n%s", stderr.String(), def)
	}

	n := boot(t, testbed.Options{Binds: []testbed.Bind{{Host: sqfs, Guest: "/srv/images/oci.sqfs", ReadOnly: true}}})
	n.define("oci.json", strings.Replace(string(def), sqfs, "/srv/images/oci.sqfs", 1))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@oci.service")
	in := func(args ...string) string {
		return n.run(append([]string{"systemd-run", "--machine=oci", "--wait", "--pipe", "--quiet"}, args...)...)
	}
	if out := in("/bin/cat", "/etc/strata-oci"); out != "from the upper layer" {
		t.Errorf("the upper layer's file reads %q", out)
	}
	if out := in("/bin/sh", "-c", "test -e /etc/motd && echo present || echo gone"); out != "gone" {
		t.Errorf("/etc/motd, whited out by the upper layer, is %s", out)
	}
	if out := in("/bin/systemctl", "is-system-running", "--wait"); out != "running" && out != "degraded" {
		t.Errorf("systemd in the container: %q", out)
	}
	n.run("systemctl", "stop", "systemd-nspawn@oci.service")
}

// ociLayoutOfRoot writes an OCI layout tagged "boot" at dir: root (tar
// with owners and xattrs) as the bottom layer, and on top a layer adding
// /etc/strata-oci and whiting out /etc/motd.
func ociLayoutOfRoot(t *testing.T, root, dir string) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "root.tar")
	tar := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", root, "-cf", base, ".")
	if out, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar of the testbed root: %v\n%s", err, out)
	}
	top := filepath.Join(t.TempDir(), "top")
	must(t, os.MkdirAll(filepath.Join(top, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(top, "etc", "strata-oci"), []byte("from the upper layer"), 0o644))
	must(t, os.WriteFile(filepath.Join(top, "etc", ".wh.motd"), nil, 0o644))
	topTar := filepath.Join(t.TempDir(), "top.tar")
	if out, err := exec.Command("tar", "--numeric-owner", "--owner=0", "--group=0", "-C", top, "-cf", topTar, "./etc/strata-oci", "./etc/.wh.motd").CombinedOutput(); err != nil {
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
	must(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "boot"})))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
