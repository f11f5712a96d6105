//go:build vm

package vm

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/mountinfo"
	"github.com/strata-project/strata/test/leftover"
)

// The nfs and nfs-loopback schemes for real (issue 9), with the day-two
// operations: start, roll-out to another export or file and back, edit
// then stop, remove while running then stop; each ends with nothing of
// Strata's mounted (NFS mounts included), attached, recorded or active that
// no running container needs.
//
// Where the NFS server runs, and why (measured on the build machines,
// Firecracker kernel 6.18 with nomodule):
//   - The host kernel has neither an NFS client nor nfsd (no nfs, nfs4 or
//     nfsd in /proc/filesystems, /proc/fs/nfsd empty) and cannot load
//     modules. The testbed shares that kernel, so no NFS mount can happen
//     there at all, whoever serves it: a user-space server (nfs-ganesha) in
//     a network namespace would still need the VM as its client.
//   - The VM's stock Debian kernel has both as modules. So the server is
//     the kernel's nfsd inside the VM itself (nfs-kernel-server, root
//     variant root-nfs, built like the other variants by roots_test.go),
//     serving on the VM's own 127.0.0.1: the VM needs no network device,
//     and no address exists outside it.
//   - The exports live on a tmpfs of the VM, exported as the NFSv4 root
//     (fsid=0; clients name paths below it, e.g. 127.0.0.1:/images): a
//     directory of squashfs files (nfs-loopback), and those files mounted
//     read-only as trees (nfs; squashfs supports NFS export) under it. The
//     VM's own root is an overlayfs, which nfsd cannot export, so the v4
//     pseudo-root nfs-utils would build from "/" fails (mount.nfs: "No such
//     file or directory"). fsid= is set on each export: tmpfs and squashfs
//     have no UUID nfsd could use.

const nfsHost = "127.0.0.1" // the VM's own loopback: the server is in the VM

// ensureNFSRoot builds the VM root variant with the kernel NFS server (and,
// through nfs-common, mount.nfs for the client).
func ensureNFSRoot(t *testing.T) string {
	return ensureRootVariant(t, "STRATA_VM_NFS_ROOT", "/var/lib/strata-vm/root-nfs", "nfs-kernel-server")
}

// serveNFS exports, from the VM's own nfsd on 127.0.0.1 only, the tmpfs
// /srv/nfs as the NFSv4 root: /images (v1.sqfs, v2.sqfs: copies of the
// testbed root's squashfs) and /trees/v1, v2 (those files mounted).
func (e *rbdEnv) serveNFS() {
	e.t.Helper()
	e.must("sh", "-ec", `mkdir -p /srv/nfs
mount -t tmpfs -o size=400m,mode=0755 nfs-exports /srv/nfs
mkdir -p /srv/nfs/images /srv/nfs/trees/v1 /srv/nfs/trees/v2
for v in v1 v2; do
	cp /srv/images/base.sqfs /srv/nfs/images/$v.sqfs
	mount -o loop,ro /srv/nfs/images/$v.sqfs /srv/nfs/trees/$v
done
cat >/etc/exports <<EOF
/srv/nfs          127.0.0.1(ro,no_subtree_check,no_root_squash,fsid=0)
/srv/nfs/trees/v1 127.0.0.1(ro,no_subtree_check,no_root_squash,fsid=102)
/srv/nfs/trees/v2 127.0.0.1(ro,no_subtree_check,no_root_squash,fsid=103)
EOF
systemctl restart nfs-server.service
exportfs -ra`)
	if out := e.must("exportfs", "-v"); strings.Count(out, "127.0.0.1(") != 3 {
		e.t.Fatalf("exportfs -v: want the three exports to 127.0.0.1:\n%s", out)
	}
}

func nfsLower(path string) map[string]any {
	return map[string]any{"kind": "nfs", "nfs": map[string]any{"host": nfsHost, "path": path}}
}

// nfsDefinition is a container on the nfs scheme: an overlay over an
// export (a tree).
func nfsDefinition(export string) string {
	return overlayDefinition(nfsLower(export))
}

// nfsLoopDefinition is a container on the nfs-loopback scheme: an overlay
// over a squashfs file in an export, through a loop device.
func nfsLoopDefinition(file string) string {
	return overlayDefinition(map[string]any{
		"kind": "attach",
		"attach": map[string]any{
			"fs_type": "squashfs",
			"attach": map[string]any{"kind": "loopback", "loopback": map[string]any{
				"base": "mount", "path": file, "mount": nfsLower("/images"),
			}},
		},
	})
}

func overlayDefinition(lower map[string]any) string {
	def := map[string]any{
		"command": "/usr/lib/systemd/systemd",
		"systemd": true,
		"mount":   map[string]any{"kind": "overlay", "overlay": map[string]any{"lower": []any{lower}}},
	}
	b, _ := json.MarshalIndent(def, "", "  ")
	return string(b) + "\n"
}

// nfsOnlyNeeded waits (bounded: the clean-up may still run when systemctl
// returns) until nothing is left that no running container needs.
func (e *rbdEnv) nfsOnlyNeeded() {
	e.t.Helper()
	e.waitOnlyNeeded(2 * time.Minute)
}

// isNFS: an NFS client mount (not nfsd's own /proc/fs/nfsd).
func isNFS(m mountinfo.Mount) bool { return m.FSType == "nfs" || m.FSType == "nfs4" }

// nfsMounts lists the NFS mounts as "SOURCE on POINT".
func nfsMounts(v leftover.View) []string {
	var out []string
	for _, m := range v.Mounts {
		if isNFS(m) {
			out = append(out, m.Source+" on "+m.Point)
		}
	}
	return out
}

// runsOnExport checks that container name's root has one lower, an NFS
// mount of export from the VM's server, read-only.
func (e *rbdEnv) runsOnExport(name, export string) {
	e.t.Helper()
	v := e.view()
	ls := v.Lowers(name)
	if len(ls) != 1 {
		e.t.Fatalf("%s: root mounted on %q, want one layer (%s)", name, ls, export)
	}
	m, _ := v.Mount(ls[0])
	if !isNFS(m) || m.Source != nfsHost+":"+export {
		e.t.Errorf("%s runs on %s %s, want NFS %s:%s", name, m.FSType, m.Source, nfsHost, export)
	}
	if o, _ := m.Option("vers"); o != "4.2" {
		e.t.Errorf("%s's NFS layer: vers=%q, want 4.2 (the default): %s", name, o, m.Options)
	}
}

// runsOnFile checks that container name's root has one lower, a squashfs
// on a loop device whose file is file in the images export.
func (e *rbdEnv) runsOnFile(name, file string) {
	e.t.Helper()
	v := e.view()
	ls := v.Lowers(name)
	if len(ls) != 1 {
		e.t.Fatalf("%s: root mounted on %q, want one layer (of %s)", name, ls, file)
	}
	m, _ := v.Mount(ls[0])
	back := v.Loops[m.Source]
	if m.FSType != "squashfs" || filepath.Base(back) != file {
		e.t.Errorf("%s runs on %s from %s (file %q), want squashfs from %s", name, m.FSType, m.Source, back, file)
		return
	}
	nfs, ok := v.Mount(filepath.Dir(back))
	if !ok || !isNFS(nfs) || nfs.Source != nfsHost+":/images" {
		e.t.Errorf("%s's file %s is not on the NFS export %s:/images: %+v", name, back, nfsHost, nfs)
	}
}

// checkAllReleased: no container runs, and nothing of Strata's is left:
// no NFS mount but the server's own exports, no loop device of Strata's.
func (e *rbdEnv) checkAllReleased() {
	e.t.Helper()
	e.nfsOnlyNeeded()
	e.waitReleased(2 * time.Minute)
	v := e.view()
	if n := nfsMounts(v); len(n) != 0 {
		e.t.Errorf("NFS mounts left: %v", n)
	}
	if len(v.Running) != 0 {
		e.t.Errorf("containers still running: %v", v.Running)
	}
}

// TestNFS runs the nfs and nfs-loopback schemes in one VM whose own nfsd
// serves them (see the top of this file).
func TestNFS(t *testing.T) {
	t0 := time.Now()
	rootImg := ensureNFSRoot(t)
	t.Logf("nfs-kernel-server root ready in %s", time.Since(t0).Round(time.Millisecond))
	binds := append(strataBinds(), Bind{Host: rootSqfs, Guest: "/srv/images/base.sqfs"})
	vm, err := Boot(t, Options{RootImage: rootImg, Binds: binds, Memory: 1536})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	t.Logf("boot: %+v", vm.Timing())
	e := &rbdEnv{t: t, vm: vm}
	t1 := time.Now()
	e.serveNFS()
	t.Logf("nfsd serving on %s: %s", nfsHost, time.Since(t1).Round(time.Millisecond))

	t.Run("NFS", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{"nfs": nfsDefinition("/trees/v1")})
		d := e.startContainer("nfs")
		t.Logf("start (NFS mount, overlay, nested boot): %s", d.Round(time.Millisecond))
		e.runsOnExport("nfs", "/trees/v1")
		e.checkMachineRunning("nfs")
		// The layer is the read-only export: the container writes to its
		// upper only.
		e.must("systemd-run", "--machine=nfs", "--wait", "--pipe", "--quiet", "/bin/touch", "/written-in-overlay")
		if out, code, _ := e.try(time.Minute, "touch", e.view().Lowers("nfs")[0]+"/x"); code == 0 {
			t.Errorf("the NFS layer is writable: %s", out)
		}
		e.nfsOnlyNeeded()

		// Roll out to the v2 export: restart applies it, the v1 mount goes.
		e.define(map[string]string{"nfs": nfsDefinition("/trees/v2")})
		e.runsOnExport("nfs", "/trees/v1") // until the restart
		e.nfsOnlyNeeded()
		e.restart("nfs")
		e.runsOnExport("nfs", "/trees/v2")
		e.checkMachineRunning("nfs")
		e.nfsOnlyNeeded()
		if n := nfsMounts(e.view()); len(n) != 1 {
			t.Errorf("after the roll-out: NFS mounts %v, want v2's only", n)
		}

		// Roll back, then retire: removed while running, then stopped.
		e.define(map[string]string{"nfs": nfsDefinition("/trees/v1")})
		e.restart("nfs")
		e.runsOnExport("nfs", "/trees/v1")
		e.nfsOnlyNeeded()
		e.define(nil)
		if st, _, _ := e.try(time.Minute, "systemctl", "is-active", "systemd-nspawn@nfs.service"); st != "active" {
			t.Fatalf("the container is %s after its definition went", st)
		}
		e.nfsOnlyNeeded()
		e.stop("nfs")
		e.checkAllReleased()
	})

	t.Run("NFSLoopback", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{"nl": nfsLoopDefinition("v1.sqfs")})
		d := e.startContainer("nl")
		t.Logf("start (NFS mount, loop device, squashfs, overlay, nested boot): %s", d.Round(time.Millisecond))
		e.runsOnFile("nl", "v1.sqfs")
		e.checkMachineRunning("nl")
		e.nfsOnlyNeeded()

		// Roll out to v2.sqfs in the same export: a new loop device and
		// layer, the old ones released, the NFS mount kept (one, shared).
		e.define(map[string]string{"nl": nfsLoopDefinition("v2.sqfs")})
		e.runsOnFile("nl", "v1.sqfs")
		e.restart("nl")
		e.runsOnFile("nl", "v2.sqfs")
		e.checkMachineRunning("nl")
		e.nfsOnlyNeeded()
		v := e.view()
		if n := nfsMounts(v); len(n) != 1 {
			t.Errorf("after the roll-out: NFS mounts %v, want the export once", n)
		}
		if !slices.ContainsFunc(v.Attachments, func(a string) bool { return strings.HasPrefix(a, "loop_v2.sqfs_") }) || len(v.Attachments) != 1 {
			t.Errorf("after the roll-out: attachments %v, want v2.sqfs's only", v.Attachments)
		}

		// Roll back, edit then stop (not restart): all released.
		e.define(map[string]string{"nl": nfsLoopDefinition("v1.sqfs")})
		e.restart("nl")
		e.runsOnFile("nl", "v1.sqfs")
		e.nfsOnlyNeeded()
		e.define(map[string]string{"nl": nfsLoopDefinition("v2.sqfs")})
		e.stop("nl")
		e.checkAllReleased()

		// Retire: started on v2, removed while running, then stopped.
		d = e.startContainer("nl")
		t.Logf("start again: %s", d.Round(time.Millisecond))
		e.runsOnFile("nl", "v2.sqfs")
		e.define(nil)
		e.nfsOnlyNeeded()
		e.stop("nl")
		e.checkAllReleased()
	})

	// The server's exports are as the test made them: Strata unmounted
	// only its own NFS mounts.
	if out := e.must("exportfs", "-v"); strings.Count(out, "127.0.0.1(") != 3 {
		t.Errorf("exports changed:\n%s", out)
	}
	t.Logf("TestNFS: %s", time.Since(t0).Round(time.Second))
}
