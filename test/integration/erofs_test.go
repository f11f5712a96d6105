//go:build integration

package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	strataimage "github.com/strata-project/strata/image"
	"github.com/strata-project/strata/test/testbed"
)

// layerDef is a container whose root is the image at path (on a loop
// device) of file system fs under a tmpfs overlay.
func layerDef(path, fs string) string {
	return fmt.Sprintf(`{
  "command": "/usr/lib/systemd/systemd",
  "systemd": true,
  "state": "created",
  "mount": {
    "kind": "overlay",
    "overlay": {
      "lower": [{
        "kind": "attach",
        "attach": {
          "fs_type": %q,
          "attach": {"kind": "loopback", "loopback": {"path": %q, "base": "root"}}
        }
      }]
    }
  }
}
`, fs, path)
}

// erofsOfRoot makes an erofs of the testbed's root, as `strata image build
// --fs erofs` does, into dir.
func erofsOfRoot(t *testing.T, dir, compressor string) string {
	t.Helper()
	out := filepath.Join(dir, "root-"+strings.ReplaceAll(compressor, ",", "-")+".erofs")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := strataimage.MakeErofs(ctx, testbed.DefaultRootDir(), out, dir, strataimage.ErofsOptions{Compressor: compressor}); err != nil {
		t.Fatal(err)
	}
	t.Logf("mkfs.erofs -z%s of the testbed root: %s", compressor, time.Since(start).Round(time.Millisecond))
	return out
}

// An erofs layer boots a container through the loopback scheme under the
// real systemd, read-only, and is released on stop.
func TestErofsLayerBoots(t *testing.T) {
	file := erofsOfRoot(t, t.TempDir(), strataimage.DefaultErofsCompressor)
	n := boot(t, testbed.Options{Binds: []testbed.Bind{{Host: file, Guest: "/srv/images/base.erofs", ReadOnly: true}}})
	n.define("ero.json", layerDef("/srv/images/base.erofs", "erofs"))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@ero.service")

	if out := n.run("systemd-run", "--machine=ero", "--wait", "--pipe", "--quiet", "/bin/cat", "/etc/os-release"); !strings.Contains(out, "Debian") {
		t.Errorf("command in the container: %q", out)
	}
	layer := n.run("findmnt", "--raw", "--noheadings", "--output=TARGET", "--types=erofs")
	if !strings.HasPrefix(layer, "/run/strata/layers/loop_base.erofs_") {
		t.Fatalf("erofs layer mounted at %q", layer)
	}
	if opts := n.run("findmnt", "--noheadings", "--output=OPTIONS", layer); !strings.HasPrefix(opts, "ro,") {
		t.Errorf("layer options %q, want ro", opts)
	}
	n.run("systemd-run", "--machine=ero", "--wait", "--pipe", "--quiet", "/bin/touch", "/written-in-overlay")
	if out, code := n.try("touch", layer+"/x"); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("the layer is writable: %d %s", code, out)
	}
	n.view()
	chain := n.strataUnits()
	n.run("systemctl", "stop", "systemd-nspawn@ero.service")
	n.waitInactive(chain...)
	n.assertReleased()
}
