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

// TestCLI runs strata-image's commands against a throwaway cluster.
func TestCLI(t *testing.T) {
	c := cephtest.Start(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("node\n"), 0o644)
	conn := []string{"--conf", c.Conf, "--id", c.Build.ID, "--keyring", c.Build.Keyring}
	mons := []string{"--mon", c.MonHost, "--id", c.Node.ID, "--keyring", c.Node.Keyring}

	// build, as JSON, with progress lines on stderr.
	code, out, errOut := runCmd(append([]string{"build", src, "--pool", "rbd", "--image", "cli",
		"--snapshot", "v1", "--protect", "--no-compress-inodes", "--no-compress-xattrs",
		"--progress", "lines", "--json", "--sha256"}, conn...)...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", code, out, errOut)
	}
	var b buildOut
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("build --json: %v\n%s", err, out)
	}
	if b.Image != "cli" || b.Snapshot != "v1" || !b.Protected || b.ImageSize != 4<<20 || len(b.SHA256) != 64 || !b.Verified {
		t.Errorf("build result %+v", b)
	}
	for _, want := range []string{"squashfs: started", "upload: done", "verify: done"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut)
		}
	}

	// Again: refused; the human output of a forced rebuild, with a bar.
	code, _, errOut = runCmd(append([]string{"build", src, "--pool", "rbd", "--image", "cli"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "strata-image build: image rbd/cli already exists: --force replaces it") {
		t.Errorf("second build: exit %d: %s", code, errOut)
	}
	code, out, errOut = runCmd(append([]string{"build", src, "--pool", "rbd", "--image", "cli", "--force",
		"--snapshot", "v1", "--progress", "bar"}, conn...)...)
	if code != 0 || !strings.Contains(out, "replaced rbd/cli@v1:") || !strings.Contains(out, "nodes map it read-only as rbd/cli@v1") || !strings.Contains(errOut, "\rupload") {
		t.Errorf("forced build: exit %d\n%s\n%q", code, out, errOut)
	}

	// info and ls as the node user, with monitors instead of a conf.
	code, out, errOut = runCmd(append([]string{"info", "rbd/cli"}, mons...)...)
	for _, want := range []string{"image:      rbd/cli", "features:   layering", "squashfs:   yes, 4.0, zstd", "snapshots:  v1 (id", "watchers:   none"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("info: exit %d, %q lacks %q (%s)", code, out, want, errOut)
		}
	}
	code, out, _ = runCmd(append([]string{"info", "--json", "rbd/cli@v1"}, mons...)...)
	var in infoOut
	if err := json.Unmarshal([]byte(out), &in); code != 0 || err != nil || in.Squashfs == nil || in.Snapshot != "v1" || len(in.Snapshots) != 1 {
		t.Errorf("info --json: exit %d %v %s", code, err, out)
	}
	code, out, _ = runCmd(append([]string{"ls"}, mons...)...)
	if code != 0 || strings.TrimSpace(out) != "cli" {
		t.Errorf("ls: exit %d %q", code, out)
	}

	// The node user may not remove; errors name the cap.
	code, _, errOut = runCmd(append([]string{"rm", "--force", "rbd/cli"}, mons...)...)
	if code != 1 || !strings.Contains(errOut, "permission denied: client.strata-node") || !strings.Contains(errOut, "osd 'profile rbd pool=rbd'") {
		t.Errorf("rm as node: exit %d %s", code, errOut)
	}
	code, _, errOut = runCmd(append([]string{"ls", "nopool"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, `no such pool "nopool" (pools: rbd)`) {
		t.Errorf("ls nopool: exit %d %s", code, errOut)
	}
	code, _, errOut = runCmd("ls", "--mon", "127.0.0.1:1", "--keyring", c.Admin.Keyring, "--timeout", "1s")
	if code != 1 || !strings.Contains(errOut, "cannot reach the Ceph cluster at 127.0.0.1:1 within 1s") {
		t.Errorf("unreachable: exit %d %s", code, errOut)
	}

	// rm: refused with snapshots, then --force.
	code, _, errOut = runCmd(append([]string{"rm", "rbd/cli"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "has snapshots (v1): --force removes them too") {
		t.Errorf("rm: exit %d %s", code, errOut)
	}
	code, out, errOut = runCmd(append([]string{"rm", "--force", "rbd/cli"}, conn...)...)
	if code != 0 || out != "removed rbd/cli\n" {
		t.Errorf("rm --force: exit %d %q %s", code, out, errOut)
	}
	code, _, errOut = runCmd(append([]string{"info", "rbd/cli"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "no such image") {
		t.Errorf("info after rm: exit %d %s", code, errOut)
	}
}
