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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/mountinfo"
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

// nodeView is the VM's state as the kernel, systemd and the helper's
// records show it.
type nodeView struct {
	mounts      []mountinfo.Mount
	mapped      map[string]string // /dev/rbdN → pool/image@snap
	attachments []string          // /run/strata/state/attachments
	containers  []string          // /run/strata/state/containers
	running     map[string]bool   // active systemd-nspawn@NAME
	units       []string          // active units of Strata's
}

func (e *rbdEnv) view() nodeView {
	e.t.Helper()
	ms, err := mountinfo.Parse(strings.NewReader(e.must("cat", "/proc/self/mountinfo") + "\n"))
	if err != nil {
		e.t.Fatal(err)
	}
	v := nodeView{mounts: ms, mapped: map[string]string{}, running: map[string]bool{}}
	for _, l := range trimLines(e.must("sh", "-c", `for d in /sys/bus/rbd/devices/*; do
	[ -e "$d/pool" ] || continue
	echo "/dev/rbd${d##*/} $(cat "$d/pool")/$(cat "$d/name")@$(cat "$d/current_snap")"
done`)) {
		dev, what, _ := strings.Cut(l, " ")
		v.mapped[dev] = what
	}
	records := func(kind string) []string {
		out := e.must("sh", "-c", "ls -1 /run/strata/state/"+kind+" 2>/dev/null || true")
		var names []string
		for _, f := range trimLines(out) {
			names = append(names, strings.TrimSuffix(f, ".json"))
		}
		sort.Strings(names)
		return names
	}
	v.attachments, v.containers = records("attachments"), records("containers")
	out := e.must("systemctl", "list-units", "--state=active", "--plain", "--no-legend", "--full",
		"systemd-nspawn@*", "strata-*", "run-strata-*", "var-lib-machines-*")
	for _, l := range trimLines(out) {
		u := strings.Fields(l)[0]
		if name, ok := strings.CutPrefix(u, "systemd-nspawn@"); ok {
			v.running[strings.TrimSuffix(name, ".service")] = true
		} else {
			v.units = append(v.units, u)
		}
	}
	return v
}

// root is the mount of container name's root, if mounted.
func (v nodeView) root(name string) (mountinfo.Mount, bool) {
	for _, m := range v.mounts {
		if m.Point == "/var/lib/machines/"+name {
			return m, true
		}
	}
	return mountinfo.Mount{}, false
}

// source is what is mounted at point ("" when nothing).
func (v nodeView) source(point string) string {
	for _, m := range v.mounts {
		if m.Point == point {
			return m.Source
		}
	}
	return ""
}

// extra lists what is mapped, mounted, recorded or active that no running
// container needs.
func (v nodeView) extra() []string {
	var extra []string
	layers := map[string]bool{}  // layer directories the running roots use
	devices := map[string]bool{} // what those layers are mounted from
	for name := range v.running {
		if m, ok := v.root(name); ok {
			for _, l := range m.Lowers() {
				layers[l] = true
				devices[v.source(l)] = true
			}
		}
	}
	for _, m := range v.mounts {
		switch dir, base := filepath.Dir(m.Point), filepath.Base(m.Point); {
		case dir == "/run/strata/layers" && !layers[m.Point]:
			extra = append(extra, "layer "+m.Point+" ("+m.Source+")")
		case (dir == "/run/strata/upper" || dir == "/var/lib/machines") && !v.running[base]:
			extra = append(extra, "mount "+m.Point)
		}
	}
	for dev, what := range v.mapped {
		if !devices[dev] {
			extra = append(extra, "mapped "+dev+" "+what)
		}
	}
	if len(v.attachments) != len(devices) {
		extra = append(extra, fmt.Sprintf("%d attachment records %v for %d devices in use", len(v.attachments), v.attachments, len(devices)))
	}
	for _, c := range v.containers {
		if !v.running[c] {
			extra = append(extra, "container record "+c)
		}
	}
	attach, layerUnits := 0, 0
	for _, u := range v.units {
		switch {
		case strings.HasPrefix(u, "strata-attach@"):
			attach++
		case strings.HasPrefix(u, "run-strata-layers-"):
			layerUnits++
		case !v.running[unitContainer(u)]:
			extra = append(extra, "active unit "+u)
		}
	}
	if attach > len(devices) || layerUnits > len(layers) {
		extra = append(extra, fmt.Sprintf("%d active attach units for %d devices, %d active layer units for %d layers: %v", attach, len(devices), layerUnits, len(layers), v.units))
	}
	return extra
}

// unitContainer is the container a per-container unit of Strata's belongs
// to (the tests' names have no characters that unit names escape).
func unitContainer(u string) string {
	for _, f := range []struct{ prefix, suffix string }{
		{"strata-cleanup@", ".service"}, {"strata-upper-", ".service"},
		{"run-strata-upper-", ".mount"}, {"var-lib-machines-", ".mount"},
	} {
		if name, ok := strings.CutPrefix(u, f.prefix); ok {
			return strings.TrimSuffix(name, f.suffix)
		}
	}
	return u
}

// onlyNeeded waits (bounded: the clean-up may still be finishing when
// systemctl returns) until nothing is left that no running container
// needs, and fails with what is.
func (e *rbdEnv) onlyNeeded() nodeView {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		v := e.view()
		extra := v.extra()
		if len(extra) == 0 {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("left that no running container needs:\n%s\njournal:\n%s", strings.Join(extra, "\n"),
				e.journal("strata-*", "systemd-nspawn@*", "run-strata-*", "var-lib-machines-*"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runsOn checks that container name runs on snapshot snap of rbd/image,
// and only on it: its root's one layer is mounted from that mapping, and
// the container sees that version's /strata-version.
func (e *rbdEnv) runsOn(name, image, snap string) {
	e.t.Helper()
	v := e.view()
	m, ok := v.root(name)
	if !ok || len(m.Lowers()) != 1 {
		e.t.Fatalf("%s: root %v, want one layer (of rbd/%s@%s)", name, m.Lowers(), image, snap)
	}
	dev := v.source(m.Lowers()[0])
	if got, want := v.mapped[dev], "rbd/"+image+"@"+snap; got != want {
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
	if v := e.onlyNeeded(); len(v.mapped) != 1 {
		t.Errorf("after the roll-out: mapped %v, want only @v2", v.mapped)
	}

	e.define(def("v1"))
	e.restart("roll")
	e.runsOn("roll", "rollout", "v1")
	if v := e.onlyNeeded(); len(v.mapped) != 1 {
		t.Errorf("after the roll-back: mapped %v, want only @v1", v.mapped)
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
	if v := e.onlyNeeded(); len(v.mapped)+len(v.attachments)+len(v.containers) != 0 {
		t.Errorf("after the stop: mapped %v, records %v %v", v.mapped, v.attachments, v.containers)
	}
	e.waitReleased(2 * time.Minute)
}
