package generator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/strata-project/strata/definition"
	"github.com/strata-project/strata/helpers/contract"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/units"
)

// buildContainer converts one definition: its root file system, then the
// drop-in that makes systemd-nspawn@NAME.service run it.
func buildContainer(d *definition.Definition) *staged {
	b := &builder{d: d, s: &staged{def: d, links: map[string]string{}}}
	c := d.Container
	root := layout.ContainerRoot(d.Name)

	var rootDeps deps
	if c.Mount.Kind == definition.MountOverlay {
		rootDeps = b.overlay(c.Mount.Overlay, "mount.overlay", root)
	} else {
		rootDeps = b.mount(c.Mount, "mount", root).deps
	}
	b.restartWithContainer(rootDeps)
	b.containerDropIn(rootDeps)

	if c.State == definition.StateRunning {
		// machines.target is where machinectl enable puts machines too;
		// pulling it into multi-user.target makes boot start them even
		// where nobody enabled machines.target itself.
		b.s.links["machines.target.wants/"+layout.ContainerUnit(d.Name)] = layout.SystemUnits + "/systemd-nspawn@.service"
		b.s.links["multi-user.target.wants/machines.target"] = layout.SystemUnits + "/machines.target"
	}
	return b.s
}

// restartWithContainer ties the container's root mount to the container:
// a restart remounts it (PartOf=), so a restart applies an edited
// definition's new layers. The root needs the container's clean-up unit
// and comes after it, so the clean-up stops after the root, when the old
// layers are free. The clean-up itself comes after all the root needs:
// after a failed start it is not left running (systemd 252 does not stop
// unneeded units after a failed start).
func (b *builder) restartWithContainer(root deps) {
	name := b.d.Name
	for _, u := range b.s.units {
		if !slices.Contains(root.units, u.Name) {
			continue
		}
		cleanup := units.New(layout.CleanupUnit(name) + ".d/" + layout.DropInName)
		for _, n := range u.Get("Unit", "Requires") {
			cleanup.Add("Unit", "Requires", n)
			cleanup.Add("Unit", "After", n)
		}
		for _, p := range u.Get("Unit", "RequiresMountsFor") {
			cleanup.AddList("Unit", "RequiresMountsFor", p)
		}
		if len(cleanup.Sections) > 0 {
			b.s.add(cleanup)
		}
		u.Add("Unit", "PartOf", layout.ContainerUnit(name))
		u.Add("Unit", "Requires", layout.CleanupUnit(name))
		u.Add("Unit", "After", layout.CleanupUnit(name))
	}
}

// overlay mounts the container's root: lowers as shared read-only layers,
// a writable upper (tmpfs by default) prepared by the helper.
func (b *builder) overlay(o *definition.OverlayMount, p, root string) deps {
	name := b.d.Name
	var lowers []string
	var need deps
	for i, l := range o.Lower {
		ly := b.mount(l, fmt.Sprintf("%s.lower[%d]", p, i), "")
		lowers = append(lowers, ly.dir)
		need = need.plus(ly.deps)
	}

	// The upper layer comes after the lower ones (Requires+After): if an
	// attach fails, the upper's start fails with it instead of leaving a
	// prepared upper up, which systemd 252 does not stop as unneeded.
	upper := o.Upper.Path
	prep := units.New(layout.UpperUnit(name))
	prep.Add("Unit", "Description", "Strata upper layer of container "+name)
	prep.Add("Unit", "Documentation", "man:strata.definition(5)")
	prep.Add("Unit", "StopWhenUnneeded", "yes")
	if o.Upper.Kind == definition.UpperTmpfs {
		upper = layout.UpperDir + "/" + name
		t := mountUnit(upper, "Strata tmpfs upper layer of container "+name)
		t.Add("Mount", "What", "tmpfs")
		t.Add("Mount", "Where", upper)
		t.Add("Mount", "Type", "tmpfs")
		t.Add("Mount", "Options", "mode=0755,size="+o.Upper.Size)
		need.addTo(t)
		b.s.add(t)
		prep.Add("Unit", "Requires", t.Name)
		prep.Add("Unit", "After", t.Name)
	} else {
		need.addTo(prep)
		prep.AddList("Unit", "RequiresMountsFor", upper)
	}
	prep.Add("Service", "Type", "oneshot")
	prep.Add("Service", "RemainAfterExit", "yes")
	prep.AddExec("Service", "ExecStart", contract.Argv(contract.OverlayPrepare{Dir: upper})...)
	b.s.add(prep)
	need.units = append(need.units, prep.Name)

	u := mountUnit(root, "Strata root file system of container "+name)
	need.addTo(u)
	u.Add("Mount", "What", "overlay")
	u.Add("Mount", "Where", root)
	u.Add("Mount", "Type", "overlay")
	// lower[0] is the top layer, as in imageapi and in lowerdir= itself.
	u.Add("Mount", "Options", "lowerdir="+strings.Join(lowers, ":")+",upperdir="+upper+"/upper,workdir="+upper+"/work")
	b.s.add(u)
	return deps{units: []string{u.Name}}
}

// initPaths are where systemd-nspawn --boot finds init itself.
var initPaths = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"}

// containerDropIn configures systemd's systemd-nspawn@.service for this
// container: its root mount, and a command line built from the definition.
func (b *builder) containerDropIn(root deps) {
	d, c := b.d, b.d.Container
	u := units.New(layout.ContainerUnit(d.Name) + ".d/" + layout.DropInName)
	u.Add("Unit", "Description", "Strata container "+d.Name)
	u.Add("Unit", "Documentation", "man:strata.definition(5)")
	for _, n := range root.units {
		// BindsTo: if the root goes away, the container must stop with it.
		u.Add("Unit", "BindsTo", n)
		u.Add("Unit", "After", n)
	}
	u.AddList("Unit", "RequiresMountsFor", root.paths...)
	for _, bind := range c.Binds {
		u.AddList("Unit", "RequiresMountsFor", bind.Source)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Unit)) {
		u.AddRaw("Unit", k, c.Unit[k]...) // systemd syntax, as the administrator wrote it
	}

	u.AddExec("Service", "ExecStart") // reset the template's command line
	argv, optsEnd := nspawnArgv(d)
	if len(c.CDI) == 0 {
		u.AddExec("Service", "ExecStart", argv...)
	} else {
		b.cdi(u, argv, optsEnd)
	}
	u.Add("Service", "Type", "notify")
	u.Add("Service", "KillMode", "mixed")
	u.Add("Service", "Delegate", "yes")
	u.Add("Service", "Slice", "machine.slice")
	for _, dev := range c.Devices {
		// The template's DevicePolicy=closed allows only its own list.
		u.Add("Service", "DeviceAllow", dev.Path+" "+dev.Permissions)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Service)) {
		u.AddRaw("Service", k, c.Service[k]...)
	}
	b.health(u)
	b.s.add(u)
	b.s.dropIn = u // check records the generation in it
}

// recordStarted makes the container's start record the generation of its
// units, so that `strata status` can tell a container running older units
// than those on disk ("restart to apply"). The record is what the units
// are, so it is computed without itself: from the bytes check rendered,
// the drop-in's before the record joins it. "-": a record that cannot be
// written must not stop the container.
func (s *staged) recordStarted() {
	gen := generation(s.units, s.bytes, s.def.Source)
	s.dropIn.AddExecMayFail("Service", "ExecStartPre", contract.Argv(contract.Started{Container: s.def.Name, Generation: gen})...)
}

// generation identifies what a container's units do: a hash of their
// rendered bytes, in name order, with the directory of the definition's file
// left out (SourcePath=, and units name it, or a drop-in beside it, where
// a secret is kept), so the same definition gives the same generation
// wherever its files lie.
func generation(us []*units.Unit, rendered [][]byte, source string) string {
	source = filepath.Dir(source)
	order := make([]int, len(us))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(us[a].Name, us[b].Name) })
	h := sha256.New()
	for _, i := range order {
		h.Write([]byte(us[i].Name + "\x00"))
		h.Write(bytes.ReplaceAll(rendered[i], []byte(source), []byte("\x00SOURCE\x00")))
		h.Write([]byte(strings.ReplaceAll(us[i].Identity, source, "\x00SOURCE\x00") + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// nspawnArgv is the container's systemd-nspawn command line, and where
// Strata's options end (nspawn_args and the command follow).
func nspawnArgv(d *definition.Definition) ([]string, int) {
	c := d.Container
	argv := []string{layout.NspawnPath, "--quiet", "--keep-unit", "--register=yes", "--settings=override",
		"--machine=" + d.Name, "--directory=" + layout.ContainerRoot(d.Name)}
	if c.Mount.Kind != definition.MountOverlay && readOnlyRoot(c.Mount) {
		argv = append(argv, "--read-only")
	}
	for _, k := range slices.Sorted(maps.Keys(c.Environment)) {
		argv = append(argv, "--setenv="+k+"="+c.Environment[k])
	}
	for _, bind := range c.Binds {
		opt := "--bind="
		if bind.RO {
			opt = "--bind-ro="
		}
		argv = append(argv, opt+bind.Source+":"+bind.Target)
	}
	for _, dev := range c.Devices {
		argv = append(argv, "--bind="+dev.Path) // the node, at the same path
	}

	words, _ := definition.SplitCommand(c.Command) // validated
	var tail []string
	switch {
	case c.Systemd && slices.Contains(initPaths, words[0]):
		argv = append(argv, "--boot", "--notify-ready=yes")
		tail = words[1:] // arguments for init
	case c.Systemd:
		// Another init binary: run it as PID 1 and treat it as systemd.
		argv = append(argv, "--notify-ready=yes", "--kill-signal=SIGRTMIN+3")
		tail = words
	default:
		// A plain command: nspawn's stub init reaps, and the command's exit
		// status becomes the unit's. The stub waits only for SIGCHLD, SIGINT
		// and systemd's SIGRTMIN+n (everything else stays blocked, so
		// SIGTERM would never reach the command): SIGRTMIN+3 makes it send
		// the command SIGTERM, then SIGHUP (for shells that ignore SIGTERM),
		// and power off once it exits, which nspawn reports as a clean
		// shutdown.
		argv = append(argv, "--as-pid2", "--kill-signal=SIGRTMIN+3")
		tail = words
	}
	optsEnd := len(argv)
	argv = append(argv, c.NspawnArgs...)
	if len(tail) > 0 {
		argv = append(append(argv, "--"), tail...)
	}
	return argv, optsEnd
}

func readOnlyRoot(m *definition.Mount) bool {
	switch m.Kind {
	case definition.MountAttach:
		return slices.Contains(m.Attach.MountOptions, "ro") || slices.Contains(readOnlyFS, m.Attach.FSType)
	case definition.MountBind:
		return m.Bind.RO
	case definition.MountNFS:
		return m.NFS.RO
	}
	return false
}

// placeholder is the container unit of a definition that cannot be used:
// starting it fails with the definition's problems, so they show in
// `systemctl status` and the journal, not only in the kernel log at boot.
func placeholder(f Failed) *units.Unit {
	u := units.New(layout.ContainerUnit(f.Name) + ".d/" + layout.DropInName)
	u.Add("Unit", "Description", "Strata container "+f.Name+" (invalid definition, not started)")
	u.Add("Unit", "Documentation", "man:strata.definition(5)")
	var msgs []string
	for _, p := range f.Problems.Errors() {
		msgs = append(msgs, printable(p.String()))
	}
	u.AddExec("Service", "ExecStart")
	u.AddExec("Service", "ExecStart", contract.Argv(contract.Fail{Messages: msgs})...)
	cleanupAtStop(u, f.Name)
	return u
}

// cleanupAtStop makes a container unit release, once stopped, what a
// definition it no longer has left mounted or attached: the definition was
// broken (placeholder) or removed (retiring) while the container ran, so
// no unit file describes that chain any more.
func cleanupAtStop(u *units.Unit, name string) {
	u.AddExecMayFail("Service", "ExecStopPost", contract.Argv(contract.GC{Container: name})...)
}

// retiring is the drop-in of a container that was started on this node
// (a state record says so) and whose definition is gone: it may still be
// running, and when it stops, what it used must be released.
func retiring(name string) *units.Unit {
	u := units.New(layout.ContainerUnit(name) + ".d/" + layout.DropInName)
	u.Add("Unit", "Description", "Strata container "+name+" (definition removed)")
	u.Add("Unit", "Documentation", "man:strata.definition(5)")
	u.AddExec("Service", "ExecStart")
	u.AddExec("Service", "ExecStart", contract.Argv(contract.Fail{Messages: []string{"the definition of container " + name + " was removed; stopping it releases what it used"}})...)
	cleanupAtStop(u, name)
	return u
}

// printable makes a problem fit on one line of a unit: a parser may quote
// raw text, and a file's name may hold anything. Control characters become
// \xNN; QuoteExec escapes the rest ('%', '$', quotes, backslashes).
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

var generationArg = regexp.MustCompile(`--generation=([0-9a-f]+)`)

// Generation returns the generation the output's units give container
// name ("" when it has none: not defined, or a placeholder).
func (o *Output) Generation(name string) string {
	m := generationArg.FindSubmatch(o.Files[layout.ContainerUnit(name)+".d/"+layout.DropInName])
	if m == nil {
		return ""
	}
	return string(m[1])
}
