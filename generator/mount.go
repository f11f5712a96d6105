package generator

import (
	"path"
	"slices"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/netid"
	"github.com/strata-project/strata/units"
)

// builder converts one definition into its staged units.
type builder struct {
	d *definition.Definition
	s *staged
}

// deps are what a unit needs before it can use a path: mount units of this
// definition (Requires+After) and host paths (RequiresMountsFor).
type deps struct {
	units []string
	paths []string
}

func (d deps) addTo(u *units.Unit) {
	for _, n := range d.units {
		u.Add("Unit", "Requires", n)
		u.Add("Unit", "After", n)
	}
	u.AddList("Unit", "RequiresMountsFor", d.paths...)
}

func (d deps) plus(o deps) deps {
	return deps{units: append(slices.Clone(d.units), o.units...), paths: append(slices.Clone(d.paths), o.paths...)}
}

// layer is a file system tree that is ready once its deps are.
type layer struct {
	dir  string
	deps deps
}

// readOnlyFS are file systems that cannot be written at all.
var readOnlyFS = []string{"squashfs", "erofs", "iso9660"}

// mount converts a mount object (at field path p). An empty where makes it a
// shared read-only layer under LayersDir; otherwise it is mounted at where
// for one container, with the definition's own read/write choice.
func (b *builder) mount(m *definition.Mount, p, where string) layer {
	switch m.Kind {
	case definition.MountAttach:
		return b.attachMount(m.Attach, p+".attach", where)
	case definition.MountBind:
		return b.bindMount(m.Bind, p+".bind", where)
	case definition.MountNFS:
		return b.nfsMount(m.NFS, where)
	}
	panic("generator: unvalidated mount kind " + m.Kind) // overlay is handled by container()
}

// mountUnit is the common shape of Strata's mount units. They skip default
// dependencies: those would order them before local-fs.target, which the
// attach services (ordinary services) come after: a cycle.
func mountUnit(where, description string) *units.Unit {
	u := units.New(units.MountName(where))
	u.Add("Unit", "Description", description)
	u.Add("Unit", "Documentation", "man:strata.definition(5)")
	u.Add("Unit", "DefaultDependencies", "no")
	u.Add("Unit", "Conflicts", "umount.target")
	u.Add("Unit", "Before", "umount.target")
	u.Add("Unit", "StopWhenUnneeded", "yes")
	return u
}

func (b *builder) attachMount(a *definition.AttachMount, p, where string) layer {
	shared := where == ""
	opts := slices.Clone(a.MountOptions)
	readOnly := shared || slices.Contains(opts, "ro") || slices.Contains(readOnlyFS, a.FSType)
	if shared && !slices.Contains(opts, "ro") {
		opts = append([]string{"ro"}, slices.DeleteFunc(opts, func(o string) bool { return o == "rw" })...)
	}
	att := b.attach(a.Attach, p+".attach", readOnly)
	if a.Verity != nil {
		att = b.verity(att, a.Verity)
	}
	if shared {
		where = layout.LayersDir + "/" + att.id
	}

	u := mountUnit(where, "Strata "+a.FSType+" layer "+att.id)
	u.Add("Unit", "Requires", att.unit)
	u.Add("Unit", "After", att.unit)
	u.Add("Mount", "What", att.device)
	u.Add("Mount", "Where", where)
	u.Add("Mount", "Type", a.FSType)
	if len(opts) > 0 {
		u.Add("Mount", "Options", strings.Join(opts, ","))
	}
	b.s.add(u)
	b.deviceWait(att)
	return layer{dir: where, deps: deps{units: []string{u.Name}}}
}

// deviceWait leaves the wait for an attached device to its attach unit. A
// mount of a /dev path makes systemd wait for the device with its own
// time-out (DefaultDeviceTimeoutSec=, 90 s), counted from when the start
// was queued: at boot, before network-online.target, so a slow network
// failed the container with "Timed out waiting for device" while its
// attach had not even begun. The attach unit bounds the wait instead
// (TimeoutStartSec=, the helper's own time-outs); when it fails, nothing
// waits for the device job any more and systemd drops it.
func (b *builder) deviceWait(att attachment) {
	if !strings.HasPrefix(att.device, "/dev/") {
		return // a link of the helper's: systemd has no device unit for it
	}
	u := units.New(units.DeviceName(att.device) + ".d/" + layout.DropInName)
	u.Add("Unit", "JobRunningTimeoutSec", "infinity")
	b.s.add(u)
}

func (b *builder) bindMount(bm *definition.BindMount, p, where string) layer {
	src, d := b.resolve(bm.Base, bm.Mount, bm.Path, p)
	if where == "" {
		// An overlay lower needs no bind mount: overlayfs reads the
		// directory itself, and read-only.
		return layer{dir: src, deps: d}
	}
	opts := "bind"
	if bm.Recursive {
		opts = "rbind"
	}
	if bm.RO {
		opts += ",ro" // imageapi ignored ro; mount(8) remounts the bind read-only
	}
	u := mountUnit(where, "Strata bind mount of "+src)
	d.addTo(u)
	u.Add("Mount", "What", src)
	u.Add("Mount", "Where", where)
	u.Add("Mount", "Type", "none")
	u.Add("Mount", "Options", opts)
	b.s.add(u)
	return layer{dir: where, deps: deps{units: []string{u.Name}}}
}

func (b *builder) nfsMount(n *definition.NFSMount, where string) layer {
	shared := where == ""
	host := netid.Host(n.Host) // one server spelt two ways is one shared layer
	if shared {
		where = layout.LayersDir + "/" + id("nfs", path.Base(n.Path), host, n.Path)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	opts := []string{"vers=" + n.Version}
	if n.RO || shared {
		opts = append(opts, "ro")
	}
	opts = append(opts, n.Options...)

	u := mountUnit(where, "Strata NFS mount of "+host+":"+n.Path)
	u.Add("Unit", "Wants", "network-online.target")
	u.Add("Unit", "After", "network-online.target", "remote-fs-pre.target")
	u.Add("Mount", "What", host+":"+n.Path)
	u.Add("Mount", "Where", where)
	u.Add("Mount", "Type", "nfs")
	u.Add("Mount", "Options", strings.Join(opts, ","))
	b.s.add(u)
	return layer{dir: where, deps: deps{units: []string{u.Name}}}
}

// resolve turns a base/mount/path triple (bind and loopback objects) into a
// path on the host and what it needs.
func (b *builder) resolve(base string, m *definition.Mount, rel, p string) (string, deps) {
	if base == definition.BaseRoot {
		return rel, deps{paths: []string{rel}}
	}
	inner := b.mount(m, p+".mount", "")
	return inner.dir + "/" + strings.TrimPrefix(rel, "/"), inner.deps
}
