//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/ocilayout"
	"github.com/strata-project/strata/test/testbed"
)

// TestOCIImageBoots is issue 13 end to end: the testbed's own Debian root
// becomes an OCI layout (the root as one layer, a second layer that adds
// a file and whites one out), `strata-image build oci:... --output` makes
// the squashfs and --print-definition the definition, and that container
// boots in the testbed under the loopback scheme.
func TestOCIImageBoots(t *testing.T) {
	tmp := t.TempDir()
	lay := filepath.Join(tmp, "layout")
	ocilayout.OfRoot(t, testbed.DefaultRootDir(), lay)

	bin := filepath.Join(tmp, "strata-image")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/strata-image")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // --output needs no Ceph
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building strata-image: %v\n%s", err, out)
	}
	sqfs := filepath.Join(tmp, "oci.sqfs")
	// --no-verity: the testbed runs on the host's kernel, which has no
	// device-mapper (verified images boot in test/vm's TestVerity).
	cmd := exec.Command(bin, "build", "oci:"+lay+":"+ocilayout.Tag, "--output", sqfs, "--no-verity", "--print-definition", "--progress", "lines")
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
	if out := in("/bin/cat", ocilayout.AddedFile); out != ocilayout.AddedContent {
		t.Errorf("the upper layer's file reads %q", out)
	}
	if out := in("/bin/sh", "-c", "test -e "+ocilayout.WhitedOutFile+" && echo present || echo gone"); out != "gone" {
		t.Errorf("%s, whited out by the upper layer, is %s", ocilayout.WhitedOutFile, out)
	}
	if out := in("/bin/systemctl", "is-system-running", "--wait"); out != "running" && out != "degraded" {
		t.Errorf("systemd in the container: %q", out)
	}
	n.run("systemctl", "stop", "systemd-nspawn@oci.service")
}
