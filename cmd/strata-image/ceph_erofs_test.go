//go:build ceph && pacific && cgo

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cephtest "github.com/strata-project/strata/test/ceph"
)

// TestCLIErofsStriped: build --fs erofs with an object layout, as the CLI
// reports it (text and JSON), and info of the result.
func TestCLIErofsStriped(t *testing.T) {
	c := cephtest.Start(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("node\n"), 0o644)
	conn := []string{"--conf", c.Conf, "--id", c.Build.ID, "--keyring", c.Build.Keyring}

	code, out, errOut := runCmd(append([]string{"build", src, "--pool", "rbd", "--image", "ero",
		"--fs", "erofs", "--erofs-compress", "lz4", "--object-size", "1M", "--stripe-unit", "64K", "--stripe-count", "4",
		"--snapshot", "v1", "--progress", "none"}, conn...)...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"built rbd/ero@v1: ", " erofs in a 4.0 MiB image", "layout: 1.0 MiB objects, 64.0 KiB stripe unit over 4",
		"striped: nodes need Linux 4.17 or later to map it (krbd)", "verified: read back"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCmd(append([]string{"build", src, "--pool", "rbd", "--image", "ero2", "--fs", "erofs",
		"--object-size", "8M", "--progress", "none", "--json"}, conn...)...)
	var b buildOut
	if code != 0 || json.Unmarshal([]byte(out), &b) != nil {
		t.Fatalf("build --json: exit %d\n%s\n%s", code, out, errOut)
	}
	if b.FS != "erofs" || b.ObjectSize != 8<<20 || b.StripeUnit != 8<<20 || b.StripeCount != 1 || !b.Verified {
		t.Errorf("build --json: %+v", b)
	}
	code, out, errOut = runCmd(append([]string{"info", "rbd/ero@v1"}, conn...)...)
	if code != 0 || !strings.Contains(out, "erofs:") || !strings.Contains(out, "1.0 MiB objects") || strings.Contains(out, "squashfs:") {
		t.Errorf("info: exit %d\n%s\n%s", code, out, errOut)
	}
}
