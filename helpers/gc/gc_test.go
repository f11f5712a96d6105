package gc

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/helpers/state"
	"github.com/strata-project/strata/internal/layout"
)

// The collector's decisions over a mount table, generator output and
// records. The real path (systemd, mounts, loop devices) runs in
// test/integration's day-two scenarios; here each rule is pinned down.

// systemd answers with fixed states and records what was stopped.
type systemd struct {
	states  map[string]State
	load    map[string]string // LoadState when not "loaded" (upper services: "not-found")
	stopped []string
	reset   []string
}

func (s *systemd) States(units []string) (map[string]State, error) {
	out := map[string]State{}
	for _, u := range units {
		st, ok := s.states[u]
		if !ok {
			st = State{Active: "inactive"}
		}
		out[u] = st
	}
	return out, nil
}

func (s *systemd) List(pattern string) ([]Unit, error) {
	var us []Unit
	for name, st := range s.states {
		if ok, _ := filepath.Match(pattern, name); ok {
			load := "loaded"
			if strings.HasPrefix(name, "strata-upper-") {
				load = "not-found"
			}
			if l, ok := s.load[name]; ok {
				load = l
			}
			us = append(us, Unit{Name: name, Load: load, Active: st.Active})
		}
	}
	return us, nil
}

func (s *systemd) ResetFailed(unit string) error {
	s.reset = append(s.reset, unit)
	s.states[unit] = State{Active: "inactive"}
	return nil
}

func (s *systemd) Stop(unit string, wait bool) error {
	s.stopped = append(s.stopped, unit)
	s.states[unit] = State{Active: "inactive"}
	return nil
}

const (
	layerOld = layout.LayersDir + "/loop_old_1"
	layerNew = layout.LayersDir + "/loop_new_2"
)

func mountLine(id int, point, fstype, source, opts string) string {
	return strings.Join([]string{itoa(id), "1", "0:1", "/", point, "rw", "-", fstype, source, opts}, " ")
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

type world struct {
	t       *testing.T
	n       *Node
	sd      *systemd
	mounts  []string
	unmount []string
	release []string
}

func newWorld(t *testing.T, mounts []string, generated []string) *world {
	dir := t.TempDir()
	gen := filepath.Join(dir, "generator")
	for _, g := range generated {
		p := filepath.Join(gen, g)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	w := &world{t: t, sd: &systemd{states: map[string]State{}}, mounts: mounts}
	mi := filepath.Join(dir, "mountinfo")
	write := func() { os.WriteFile(mi, []byte(strings.Join(w.mounts, "\n")+"\n"), 0o644) }
	write()
	w.n = &Node{
		Mountinfo: mi, GeneratorDirs: []string{gen}, State: state.Store{Dir: filepath.Join(dir, "state")}, Systemd: w.sd,
		Unmount: func(p string) error {
			w.unmount = append(w.unmount, p)
			for i, l := range w.mounts {
				if strings.Fields(l)[4] == p {
					w.mounts = append(w.mounts[:i], w.mounts[i+1:]...)
					break
				}
			}
			write()
			return nil
		},
		Release: func(a state.Attachment) error { w.release = append(w.release, a.ID); return nil },
	}
	return w
}

func overlay(id int, name string, lowers ...string) string {
	return mountLine(id, layout.MachinesDir+"/"+name, "overlay", "overlay",
		"rw,lowerdir="+strings.Join(lowers, ":")+",upperdir="+layout.UpperDir+"/"+name+"/upper,workdir="+layout.UpperDir+"/"+name+"/work")
}

// After a roll-out and restart: the old layer and its device go, the new
// ones (whose units exist) and the running root stay.
func TestRollOutReleasesTheOldLayerOnly(t *testing.T) {
	w := newWorld(t, []string{
		mountLine(10, layerOld, "squashfs", "/dev/loop0", "ro"),
		mountLine(11, layerNew, "squashfs", "/dev/loop1", "ro"),
		mountLine(12, layout.UpperDir+"/demo", "tmpfs", "tmpfs", "rw"),
		overlay(13, "demo", layerNew),
	}, []string{"run-strata-layers-loop_new_2.mount", "strata-attach@loop_new_2.service.d/50-strata.conf",
		"var-lib-machines-demo.mount", "run-strata-upper-demo.mount"})
	w.n.State.PutContainer(state.Container{Name: "demo", Generation: "g2"})
	w.n.State.PutAttachment(state.Attachment{ID: "loop_old_1", Device: "/dev/loop0", Release: []string{"loop-detach"}})
	w.n.State.PutAttachment(state.Attachment{ID: "loop_new_2", Device: "/dev/loop1", Release: []string{"loop-detach"}})
	w.sd.states["systemd-nspawn@demo.service"] = State{Active: "active", MainPID: 7}
	w.sd.states["strata-attach@loop_old_1.service"] = State{Active: "active"}

	acts, err := w.n.Collect(Options{Container: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.unmount, []string{layerOld}) {
		t.Errorf("unmounted %q, want only the old layer", w.unmount)
	}
	// The old device is released through its unit (whose ExecStop=
	// releases it), then directly as its record is still there.
	if !reflect.DeepEqual(w.sd.stopped, []string{"strata-attach@loop_old_1.service"}) || !reflect.DeepEqual(w.release, []string{"loop_old_1"}) {
		t.Errorf("stopped %q, released %q", w.sd.stopped, w.release)
	}
	if _, ok, _ := w.n.State.Attachment("loop_old_1"); ok {
		t.Error("the old record is kept")
	}
	if _, ok, _ := w.n.State.Container("demo"); !ok {
		t.Error("the running container's record is gone")
	}
	if len(acts) != 2 {
		t.Errorf("actions %v", acts)
	}
}

// A removed definition's running container keeps everything; once its
// main process is gone (its own ExecStopPost=), everything goes.
func TestRemovedDefinitionWaitsForTheStop(t *testing.T) {
	mounts := []string{
		mountLine(10, layerOld, "squashfs", "/dev/loop0", "ro"),
		mountLine(12, layout.UpperDir+"/demo", "tmpfs", "tmpfs", "rw"),
		overlay(13, "demo", layerOld),
	}
	w := newWorld(t, mounts, nil)
	w.n.State.PutContainer(state.Container{Name: "demo"})
	w.n.State.PutHealth(state.Health{Name: "demo", Status: state.HealthHealthy})
	w.n.State.PutAttachment(state.Attachment{ID: "loop_old_1", Device: "/dev/loop0", Release: []string{"loop-detach"}})
	w.sd.states["systemd-nspawn@demo.service"] = State{Active: "active", MainPID: 7}
	w.sd.states["strata-upper-demo.service"] = State{Active: "active"}

	if acts, err := w.n.Collect(Options{}); err != nil || len(acts) != 0 || len(w.unmount) != 0 {
		t.Fatalf("while it runs: %v %v, unmounted %q", acts, err, w.unmount)
	}
	// Stopping: deactivating with processes is still running.
	w.sd.states["systemd-nspawn@demo.service"] = State{Active: "deactivating", MainPID: 7}
	if acts, _ := w.n.Collect(Options{Container: "demo"}); len(acts) != 0 {
		t.Fatalf("while its processes run: %v", acts)
	}
	w.sd.states["systemd-nspawn@demo.service"] = State{Active: "deactivating"}
	if _, err := w.n.Collect(Options{Container: "demo"}); err != nil {
		t.Fatal(err)
	}
	// The root first; the upper and the layer once nothing uses them.
	if want := []string{layout.MachinesDir + "/demo", layerOld, layout.UpperDir + "/demo"}; w.unmount[0] != want[0] || !sameSet(w.unmount, want) {
		t.Errorf("unmounted %q, want %q", w.unmount, want)
	}
	if !reflect.DeepEqual(w.release, []string{"loop_old_1"}) || !reflect.DeepEqual(w.sd.stopped, []string{"strata-upper-demo.service"}) {
		t.Errorf("released %q, stopped %q", w.release, w.sd.stopped)
	}
	if names, _ := w.n.State.ContainerNames(); len(names) != 0 {
		t.Errorf("records left: %v", names)
	}
	if _, ok, _ := w.n.State.Health("demo"); ok {
		t.Errorf("the health record is left")
	}
}

// What is not Strata's, or is described by a unit file, is never touched;
// a dry run touches nothing and says what it would do.
func TestLeavesAloneWhatIsNotOrphaned(t *testing.T) {
	w := newWorld(t, []string{
		mountLine(10, layerOld, "squashfs", "/dev/loop0", "ro"),                     // generated: systemd's
		mountLine(11, layout.MachinesDir+"/other", "overlay", "overlay", "rw"),      // no record: not Strata's
		mountLine(12, layout.LayersDir+"/nfs_x_3", "nfs", "srv:/x", "ro"),           // a loop file lives on it
		mountLine(14, layout.LayersDir+"/loop_y_4", "squashfs", "/dev/loop4", "ro"), // orphaned and unused
	}, []string{"run-strata-layers-loop_old_1.mount"})
	w.n.State.PutAttachment(state.Attachment{ID: "loop_f_5", Device: "/dev/loop5", File: layout.LayersDir + "/nfs_x_3/f.sqfs", Release: []string{"loop-detach"}})
	w.sd.states["strata-attach@loop_f_5.service"] = State{Active: "active"}
	w.n.GeneratorDirs = append(w.n.GeneratorDirs, t.TempDir())
	os.MkdirAll(filepath.Join(w.n.GeneratorDirs[0], "strata-attach@loop_f_5.service.d"), 0o755)
	os.WriteFile(filepath.Join(w.n.GeneratorDirs[0], "strata-attach@loop_f_5.service.d", "50-strata.conf"), nil, 0o644)
	// A retiring drop-in alone does not make it described.
	os.WriteFile(filepath.Join(w.n.GeneratorDirs[0], "strata-attach@loop_y_4.service.d", "40-strata-retiring.conf"), nil, 0o644)

	acts, err := w.n.Collect(Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || acts[0].Kind != "layer" || acts[0].Name != layout.LayersDir+"/loop_y_4" || len(w.unmount) != 0 {
		t.Fatalf("dry run: %v, unmounted %q", acts, w.unmount)
	}
	if _, err := w.n.Collect(Options{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.unmount, []string{layout.LayersDir + "/loop_y_4"}) || len(w.release) != 0 {
		t.Errorf("unmounted %q, released %q", w.unmount, w.release)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// The report `strata-helper gc --json` prints is what `strata list` reads:
// the same actions come back, none is an empty list (not null), and a
// report of another shape is an error rather than an empty list.
func TestReportRoundTrip(t *testing.T) {
	actions := []Action{{Kind: "layer", Name: "/run/strata/layers/a: b", Why: "no unit file describes it"}, {Kind: "attachment", Name: "loop_a_1", Why: "unused"}}
	for _, in := range [][]Action{actions, nil} {
		var b strings.Builder
		if err := WriteReport(&b, true, in); err != nil {
			t.Fatal(err)
		}
		rep, err := ReadReport(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		if want := in; !rep.DryRun || rep.Actions == nil || len(rep.Actions) != len(want) || (len(want) > 0 && !reflect.DeepEqual(rep.Actions, want)) {
			t.Errorf("round trip of %v: %+v\n%s", in, rep, b.String())
		}
		if in == nil && !strings.Contains(b.String(), `"actions": []`) {
			t.Errorf("no actions printed as %s, want []", b.String())
		}
	}
	if _, err := ReadReport(strings.NewReader("would release layer x: y\n")); err == nil {
		t.Error("the text output read as a report")
	}
	if _, err := ReadReport(strings.NewReader(`{"dry_run": true, "orphans": []}`)); err == nil {
		t.Error("a report with an unknown field accepted")
	}
}
