//go:build vm

package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/image"
)

// TestVerity runs verified layers (docs/schemes/verity.md) through the
// stock kernel's dm-verity, which the host does not have: a loop image
// built with --verity boots under its pinned root hash and is released
// completely; a wrong pinned hash is refused before anything is mounted;
// one flipped byte in the data area gives an I/O error when that block is
// read, while the blocks around it read fine. Then the same from RBD, on
// the same VM (TestVerity/RBD: verity_rbd_test.go).
func TestVerity(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	t0 := time.Now()
	res, err := image.BuildFile(context.Background(), rootSqfs, good, image.BuildOptions{Verity: true})
	if err != nil {
		t.Fatal(err)
	}
	root := res.Verity.RootHashHex()
	t.Logf("verity image of %s: %s, root hash %s", image.FormatBytes(res.SquashfsSize), time.Since(t0).Round(time.Millisecond), root)
	signedRoot := signedImages(t, dir)
	// One VM for all: loop images from dir, RBD images from the cluster.
	e := newRBDCluster(t)
	e.boot(Options{Binds: append(strataBinds(), Bind{Host: dir, Guest: "/srv/images"})})

	t.Run("Boots", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{"v": verityDefinition("/srv/images/good.img", root)})
		d := e.startContainer("v")
		t.Logf("start (loop, verity, mounts, nested boot): %s", d.Round(time.Millisecond))
		e.checkMachineRunning("v")
		// The layer is mounted from the verity device, named after the
		// attachment and the hash.
		src := e.must("sh", "-c", "findmnt -n -o SOURCE --target /run/strata/layers/verity_loop_good.img_*")
		name := e.must("sh", "-c", "cat /sys/block/$(basename $(readlink -f "+strings.TrimSpace(src)+"))/dm/name")
		if !strings.HasPrefix(strings.TrimSpace(name), "verity_loop_good.img_") {
			t.Errorf("the layer is mounted from %s (dm name %q), want the verity device", src, name)
		}
		if j := e.journal(); !strings.Contains(j, "checked against root hash "+root) {
			t.Errorf("the journal does not say the device was opened against %s:\n%s", root, j)
		}
		e.stop("v")
		e.verityReleased()
	})

	t.Run("WrongRootHash", func(t *testing.T) {
		e.t = t
		other := strings.Repeat("0", 64)
		e.define(map[string]string{"w": verityDefinition("/srv/images/good.img", other)})
		out, code, _ := e.try(6*time.Minute, "systemctl", "start", "systemd-nspawn@w.service")
		if code == 0 {
			t.Fatalf("a wrong pinned root hash started: %s", out)
		}
		st, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=30", "systemd-nspawn@w.service")
		if !strings.Contains(st, "not to the pinned root hash "+other) {
			t.Errorf("systemctl status systemd-nspawn@w does not say why:\n%s", st)
		}
		if m := e.must("sh", "-c", "grep -c /run/strata/layers /proc/self/mountinfo || true"); strings.TrimSpace(m) != "0" {
			t.Errorf("a layer was mounted: %s", m)
		}
		e.must("systemctl", "reset-failed")
		e.verityReleased()
	})

	t.Run("FlippedDataByte", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{})
		// A copy with one byte flipped in data block 2048 (8 MiB in); the
		// top of the tree is unchanged, so the open succeeds and the
		// kernel catches the block when it is read.
		e.must("sh", "-c", `cp /srv/images/good.img /var/tmp/bad.img &&
b=$(dd if=/var/tmp/bad.img bs=1 skip=8388708 count=1 status=none | od -An -tu1 | tr -d ' ') &&
printf "$(printf '\\%03o' $(( b ^ 1 )))" | dd of=/var/tmp/bad.img bs=1 seek=8388708 conv=notrunc status=none`)
		loop := strings.TrimSpace(e.must("losetup", "-r", "-f", "--show", "/var/tmp/bad.img"))
		defer e.try(time.Minute, "losetup", "-d", loop)
		e.must("/usr/libexec/strata/strata-helper", "verity-open", "--name=vtest", "--device="+loop, "--root-hash="+root)
		for _, blk := range []int{0, 2047, 2049} {
			e.must("dd", "if=/dev/mapper/vtest", "of=/dev/null", "bs=4096", "iflag=direct", "count=1", fmt.Sprintf("skip=%d", blk))
		}
		out, code, _ := e.try(time.Minute, "dd", "if=/dev/mapper/vtest", "of=/dev/null", "bs=4096", "iflag=direct", "count=1", "skip=2048")
		if code == 0 || !strings.Contains(out, "Input/output error") {
			t.Errorf("reading the modified block: exit %d, %s; want an I/O error", code, out)
		}
		if k := e.must("dmesg"); !strings.Contains(k, "data block 2048 is corrupted") {
			t.Errorf("the kernel log does not name the corrupted block:\n%s", lastLines(k, 20))
		}
		e.must("/usr/libexec/strata/strata-helper", "verity-close", "--name=vtest")
		if out := e.must("sh", "-c", "ls /dev/mapper"); strings.Contains(out, "vtest") {
			t.Errorf("/dev/mapper/vtest left after verity-close: %s", out)
		}
	})

	t.Run("FlippedTreeByte", func(t *testing.T) {
		e.t = t
		// One byte flipped in the lowest level of the tree, in the hash
		// block that covers data blocks 2048-2175 (the tree has two
		// levels: the top block, then the data blocks' hashes): the top
		// still matches, so the open succeeds, and reading a block whose
		// hash block is modified fails.
		off := res.Verity.HashOffset + 4096 + 4096 + 16*4096 + 7
		e.must("sh", "-c", fmt.Sprintf(`cp /srv/images/good.img /var/tmp/badtree.img &&
b=$(dd if=/var/tmp/badtree.img bs=1 skip=%[1]d count=1 status=none | od -An -tu1 | tr -d ' ') &&
printf "$(printf '\\%%03o' $(( b ^ 1 )))" | dd of=/var/tmp/badtree.img bs=1 seek=%[1]d conv=notrunc status=none`, off))
		loop := strings.TrimSpace(e.must("losetup", "-r", "-f", "--show", "/var/tmp/badtree.img"))
		defer e.try(time.Minute, "losetup", "-d", loop)
		e.must("/usr/libexec/strata/strata-helper", "verity-open", "--name=vtree", "--device="+loop, "--root-hash="+root)
		e.must("dd", "if=/dev/mapper/vtree", "of=/dev/null", "bs=4096", "iflag=direct", "count=1", "skip=2047")
		out, code, _ := e.try(time.Minute, "dd", "if=/dev/mapper/vtree", "of=/dev/null", "bs=4096", "iflag=direct", "count=1", "skip=2048")
		if code == 0 || !strings.Contains(out, "Input/output error") {
			t.Errorf("reading a block whose hash block is modified: exit %d, %s; want an I/O error", code, out)
		}
		e.must("/usr/libexec/strata/strata-helper", "verity-close", "--name=vtree")
	})

	t.Run("Truncated", func(t *testing.T) {
		e.t = t
		// Cut after the top of the tree: the trailer is gone with the
		// rest, and the open is refused before any device is made.
		e.must("sh", "-c", fmt.Sprintf("cp /srv/images/good.img /var/tmp/cut.img && truncate -s %d /var/tmp/cut.img", res.Verity.HashOffset+2*4096))
		loop := strings.TrimSpace(e.must("losetup", "-r", "-f", "--show", "/var/tmp/cut.img"))
		defer e.try(time.Minute, "losetup", "-d", loop)
		out, code, _ := e.try(time.Minute, "/usr/libexec/strata/strata-helper", "verity-open", "--name=vcut", "--device="+loop, "--root-hash="+root)
		if code == 0 || !strings.Contains(out, "no verity trailer") {
			t.Errorf("verity-open of a truncated image: exit %d, %s", code, out)
		}
		if out := e.must("sh", "-c", "ls /sys/block | grep '^dm-' || true"); strings.TrimSpace(out) != "" {
			t.Errorf("a device-mapper device was made: %s", out)
		}
	})

	// Signed root hashes and a trust store (verity_sign_test.go).
	t.Run("Signed", func(t *testing.T) { e.veritySigned(t, signedRoot) })
	// From RBD: boots, sharing, day two, cycles, a wrong hash
	// (verity_rbd_test.go).
	t.Run("RBD", e.verityRBD)
}

// verityReleased: no verity device, loop device, attachment record or
// active Strata unit is left.
func (e *rbdEnv) verityReleased() {
	e.t.Helper()
	e.waitReleased(2 * time.Minute)
	for what, cmd := range map[string]string{
		"device-mapper devices": "ls /sys/block | grep '^dm-' || true",
		"loop devices":          "losetup -n -O NAME,BACK-FILE | grep /srv/images || true",
		"attachment records":    "ls /run/strata/state/attachments 2>/dev/null || true",
	} {
		if out := strings.TrimSpace(e.must("sh", "-c", cmd)); out != "" {
			e.t.Errorf("%s left: %s", what, out)
		}
	}
}

// verityDefinition is an overlay over an image file verified against
// rootHash.
func verityDefinition(file, rootHash string) string {
	return overlayDefinition(map[string]any{
		"kind": "attach",
		"attach": map[string]any{
			"fs_type": "squashfs",
			"attach":  map[string]any{"kind": "loopback", "loopback": map[string]any{"base": "root", "path": file}},
			"verity":  map[string]any{"root_hash": rootHash},
		},
	})
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
