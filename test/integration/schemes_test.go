//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// Every scheme of the vocabulary for real (issue 9): the bind and local
// schemes here, under the testbed's systemd, with the day-two operations
// that apply to them. loopback is daytwo_test.go's; nfs and nfs-loopback
// run in the VM (test/vm/nfs_test.go): this host's kernel, which the
// testbed shares, has no NFS client.

// imageCopy copies the base image to path inside the node: each version
// is a file of its own, as a real roll-out's would be.
func (n *node) imageCopy(path string) {
	n.t.Helper()
	n.run("mkdir", "-p", filepath.Dir(path))
	n.run("cp", "/srv/images/base.sqfs", path)
}

// tree mounts a copy of the base image read-only at dir: a directory
// tree holding a root file system, what a bind definition names. It is the
// administrator's mount, not Strata's: the test unmounts it at the end.
func (n *node) tree(dir string) {
	n.t.Helper()
	file := "/var/tmp/tree-" + filepath.Base(dir) + ".sqfs"
	n.imageCopy(file)
	n.run("mkdir", "-p", dir)
	n.run("mount", "-o", "loop,ro", file, dir)
	n.t.Cleanup(func() { n.try("umount", dir) })
}

// disk attaches a copy of the base image to a loop device of the test's
// own and names it /dev/disk/by-partlabel/LABEL, as udev names a
// partition: the node's block device that a local definition names. It
// returns the image file and the device. Strata never detaches it; the
// test does.
func (n *node) disk(label string) (file, dev string) {
	n.t.Helper()
	file = "/var/tmp/" + label + ".sqfs"
	n.imageCopy(file)
	dev = n.run("losetup", "--show", "--find", "--read-only", file)
	n.t.Cleanup(func() { n.try("losetup", "--detach", dev) })
	n.run("mkdir", "-p", "/dev/disk/by-partlabel")
	n.run("ln", "-sfn", dev, "/dev/disk/by-partlabel/"+label)
	return file, dev
}

// source is what is mounted at point (findmnt's SOURCE), "" when nothing.
func (n *node) source(point string) string {
	n.t.Helper()
	out, _ := n.try("findmnt", "--noheadings", "--output=SOURCE", "--mountpoint", point)
	return out
}

// booted checks that the nested systemd of container name answers, and
// that the container is a running machine.
func (n *node) booted(name string) {
	n.t.Helper()
	if out := n.run("systemd-run", "--machine="+name, "--wait", "--pipe", "--quiet", "/bin/cat", "/etc/os-release"); !strings.Contains(out, "Debian") {
		n.t.Errorf("%s: command in the container: %q", name, out)
	}
}

func bindDef(path string, asRoot bool) string {
	if asRoot {
		return `{"command": "/usr/lib/systemd/systemd", "systemd": true,
 "mount": {"kind": "bind", "bind": {"base": "root", "path": "` + path + `", "ro": true}}}
`
	}
	return `{"command": "/usr/lib/systemd/systemd", "systemd": true,
 "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "bind", "bind": {"base": "root", "path": "` + path + `"}}]}}}
`
}

// The bind scheme: a directory tree of the node as the overlay's lower
// layer (container "ov") and as the container's root itself, read-only
// ("root"). Both roll out to another tree and back; ov's definition is
// removed while it runs. Strata never unmounts the trees themselves.
func TestBindScheme(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.tree("/srv/trees/v1")
	n.tree("/srv/trees/v2")
	n.define("ov.json", bindDef("/srv/trees/v1", false))
	n.define("root.json", bindDef("/srv/trees/v1", true))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@ov.service", "systemd-nspawn@root.service")
	n.booted("ov")
	n.booted("root")
	onTree := func(name, tree string) {
		t.Helper()
		if name == "ov" {
			if ls := n.view().Lowers("ov"); len(ls) != 1 || ls[0] != tree {
				t.Errorf("ov's root is mounted on %q, want %s", ls, tree)
			}
			return
		}
		if got, want := n.source("/var/lib/machines/root"), n.source(tree); got != want {
			t.Errorf("root's root is %q, want %s's %q", got, tree, want)
		}
	}
	onTree("ov", "/srv/trees/v1")
	onTree("root", "/srv/trees/v1")
	// "ro": the bind is read-only (imageapi left it writable).
	if opts := n.run("findmnt", "--noheadings", "--output=OPTIONS", "--mountpoint", "/var/lib/machines/root"); !strings.HasPrefix(opts, "ro,") {
		t.Errorf("the read-only bind root is mounted %s", opts)
	}
	if out, code := n.try("systemd-run", "--machine=root", "--wait", "--pipe", "--quiet", "/bin/touch", "/written"); code == 0 {
		t.Errorf("a read-only bind root could be written: %s", out)
	}
	n.onlyNeeded()

	// Roll out to v2, one container at a time, then ov back to v1.
	n.define("ov.json", bindDef("/srv/trees/v2", false))
	n.run("systemctl", "daemon-reload")
	onTree("ov", "/srv/trees/v1") // until its restart
	n.run("systemctl", "restart", "systemd-nspawn@ov.service")
	onTree("ov", "/srv/trees/v2")
	n.booted("ov")
	n.onlyNeeded()
	n.define("root.json", bindDef("/srv/trees/v2", true))
	n.reloadRestart("root")
	onTree("root", "/srv/trees/v2")
	n.booted("root")
	n.onlyNeeded()
	n.define("ov.json", bindDef("/srv/trees/v1", false))
	n.reloadRestart("ov")
	onTree("ov", "/srv/trees/v1")
	n.onlyNeeded()

	// Retire ov: removed while it runs, then stopped.
	if err := os.Remove(filepath.Join(n.defs, "ov.json")); err != nil {
		t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	if state, _ := n.try("systemctl", "is-active", "systemd-nspawn@ov.service"); state != "active" {
		t.Fatalf("ov is %s after its definition went", state)
	}
	n.onlyNeeded()
	n.run("systemctl", "stop", "systemd-nspawn@ov.service")
	n.onlyNeeded()
	if n.source("/var/lib/machines/root") == "" {
		t.Errorf("root's root went with ov's retirement")
	}
	n.stopAll("root")
	for _, tree := range []string{"/srv/trees/v1", "/srv/trees/v2"} {
		if n.source(tree) == "" {
			t.Errorf("%s was unmounted: Strata must leave the administrator's trees alone", tree)
		}
	}
}

func localDef(label string) string {
	return `{"command": "/usr/lib/systemd/systemd", "systemd": true,
 "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "attach", "attach": {"fs_type": "squashfs",
   "attach": {"kind": "local", "local": {"path": "/dev/disk/by-partlabel/` + label + `"}}}}]}}}
`
}

// The local scheme: a block device of the node (a loop device the test
// attached, named like a partition) as the overlay's lower layer. Roll out
// to another device and back, edit then stop, remove while running then
// stop. Strata mounts the devices but never detaches them.
func TestLocalScheme(t *testing.T) {
	n := boot(t, testbed.Options{})
	v1, dev1 := n.disk("image-v1")
	v2, dev2 := n.disk("image-v2")
	n.define("loc.json", localDef("image-v1"))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@loc.service")
	n.booted("loc")
	n.runsOn("loc", v1)
	n.onlyNeeded()

	n.define("loc.json", localDef("image-v2"))
	n.run("systemctl", "daemon-reload")
	n.runsOn("loc", v1) // until the restart
	n.run("systemctl", "restart", "systemd-nspawn@loc.service")
	n.runsOn("loc", v2)
	n.booted("loc")
	n.onlyNeeded()

	n.define("loc.json", localDef("image-v1")) // roll back
	n.reloadRestart("loc")
	n.runsOn("loc", v1)
	n.onlyNeeded()

	// Edited, reloaded, then stopped rather than restarted.
	n.define("loc.json", localDef("image-v2"))
	n.run("systemctl", "daemon-reload")
	n.stopAll("loc")

	// Retired: removed while it runs, then stopped.
	n.run("systemctl", "start", "systemd-nspawn@loc.service")
	n.runsOn("loc", v2)
	if err := os.Remove(filepath.Join(n.defs, "loc.json")); err != nil {
		t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	if state, _ := n.try("systemctl", "is-active", "systemd-nspawn@loc.service"); state != "active" {
		t.Fatalf("loc is %s after its definition went", state)
	}
	n.onlyNeeded()
	n.stopAll("loc")

	// The node's devices are as they were: attached, unmounted.
	for dev, file := range map[string]string{dev1: v1, dev2: v2} {
		if got, _ := n.try("cat", "/sys/block/"+filepath.Base(dev)+"/loop/backing_file"); got != file {
			t.Errorf("%s is attached to %q, want %s as the test left it", dev, got, file)
		}
		if out, code := n.try("findmnt", "--source", dev); code == 0 {
			t.Errorf("%s is still mounted:\n%s", dev, out)
		}
	}
}
