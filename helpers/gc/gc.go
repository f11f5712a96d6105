// Package gc releases what Strata mounted or attached on a node that no
// unit file describes any more and nothing in use needs: the old layers
// and devices after a roll-out or roll-back, and what a definition that
// was removed or broken while its container ran left behind.
//
// Everything else is systemd's: units the generator still writes are
// stopped by systemd itself when unneeded (StopWhenUnneeded=), so the
// collector never touches them, and so never races a start in progress.
// What is in use is read from the kernel (the mount table) and from the
// helper's records (helpers/state), never from definitions.
package gc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-project/strata/helpers/state"
	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/mountinfo"
	"github.com/strata-project/strata/units"
)

// GeneratorDirs are where systemd's generators write units.
var GeneratorDirs = []string{"/run/systemd/generator", "/run/systemd/generator.early", "/run/systemd/generator.late"}

// Systemd is what the collector asks of the service manager.
type Systemd interface {
	// States of each unit.
	States(units []string) (map[string]State, error)
	// List the loaded units matching a glob pattern.
	List(pattern string) ([]Unit, error)
	// Stop a unit; wait for the job to finish or not.
	Stop(unit string, wait bool) error
	// ResetFailed forgets a unit's failed state.
	ResetFailed(unit string) error
}

// State is what the collector needs to know of a unit.
type State struct {
	Active  string // ActiveState: active, inactive, deactivating, ...
	MainPID int
}

// Unit is a loaded unit's name and states.
type Unit struct{ Name, Load, Active string }

// Node is the node the collector works on.
type Node struct {
	Mountinfo     string
	GeneratorDirs []string
	State         state.Store
	CDIDir        string // the containers' CDI environment files (layout.CDIDir)
	ControlDir    string // set-property's runtime drop-ins (layout.ControlDir)
	Systemd       Systemd
	Unmount       func(path string) error
	Release       func(a state.Attachment) error // runs a.Release
	Logf          func(format string, args ...any)
}

// Options of one collection.
type Options struct {
	Container string // the container whose stop runs this collection
	DryRun    bool   // say what would be released, release nothing
}

// Action is one thing released, or that a dry run would release.
type Action struct {
	Kind string `json:"kind"` // root, upper, layer, attachment, unit, record (a file of Strata's)
	Name string `json:"name"`
	Why  string `json:"why"`
}

// Report is what `strata-helper gc --json` prints: the actions taken (or,
// with --dry-run, that would be), as one JSON object. `strata list` reads
// it rather than the text lines, which are for people.
type Report struct {
	DryRun  bool     `json:"dry_run"`
	Actions []Action `json:"actions"` // never null
}

// WriteReport prints the actions as a Report.
func WriteReport(w io.Writer, dryRun bool, actions []Action) error {
	if actions == nil {
		actions = []Action{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Report{DryRun: dryRun, Actions: actions})
}

// ReadReport parses what WriteReport printed.
func ReadReport(r io.Reader) (Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return Report{}, fmt.Errorf("reading the collector's report: %w", err)
	}
	return rep, nil
}

func (a Action) String() string { return a.Kind + " " + a.Name + ": " + a.Why }

// Collect releases what is orphaned and unused, in the order the chain
// was built backwards (roots, uppers, layers, devices), until nothing more
// goes. Errors do not stop it: each is reported, the rest still released.
func (n *Node) Collect(o Options) ([]Action, error) {
	c := &collection{Node: n, o: o, done: map[string]bool{}}
	for pass := 0; pass < 8; pass++ {
		mounts, err := mountinfo.Read(n.Mountinfo)
		if err != nil {
			return c.actions, err
		}
		if !c.mounts(mounts) && !c.attachments(mounts) {
			break
		}
		if o.DryRun {
			break // nothing changed, so another pass would find the same
		}
	}
	c.units()
	c.records()
	c.cdiFiles()
	return c.actions, errors.Join(c.errs...)
}

type collection struct {
	*Node
	o       Options
	actions []Action
	errs    []error
	done    map[string]bool // released (or would be, in a dry run)
}

func (c *collection) act(kind, name, why string, do func() error) bool {
	if c.done[kind+" "+name] {
		return false
	}
	c.done[kind+" "+name] = true
	a := Action{Kind: kind, Name: name, Why: why}
	c.actions = append(c.actions, a)
	if c.o.DryRun {
		return true
	}
	c.logf("releasing %s", a)
	if err := do(); err != nil {
		c.errs = append(c.errs, fmt.Errorf("%s %s: %w", kind, name, err))
		return false
	}
	return true
}

func (c *collection) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// generated reports whether the generator still writes rel (a unit file
// or a drop-in): what it writes is systemd's to stop.
func (c *collection) generated(rel string) bool {
	for _, d := range c.GeneratorDirs {
		if _, err := os.Lstat(filepath.Join(d, rel)); err == nil {
			return true
		}
	}
	return false
}

// mounts unmounts orphaned roots, uppers and layers that nothing uses.
func (c *collection) mounts(ms []mountinfo.Mount) bool {
	changed := false
	for _, m := range ms {
		if c.generated(units.MountName(m.Point)) {
			continue
		}
		var why string
		switch {
		case filepath.Dir(m.Point) == layout.MachinesDir:
			why = c.rootUnused(filepath.Base(m.Point))
		case filepath.Dir(m.Point) == layout.UpperDir:
			why = unused(m.Point, ms, nil)
		case filepath.Dir(m.Point) == layout.LayersDir:
			why = unused(m.Point, ms, c.loopFiles())
		}
		if why == "" {
			continue
		}
		kind := map[string]string{layout.MachinesDir: "root", layout.UpperDir: "upper", layout.LayersDir: "layer"}[filepath.Dir(m.Point)]
		point := m.Point
		if c.act(kind, point, why, func() error { return c.Unmount(point) }) {
			changed = true
		}
	}
	return changed
}

// rootUnused says why the root of container name can go, or "" when it
// cannot: it is not Strata's (no record), or its container may run.
func (c *collection) rootUnused(name string) string {
	if _, ok, _ := c.State.Container(name); !ok || !c.stopped(name) {
		return ""
	}
	return "container " + name + " is stopped and no unit file describes this root any more"
}

// unused says why the mount at point is used by nothing, or "".
func unused(point string, ms []mountinfo.Mount, files []string) string {
	for _, m := range ms {
		if m.Point == point {
			continue
		}
		if mountinfo.Under(m.Point, point) {
			return "" // something is mounted inside
		}
		for _, l := range m.Lowers() {
			if mountinfo.Under(l, point) {
				return ""
			}
		}
		for _, k := range []string{"upperdir", "workdir"} {
			if v, ok := m.Option(k); ok && mountinfo.Under(v, point) {
				return ""
			}
		}
	}
	for _, f := range files {
		if mountinfo.Under(f, point) {
			return "" // a loop device's backing file lives on it
		}
	}
	return "no unit file describes it any more and nothing uses it"
}

func (c *collection) loopFiles() []string {
	as, err := c.State.Attachments()
	if err != nil {
		c.errs = append(c.errs, err)
	}
	var out []string
	for _, a := range as {
		if a.File != "" && !c.done["attachment "+a.ID] {
			out = append(out, a.File)
		}
	}
	return out
}

// attachments releases recorded devices that no unit file describes and
// no mount uses.
func (c *collection) attachments(ms []mountinfo.Mount) bool {
	as, err := c.State.Attachments()
	if err != nil {
		c.errs = append(c.errs, err)
		return false
	}
	changed := false
	for _, a := range as {
		u := layout.AttachUnit(a.ID)
		if c.generated(u+".d/"+layout.DropInName) || deviceInUse(a.Device, ms) {
			continue
		}
		a := a
		if c.act("attachment", a.ID, "no unit file describes it any more and no mount uses "+or(a.Device, "it"), func() error { return c.release(a) }) {
			changed = true
		}
	}
	return changed
}

// release lets go of a through its unit when systemd has it active (the
// template's ExecStop= releases it and systemd's view stays true), else
// directly.
func (c *collection) release(a state.Attachment) error {
	u := layout.AttachUnit(a.ID)
	states, err := c.Systemd.States([]string{u})
	if err == nil && states[u].Active == "active" {
		if err := c.Systemd.Stop(u, true); err != nil {
			return err
		}
		if _, ok, _ := c.State.Attachment(a.ID); !ok {
			return nil
		}
	}
	if err := c.Release(a); err != nil {
		return err
	}
	return c.State.RemoveAttachment(a.ID)
}

func deviceInUse(dev string, ms []mountinfo.Mount) bool {
	if dev == "" {
		return false
	}
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		real = dev
	}
	// A device another one is stacked on (a loop device under a verity
	// device) is in use until that one is released.
	if hs, err := os.ReadDir("/sys/class/block/" + filepath.Base(real) + "/holders"); err == nil && len(hs) > 0 {
		return true
	}
	for _, m := range ms {
		if m.Source == dev || m.Source == real {
			return true
		}
	}
	return false
}

// units stops Strata's units that hold nothing any more but that systemd
// still shows active: those whose file is gone, and the clean-up units of
// stopped containers.
func (c *collection) units() {
	for _, pattern := range []string{layout.UpperPrefix + "*.service", layout.HealthPrefix + "*.timer", layout.HealthPrefix + "*.service",
		layout.AttachPrefix + "*.service", layout.CleanupPrefix + "*.service"} {
		us, err := c.Systemd.List(pattern)
		if err != nil {
			c.errs = append(c.errs, err)
			continue
		}
		for _, u := range us {
			if u.Active == "failed" {
				c.resetOrphan(u)
				continue
			}
			if u.Active != "active" {
				continue
			}
			name, wait := u.Name, true
			cleanup, isCleanup := layout.Instance(name, layout.CleanupPrefix)
			id, isAttach := layout.Instance(name, layout.AttachPrefix)
			switch {
			case isCleanup:
				if !c.stopped(cleanup) {
					continue // its container runs (its own stop is not "active")
				}
				wait = false // its own clean-up runs after this one
			case isAttach:
				if _, ok, _ := c.State.Attachment(id); ok || c.generated(name+".d/"+layout.DropInName) {
					continue // holds a device, or systemd's to stop
				}
			default:
				// A container's own unit (upper, health) whose file is gone:
				// a reload took its dependencies on the container with it
				// (a health timer's BindsTo=), so it outlives the container.
				if u.Load != "not-found" || !c.stopped(owner(name)) {
					continue
				}
			}
			c.act("unit", name, "it holds nothing any more", func() error { return c.Systemd.Stop(name, wait) })
		}
	}
}

// resetOrphan forgets the failure of a container's own unit whose file is
// gone once the container has stopped: systemd fails a health timer whose
// service vanished at a reload ("unit to trigger vanished"), and a failed
// unit that nothing can start again only leaves the node "degraded".
func (c *collection) resetOrphan(u Unit) {
	container := owner(u.Name)
	if container == "" || u.Load != "not-found" || !c.stopped(container) {
		return
	}
	c.act("unit", u.Name, "it failed and its file is gone", func() error { return c.Systemd.ResetFailed(u.Name) })
}

// owner is the container a per-container unit (upper preparation, health
// timer or service) belongs to.
func owner(unit string) string {
	for _, p := range []string{layout.UpperPrefix, layout.HealthPrefix} {
		if rest, ok := strings.CutPrefix(unit, p); ok {
			return strings.TrimSuffix(rest, filepath.Ext(rest))
		}
	}
	return ""
}

// stopped reports whether container has no process left: inactive, or
// deactivating with its main process gone (its own ExecStopPost= runs the
// collection then). Only then may its root go: a running container's root
// unmounted here would live on in the container's mount namespace, with
// its layers and devices busy and no longer accounted for.
func (c *collection) stopped(container string) bool {
	unit := layout.ContainerUnit(container)
	states, err := c.Systemd.States([]string{unit})
	if err != nil {
		c.errs = append(c.errs, err)
		return false
	}
	s := states[unit]
	return s.Active == "inactive" || s.Active == "failed" || s.Active == "deactivating" && s.MainPID == 0
}

// records forgets the containers that are stopped and whose root is gone,
// and their health records.
func (c *collection) records() {
	names, err := c.State.ContainerNames()
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	ms, _ := mountinfo.Read(c.Mountinfo)
	for _, name := range names {
		root := filepath.Join(layout.MachinesDir, name)
		if slices.ContainsFunc(ms, func(m mountinfo.Mount) bool { return m.Point == root }) {
			continue
		}
		if !c.stopped(name) {
			continue
		}
		if c.o.DryRun {
			continue // a record is no resource: not worth a line
		}
		if err := c.State.RemoveContainer(name); err != nil {
			c.errs = append(c.errs, err)
		}
		if err := c.State.RemoveHealth(name); err != nil {
			c.errs = append(c.errs, err)
		}
	}
}

// cdiFiles removes the CDI environment files (written at each start,
// read by the same start's ExecStart=) of containers that neither run nor
// are defined any more: a defined container's is kept, as its last
// start resolved its devices, until the next start rewrites it. As with
// the other records, a dry run does not list them.
func (c *collection) cdiFiles() {
	if c.CDIDir == "" || c.o.DryRun {
		return
	}
	files, err := os.ReadDir(c.CDIDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.errs = append(c.errs, err)
		}
		return
	}
	for _, f := range files {
		name, ok := strings.CutSuffix(f.Name(), ".env")
		if !ok || f.IsDir() || c.describes(layout.ContainerUnit(name)+".d/"+layout.DropInName, layout.CDIEnvFile(name)) || !c.stopped(name) {
			continue
		}
		path := filepath.Join(c.CDIDir, f.Name())
		c.act("record", path, "container "+name+" is stopped and no unit file reads it any more", func() error { return os.Remove(path) })
		c.deviceAllowDropIn(name)
	}
}

// deviceAllowDropIn removes the DeviceAllow= drop-in the same start left
// for the container's CDI devices (in /run, so a reboot clears it too):
// with the environment file gone, nothing will start that container with
// those devices again.
func (c *collection) deviceAllowDropIn(name string) {
	if c.ControlDir == "" {
		return
	}
	rel := strings.TrimPrefix(layout.DeviceAllowDropIn(name), layout.ControlDir)
	path := filepath.Join(c.ControlDir, rel)
	if _, err := os.Lstat(path); err != nil {
		return
	}
	c.act("record", path, "container "+name+"'s CDI devices are no longer allowed to anything", func() error {
		if err := os.Remove(path); err != nil {
			return err
		}
		os.Remove(filepath.Dir(path)) // only if empty: other set-property drop-ins stay
		return nil
	})
}

// describes reports whether the generator still writes rel and it names
// path: a container's drop-in stays, retiring or a placeholder, when its
// definition goes or breaks, but no longer names what that definition used.
func (c *collection) describes(rel, path string) bool {
	for _, d := range c.GeneratorDirs {
		if data, err := os.ReadFile(filepath.Join(d, rel)); err == nil && bytes.Contains(data, []byte(path)) {
			return true
		}
	}
	return false
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
