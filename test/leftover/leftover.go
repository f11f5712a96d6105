// Package leftover answers the question every day-two test ends with: is
// anything of Strata's mounted, attached, recorded or active on the node
// that no running container needs? One View serves the nspawn testbed
// (loop devices, local devices) and the VM (RBD mappings, NFS and
// nfs-loopback layers, dm-verity devices): it is read through Node, so it does not care
// whether commands run through nsenter or the VM's agent.
package leftover

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/mountinfo"
	"github.com/strata-project/strata/test/harness"
)

// Node is where the view is read.
type Node interface {
	// Output runs a command on the node and returns its standard output,
	// or an error when it did not exit 0.
	Output(args ...string) (string, error)
	// ReadFile reads a file on the node.
	ReadFile(path string) ([]byte, error)
}

// View is the node's state as the kernel, systemd and the helper's records
// show it.
type View struct {
	Mounts      []mountinfo.Mount
	Loops       map[string]string   // attached loop device → backing file
	Mapped      map[string]string   // mapped /dev/rbdN → pool/image@snap
	Verity      map[string][]string // device-mapper device (/dev/mapper/NAME) → the devices under it
	Attachments []string            // attachment records (IDs)
	Links       []string            // links to attached loop devices
	Containers  []string            // container records
	Running     map[string]bool     // active systemd-nspawn@NAME
	Units       []string            // other active units of Strata's
}

// Read reads the view of the node.
func Read(n Node) (View, error) {
	v := View{Loops: map[string]string{}, Mapped: map[string]string{}, Verity: map[string][]string{}, Running: map[string]bool{}}
	b, err := n.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return v, err
	}
	if v.Mounts, err = mountinfo.Parse(strings.NewReader(string(b))); err != nil {
		return v, err
	}
	steps := []func(Node) error{v.readLoops, v.readMapped, v.readVerity, v.readRecords, v.readUnits}
	for _, step := range steps {
		if err := step(n); err != nil {
			return v, err
		}
	}
	return v, nil
}

func (v *View) readLoops(n Node) error {
	out, err := n.Output("losetup", "--list", "--noheadings", "--output=NAME,BACK-FILE")
	for _, l := range lines(out) {
		// The rest of the line: a file's name may have spaces, a deleted
		// one ends in " (deleted)".
		if dev, file, ok := strings.Cut(l, " "); ok {
			v.Loops[dev] = strings.TrimSpace(file)
		}
	}
	return err
}

func (v *View) readMapped(n Node) error {
	out, err := n.Output("sh", "-c", `for d in /sys/bus/rbd/devices/*; do
	[ -e "$d/pool" ] || continue
	echo "/dev/rbd${d##*/} $(cat "$d/pool")/$(cat "$d/name")@$(cat "$d/current_snap")"
done`)
	for _, l := range lines(out) {
		dev, what, _ := strings.Cut(l, " ")
		v.Mapped[dev] = what
	}
	return err
}

// readVerity lists the device-mapper devices (Strata makes only dm-verity
// ones: the data device and the hash tree's loop device under each).
func (v *View) readVerity(n Node) error {
	out, err := n.Output("sh", "-c", `for d in /sys/block/dm-*; do
	[ -e "$d/dm/name" ] || continue
	echo `+layout.MapperDir+`$(cat "$d/dm/name") $(ls "$d/slaves")
done`)
	for _, l := range lines(out) {
		f := strings.Fields(l)
		for _, s := range f[1:] {
			v.Verity[f[0]] = append(v.Verity[f[0]], "/dev/"+s)
		}
		if len(f) == 1 {
			v.Verity[f[0]] = nil
		}
	}
	return err
}

func (v *View) readRecords(n Node) error {
	var errs []error
	list := func(dir string) []string {
		out, err := n.Output("sh", "-c", "ls -1 "+dir+" 2>/dev/null || true")
		errs = append(errs, err)
		var names []string
		for _, f := range lines(out) {
			names = append(names, strings.TrimSuffix(f, ".json"))
		}
		sort.Strings(names)
		return names
	}
	v.Attachments = list(layout.StateDir + "/attachments")
	v.Containers = list(layout.StateDir + "/containers")
	v.Links = list(layout.DevDir)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (v *View) readUnits(n Node) error {
	args := append([]string{"systemctl", "list-units", "--state=active", "--plain", "--no-legend", "--full",
		layout.ContainerPrefix + "*"}, layout.UnitGlobs()...)
	out, err := n.Output(args...)
	for _, l := range lines(out) {
		u := strings.Fields(l)[0]
		if name, ok := layout.Instance(u, layout.ContainerPrefix); ok {
			v.Running[name] = true
		} else {
			v.Units = append(v.Units, u)
		}
	}
	return err
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Root is the mount of container name's root, if mounted.
func (v View) Root(name string) (mountinfo.Mount, bool) {
	return v.Mount(layout.ContainerRoot(name))
}

// Mount is what is mounted at point, if anything.
func (v View) Mount(point string) (mountinfo.Mount, bool) {
	for _, m := range v.Mounts {
		if m.Point == point {
			return m, true
		}
	}
	return mountinfo.Mount{}, false
}

// Lowers returns the layer directories container name's root is mounted on.
func (v View) Lowers(name string) []string {
	m, _ := v.Root(name)
	return m.Lowers()
}

// needs is what the running containers use.
type needs struct {
	layers   map[string]bool // layer directories
	attached map[string]bool // devices under them that Strata attached (a record each)
	local    map[string]bool // the node's own devices under local layers (an attach unit, no record)
	hashes   map[string]bool // loop devices over a verity device's hash tree (no record: autoclear)
}

// needed collects the lowers of the running roots, the layers holding the
// file of a loop device such a lower is mounted from (nfs-loopback's
// export), and the devices Strata attached for them: a local layer's
// device is the node's own, an NFS layer has none.
func (v View) needed() needs {
	n := needs{layers: map[string]bool{}, attached: map[string]bool{}, local: map[string]bool{}, hashes: map[string]bool{}}
	for name := range v.Running {
		for _, l := range v.Lowers(name) {
			n.layers[l] = true
		}
	}
	for l := range n.layers {
		m, ok := v.Mount(l)
		// A lower outside the layers (a bind scheme's tree) is the node's
		// own directory, whatever it is mounted from.
		if !ok || filepath.Dir(l) != layout.LayersDir || !strings.HasPrefix(m.Source, "/dev/") {
			continue
		}
		if strings.HasPrefix(filepath.Base(l), "local_") {
			n.local[m.Source] = true
			continue
		}
		n.attached[m.Source] = true
		v.underVerity(m.Source, n)
		for _, m2 := range v.Mounts {
			if filepath.Dir(m2.Point) == layout.LayersDir && mountinfo.Under(v.Loops[m.Source], m2.Point) {
				n.layers[m2.Point] = true
			}
		}
	}
	return n
}

// underVerity adds what a verity device dev stands on: the attached image
// (recorded) and the loop device over its hash tree, whose backing file is
// that image.
func (v View) underVerity(dev string, n needs) {
	under := v.Verity[dev]
	for _, d := range under {
		if slices.Contains(under, v.Loops[d]) {
			n.hashes[d] = true
		} else {
			n.attached[d] = true
		}
	}
}

// Extra lists what is mounted, attached, recorded or active of Strata's
// that no running container needs.
func (v View) Extra() []string {
	n := v.needed()
	extra := v.extraMounts(n)
	extra = append(extra, v.extraDevices(n)...)
	extra = append(extra, v.extraRecords(n)...)
	return append(extra, v.extraUnits(n)...)
}

func (v View) extraMounts(n needs) []string {
	var extra []string
	for _, m := range v.Mounts {
		dir := filepath.Dir(m.Point)
		switch {
		case dir == layout.LayersDir && !n.layers[m.Point]:
			extra = append(extra, "layer "+m.Point+" ("+m.FSType+" "+m.Source+")")
		case (dir == layout.UpperDir || dir == layout.MachinesDir) && !v.Running[filepath.Base(m.Point)]:
			extra = append(extra, "mount "+m.Point)
		case (m.FSType == "nfs" || m.FSType == "nfs4") && dir != layout.LayersDir:
			extra = append(extra, "NFS mount outside Strata's layers: "+m.Point)
		}
	}
	return extra
}

func (v View) extraDevices(n needs) []string {
	var extra []string
	for _, dev := range keys(v.Mapped) {
		if !n.attached[dev] {
			extra = append(extra, "mapped "+dev+" "+v.Mapped[dev])
		}
	}
	for _, dev := range keys(v.Loops) {
		file := v.Loops[dev]
		// A loop over a block device is a verity device's hash tree.
		overDevice := strings.HasPrefix(file, "/dev/") && !n.hashes[dev]
		if mountinfo.Under(file, layout.RunDir) && !n.attached[dev] || overDevice {
			extra = append(extra, "loop device "+dev+" on "+file)
		}
	}
	for _, dev := range keys(v.Verity) {
		if !n.attached[dev] {
			extra = append(extra, "verity device "+dev+" over "+strings.Join(v.Verity[dev], " "))
		}
	}
	return extra
}

func (v View) extraRecords(n needs) []string {
	var extra []string
	loops := 0
	for dev := range n.attached {
		if strings.HasPrefix(dev, "/dev/loop") {
			loops++
		}
	}
	if len(v.Attachments) != len(n.attached) || len(v.Links) != loops {
		extra = append(extra, fmt.Sprintf("%d attachment records %v and %d device links %v for the attached devices in use %v",
			len(v.Attachments), v.Attachments, len(v.Links), v.Links, keys(n.attached)))
	}
	for _, c := range v.Containers {
		if !v.Running[c] {
			extra = append(extra, "container record "+c)
		}
	}
	return extra
}

// extraUnits: fewer active attach units than devices is right (systemd
// stops the unit of a device whose definition went while its layer stays
// mounted under a running container; the record keeps it for the
// clean-up), more is not.
func (v View) extraUnits(n needs) []string {
	var extra []string
	attach, layerUnits := 0, 0
	for _, u := range v.Units {
		switch {
		case strings.HasPrefix(u, layout.AttachPrefix):
			attach++
		case strings.HasPrefix(u, layout.RunMountPrefix+"layers-"):
			layerUnits++
		case !v.Running[unitContainer(u)]:
			extra = append(extra, "active unit "+u)
		}
	}
	if devices := len(n.attached) + len(n.local); attach > devices || layerUnits > len(n.layers) {
		extra = append(extra, fmt.Sprintf("%d active attach units for %d devices, %d active layer units for %d layers: %v",
			attach, devices, layerUnits, len(n.layers), v.Units))
	}
	return extra
}

// unitContainer is the container a per-container unit of Strata's belongs
// to (the tests' names have no characters that unit names escape), or the
// unit itself.
func unitContainer(u string) string {
	for _, p := range []string{layout.CleanupPrefix, layout.UpperPrefix, layout.HealthPrefix,
		layout.RunMountPrefix + "upper-", layout.MachinesMountPrefix} {
		if name, ok := strings.CutPrefix(u, p); ok {
			return strings.TrimSuffix(name, filepath.Ext(name))
		}
	}
	return u
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Wait reads the view until nothing is left that no running container
// needs (the clean-up may still be finishing when systemctl returns) or
// timeout passes; it returns the last view and what was left in it.
func Wait(n Node, timeout, interval time.Duration) (View, []string, error) {
	var v View
	var extra []string
	var err error
	_ = harness.Poll(timeout, interval, func() bool {
		if v, err = Read(n); err != nil {
			return true
		}
		extra = v.Extra()
		return len(extra) == 0
	})
	return v, extra, err
}
