//go:build vm

package vm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/leftover"
)

// Day two on the kernel path: what test/integration/daytwo_test.go does with
// loop devices, done with krbd mappings of RBD snapshots. Each scenario ends
// by checking that nothing of Strata's is mapped, mounted, recorded or
// active that no running container needs.

// rolloutSize is the size of the versioned image: room for either version.
const rolloutSize = 256 << 20

// versionedImage makes rbd/NAME with one snapshot per version, each the
// testbed root with /strata-version saying which it is: each version is
// written over the image head and snapshotted by `rbd import-diff` (as a
// new build written into the same image would be), so one image holds
// them all.
func (e *rbdEnv) versionedImage(name string, versions ...string) {
	e.t.Helper()
	ctx := ctxFor(e.t, 10*time.Minute)
	dir := e.t.TempDir()
	if out, err := e.cl.RBD(ctx, "create", "--size", fmt.Sprint(rolloutSize>>20)+"M", "--image-feature", "layering", "rbd/"+name); err != nil {
		e.t.Fatalf("rbd create: %v: %s", err, out)
	}
	for _, v := range versions {
		sqfs := versionSquashfs(e.t, dir, v)
		diff := filepath.Join(dir, v+".diff")
		if err := writeFullDiff(sqfs, diff, v, rolloutSize); err != nil {
			e.t.Fatal(err)
		}
		if out, err := e.cl.RBD(ctx, "import-diff", "--no-progress", diff, "rbd/"+name); err != nil {
			e.t.Fatalf("rbd import-diff %s: %v: %s", v, err, out)
		}
	}
	out, err := e.cl.RBD(ctx, "snap", "ls", "rbd/"+name)
	if err != nil {
		e.t.Fatalf("rbd snap ls: %v", err)
	}
	for _, v := range versions {
		if !strings.Contains(out, " "+v+" ") {
			e.t.Fatalf("rbd/%s has no snapshot %s:\n%s", name, v, out)
		}
	}
}

// versionSquashfs is the testbed root's squashfs with /strata-version
// holding v (appended: mksquashfs adds the file to a copy).
func versionSquashfs(t *testing.T, dir, v string) string {
	t.Helper()
	out := filepath.Join(dir, v+".sqfs")
	src, err := os.Open(rootSqfs)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	add := filepath.Join(dir, "add-"+v)
	if err := os.MkdirAll(add, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(add, "strata-version"), []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mksquashfs", add, out, "-no-progress", "-quiet", "-all-root").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs (append %s): %v\n%s", v, err, b)
	}
	return out
}

// writeFullDiff writes an rbd diff (format v1, "rbd import-diff"): file's
// bytes from offset 0, zeros after them up to size, and the snapshot to
// make once they are written.
func writeFullDiff(file, out, snap string, size int64) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if int64(len(data)) > size {
		return fmt.Errorf("%s (%d bytes) does not fit in %d", file, len(data), size)
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("rbd diff v1\n")
	b.WriteByte('t')
	b.Write(le.AppendUint32(nil, uint32(len(snap))))
	b.WriteString(snap)
	b.WriteByte('s')
	b.Write(le.AppendUint64(nil, uint64(size)))
	const chunk = 4 << 20
	for off := 0; off < len(data); off += chunk {
		n := min(chunk, len(data)-off)
		b.WriteByte('w')
		b.Write(le.AppendUint64(nil, uint64(off)))
		b.Write(le.AppendUint64(nil, uint64(n)))
		b.Write(data[off : off+n])
	}
	if rest := size - int64(len(data)); rest > 0 {
		b.WriteByte('z')
		b.Write(le.AppendUint64(nil, uint64(len(data))))
		b.Write(le.AppendUint64(nil, uint64(rest)))
	}
	b.WriteByte('e')
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// view reads the VM's state (test/leftover).
func (e *rbdEnv) view() leftover.View {
	e.t.Helper()
	v, err := leftover.Read(leftoverNode{e})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// onlyNeeded waits (bounded: the clean-up may still be finishing when
// systemctl returns) until nothing is left that no running container
// needs, and fails with what is.
func (e *rbdEnv) onlyNeeded() leftover.View {
	e.t.Helper()
	return e.waitOnlyNeeded(90 * time.Second)
}

func (e *rbdEnv) waitOnlyNeeded(timeout time.Duration) leftover.View {
	e.t.Helper()
	v, extra, err := leftover.Wait(leftoverNode{e}, timeout, 250*time.Millisecond)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(extra) > 0 {
		e.t.Fatalf("left that no running container needs:\n%s\njournal:\n%s", strings.Join(extra, "\n"),
			e.journal("strata-*", "systemd-nspawn@*", "run-strata-*", "var-lib-machines-*"))
	}
	return v
}

// runsOn checks that container name runs on snapshot snap of rbd/image,
// and only on it: its root's one layer is mounted from that mapping, and
// the container sees that version's /strata-version.
func (e *rbdEnv) runsOn(name, image, snap string) {
	e.t.Helper()
	v := e.view()
	m, ok := v.Root(name)
	if !ok || len(m.Lowers()) != 1 {
		e.t.Fatalf("%s: root %v, want one layer (of rbd/%s@%s)", name, m.Lowers(), image, snap)
	}
	layer, _ := v.Mount(m.Lowers()[0])
	dev := layer.Source
	if got, want := v.Mapped[dev], "rbd/"+image+"@"+snap; got != want {
		e.t.Errorf("%s runs on %s (%s), want %s", name, dev, got, want)
	}
	if got := e.must("cat", "/var/lib/machines/"+name+"/strata-version"); got != snap {
		e.t.Errorf("%s's /strata-version is %q, want %q", name, got, snap)
	}
}

func (e *rbdEnv) restart(name string) {
	e.t.Helper()
	if out, code, _ := e.try(6*time.Minute, "systemctl", "restart", "systemd-nspawn@"+name+".service"); code != 0 {
		e.t.Fatalf("systemctl restart systemd-nspawn@%s: %s\n%s", name, out, e.journal())
	}
}

func (e *rbdEnv) stop(name string) {
	e.t.Helper()
	if out, code, _ := e.try(3*time.Minute, "systemctl", "stop", "systemd-nspawn@"+name+".service"); code != 0 {
		e.t.Fatalf("systemctl stop systemd-nspawn@%s: %s\n%s", name, out, e.journal())
	}
}

// rollOutAndBack: a container on rbd/rollout@v1 is edited to @v2,
// reloaded (still on v1 until the restart, nothing released), restarted
// (on v2, v1 unmapped), rolled back the same way; finally edited and
// stopped instead of restarted: the snapshot no unit file names any more
// is released too.
func (e *rbdEnv) rollOutAndBack(t *testing.T) {
	e.t = t
	def := func(snap string) map[string]string {
		return map[string]string{"roll": seedDefinitionSnap("roll", "rollout", snap, e.monitor, e.secretOptions(e.key))}
	}
	e.define(def("v1"))
	e.startContainer("roll")
	e.runsOn("roll", "rollout", "v1")
	e.onlyNeeded()

	e.define(def("v2"))
	e.runsOn("roll", "rollout", "v1")
	e.onlyNeeded()
	e.restart("roll")
	e.runsOn("roll", "rollout", "v2")
	if v := e.onlyNeeded(); len(v.Mapped) != 1 {
		t.Errorf("after the roll-out: mapped %v, want only @v2", v.Mapped)
	}

	e.define(def("v1"))
	e.restart("roll")
	e.runsOn("roll", "rollout", "v1")
	if v := e.onlyNeeded(); len(v.Mapped) != 1 {
		t.Errorf("after the roll-back: mapped %v, want only @v1", v.Mapped)
	}

	e.define(def("v2"))
	e.stop("roll")
	e.onlyNeeded()
	e.waitReleased(2 * time.Minute)
}

// removeWhileRunningThenStop: the definition goes while its container runs
// on a snapshot: it keeps running, then its stop unmaps everything.
func (e *rbdEnv) removeWhileRunningThenStop(t *testing.T) {
	e.t = t
	e.define(map[string]string{"gone": seedDefinitionSnap("gone", "rollout", "v2", e.monitor, e.secretOptions(e.key))})
	e.startContainer("gone")
	e.runsOn("gone", "rollout", "v2")
	e.define(nil)
	if st, _, _ := e.try(time.Minute, "systemctl", "is-active", "systemd-nspawn@gone.service"); st != "active" {
		t.Fatalf("the container is %s after its definition went", st)
	}
	e.runsOn("gone", "rollout", "v2")
	e.onlyNeeded()
	e.stop("gone")
	if v := e.onlyNeeded(); len(v.Mapped)+len(v.Attachments)+len(v.Containers) != 0 {
		t.Errorf("after the stop: mapped %v, records %v %v", v.Mapped, v.Attachments, v.Containers)
	}
	e.waitReleased(2 * time.Minute)
}
