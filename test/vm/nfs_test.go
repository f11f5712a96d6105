//go:build vm

package vm

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/mountinfo"
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

// nfsView is what the kernel and the helper's records show in the VM.
type nfsView struct {
	mounts      []mountinfo.Mount
	loops       map[string]string // attached loop device → backing file
	attachments []string          // attachment records
	links       []string          // /run/strata/dev
	containers  []string          // container records
	active      map[string]bool   // running containers
	attachUnits []string          // active strata-attach@ units
}

func (e *rbdEnv) nfsView() nfsView {
	e.t.Helper()
	ms, err := mountinfo.Parse(strings.NewReader(e.must("cat", "/proc/self/mountinfo") + "\n"))
	if err != nil {
		e.t.Fatal(err)
	}
	ls := func(dir string) []string {
		var out []string
		for _, f := range trimLines(e.must("sh", "-c", "ls -1 "+dir+" 2>/dev/null || true")) {
			out = append(out, strings.TrimSuffix(f, ".json"))
		}
		return out
	}
	v := nfsView{mounts: ms, loops: map[string]string{}, attachments: ls("/run/strata/state/attachments"),
		links: ls("/run/strata/dev"), containers: ls("/run/strata/state/containers"), active: map[string]bool{}}
	for _, l := range trimLines(e.must("losetup", "--list", "--noheadings", "--output=NAME,BACK-FILE")) {
		if f := strings.Fields(l); len(f) == 2 {
			v.loops[f[0]] = f[1]
		}
	}
	units := func(pattern string) []string {
		var out []string
		for _, l := range trimLines(e.must("systemctl", "list-units", "--state=active", "--plain", "--no-legend", "--full", pattern)) {
			out = append(out, strings.Fields(l)[0])
		}
		return out
	}
	for _, u := range units("systemd-nspawn@*") {
		v.active[strings.TrimSuffix(strings.TrimPrefix(u, "systemd-nspawn@"), ".service")] = true
	}
	v.attachUnits = units("strata-attach@*")
	return v
}

// lowers returns the layers container name's root is mounted on.
func (v nfsView) lowers(name string) []string {
	for _, m := range v.mounts {
		if m.Point == "/var/lib/machines/"+name {
			return m.Lowers()
		}
	}
	return nil
}

func (v nfsView) mount(point string) (mountinfo.Mount, bool) {
	for _, m := range v.mounts {
		if m.Point == point {
			return m, true
		}
	}
	return mountinfo.Mount{}, false
}

// leftovers lists what is mounted, attached, recorded or active of
// Strata's that no running container needs: a layer is needed when it is
// a lower of a running container's root, or holds the file of a loop
// device that such a lower is mounted from (nfs-loopback's export).
func (v nfsView) leftovers() []string {
	needed := map[string]bool{}
	for name := range v.active {
		for _, l := range v.lowers(name) {
			needed[l] = true
		}
	}
	devices := map[string]bool{} // loop devices under needed layers
	for l := range needed {
		if m, ok := v.mount(l); ok && strings.HasPrefix(m.Source, "/dev/loop") {
			devices[m.Source] = true
			for _, m2 := range v.mounts {
				if filepath.Dir(m2.Point) == "/run/strata/layers" && mountinfo.Under(v.loops[m.Source], m2.Point) {
					needed[m2.Point] = true
				}
			}
		}
	}
	var extra []string
	for _, m := range v.mounts {
		dir := filepath.Dir(m.Point)
		switch {
		case dir == "/run/strata/layers" && !needed[m.Point]:
			extra = append(extra, "layer "+m.Point+" ("+m.FSType+" "+m.Source+")")
		case (dir == "/run/strata/upper" || dir == "/var/lib/machines") && !v.active[filepath.Base(m.Point)]:
			extra = append(extra, "mount "+m.Point)
		case isNFS(m) && dir != "/run/strata/layers":
			extra = append(extra, "NFS mount outside Strata's layers: "+m.Point)
		}
	}
	for dev, file := range v.loops {
		if strings.HasPrefix(file, "/run/strata/") && !devices[dev] {
			extra = append(extra, "loop device "+dev+" on "+file)
		}
	}
	// Fewer active attach units than devices is right: systemd stops the
	// unit of a device whose definition went while its layer stays mounted
	// under a running container; the record keeps it for the clean-up.
	if len(v.attachments) != len(devices) || len(v.links) != len(devices) || len(v.attachUnits) > len(devices) {
		extra = append(extra, fmt.Sprintf("attachment records %v, device links %v, active attach units %v for the loop devices in use %v",
			v.attachments, v.links, v.attachUnits, devices))
	}
	for _, c := range v.containers {
		if !v.active[c] {
			extra = append(extra, "container record "+c)
		}
	}
	return extra
}

// onlyNeeded waits (bounded: the clean-up may still run when systemctl
// returns) until nothing is left that no running container needs.
func (e *rbdEnv) nfsOnlyNeeded() {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		extra := e.nfsView().leftovers()
		if len(extra) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("left that no running container needs:\n%s\njournal:\n%s", strings.Join(extra, "\n"),
				e.journal("strata-*", "systemd-nspawn@*", "run-strata-*", "var-lib-machines-*"))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// isNFS: an NFS client mount (not nfsd's own /proc/fs/nfsd).
func isNFS(m mountinfo.Mount) bool { return m.FSType == "nfs" || m.FSType == "nfs4" }

// nfsMounts lists the NFS mounts as "SOURCE on POINT".
func (v nfsView) nfsMounts() []string {
	var out []string
	for _, m := range v.mounts {
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
	v := e.nfsView()
	ls := v.lowers(name)
	if len(ls) != 1 {
		e.t.Fatalf("%s: root mounted on %q, want one layer (%s)", name, ls, export)
	}
	m, _ := v.mount(ls[0])
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
	v := e.nfsView()
	ls := v.lowers(name)
	if len(ls) != 1 {
		e.t.Fatalf("%s: root mounted on %q, want one layer (of %s)", name, ls, file)
	}
	m, _ := v.mount(ls[0])
	back := v.loops[m.Source]
	if m.FSType != "squashfs" || filepath.Base(back) != file {
		e.t.Errorf("%s runs on %s from %s (file %q), want squashfs from %s", name, m.FSType, m.Source, back, file)
		return
	}
	nfs, ok := v.mount(filepath.Dir(back))
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
	v := e.nfsView()
	if n := v.nfsMounts(); len(n) != 0 {
		e.t.Errorf("NFS mounts left: %v", n)
	}
	if len(v.active) != 0 {
		e.t.Errorf("containers still running: %v", v.active)
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
		if out, code, _ := e.try(time.Minute, "touch", e.nfsView().lowers("nfs")[0]+"/x"); code == 0 {
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
		if n := e.nfsView().nfsMounts(); len(n) != 1 {
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
		v := e.nfsView()
		if n := v.nfsMounts(); len(n) != 1 {
			t.Errorf("after the roll-out: NFS mounts %v, want the export once", n)
		}
		if !slices.ContainsFunc(v.attachments, func(a string) bool { return strings.HasPrefix(a, "loop_v2.sqfs_") }) || len(v.attachments) != 1 {
			t.Errorf("after the roll-out: attachments %v, want v2.sqfs's only", v.attachments)
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
