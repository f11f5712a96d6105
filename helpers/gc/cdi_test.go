package gc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
)

// A container's CDI environment file goes once the container neither runs
// nor is defined (its drop-in names the file); a running container's, and
// a defined one's, stay; a dry run removes nothing and lists no record.
func TestCDIEnvFiles(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.n.CDIDir = filepath.Join(t.TempDir(), "cdi")
	os.MkdirAll(w.n.CDIDir, 0o755)
	gen := w.n.GeneratorDirs[0]
	dropIn := func(name, body string) {
		p := filepath.Join(gen, layout.ContainerUnit(name)+".d", layout.DropInName)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	// defined: stopped, its drop-in reads the file; removed: stopped, its
	// drop-in a retiring one; running: its definition removed; gone: no
	// drop-in at all.
	dropIn("defined", "[Service]\nEnvironmentFile=-"+layout.CDIEnvFile("defined")+"\n")
	dropIn("removed", "[Service]\nExecStart=\nExecStart=/usr/libexec/strata/strata-helper fail -- \"the definition of container removed was removed\"\n")
	w.sd.states[layout.ContainerUnit("running")] = State{Active: "active", MainPID: 7}
	w.sd.states[layout.ContainerUnit("removed")] = State{Active: "deactivating"}
	for _, name := range []string{"defined", "removed", "running", "gone"} {
		os.WriteFile(filepath.Join(w.n.CDIDir, name+".env"), []byte("STRATA_CDI_ARGS=\"--bind=/dev/x\"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(w.n.CDIDir, "notes"), nil, 0o644) // not an environment file: not ours
	// The DeviceAllow= drop-ins `strata-helper cdi` left: removed's goes
	// with its file, running's stays, and a neighbour set-property
	// drop-in in removed's directory is not ours.
	w.n.ControlDir = filepath.Join(t.TempDir(), "system.control")
	control := func(name string) string {
		return filepath.Join(w.n.ControlDir, strings.TrimPrefix(layout.DeviceAllowDropIn(name), layout.ControlDir))
	}
	for _, name := range []string{"removed", "running"} {
		os.MkdirAll(filepath.Dir(control(name)), 0o755)
		os.WriteFile(control(name), []byte("[Service]\nDeviceAllow=/dev/x rw\n"), 0o644)
	}
	neighbour := filepath.Join(filepath.Dir(control("removed")), "50-CPUQuota.conf")
	os.WriteFile(neighbour, nil, 0o644)

	if acts, err := w.n.Collect(Options{DryRun: true}); err != nil || len(acts) != 0 {
		t.Fatalf("dry run: %v, %v", acts, err)
	}
	if left := envFiles(t, w.n.CDIDir); len(left) != 5 {
		t.Fatalf("a dry run removed files: %q left", left)
	}
	acts, err := w.n.Collect(Options{Container: "removed"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"defined.env", "notes", "running.env"}; !slices.Equal(envFiles(t, w.n.CDIDir), want) {
		t.Errorf("left %q, want %q", envFiles(t, w.n.CDIDir), want)
	}
	for path, want := range map[string]bool{control("removed"): false, control("running"): true, neighbour: true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", path, err == nil, want)
		}
	}
	var removed []string
	for _, a := range acts {
		if a.Kind != "record" || a.Why == "" {
			t.Errorf("action %v", a)
		}
		removed = append(removed, a.Name)
	}
	slices.Sort(removed)
	if want := []string{filepath.Join(w.n.CDIDir, "gone.env"), filepath.Join(w.n.CDIDir, "removed.env"), control("removed")}; !slices.Equal(removed, want) {
		t.Errorf("reported %q, want %q", removed, want)
	}
	// Nothing there at all is not an error.
	w.n.CDIDir = filepath.Join(t.TempDir(), "none")
	if _, err := w.n.Collect(Options{}); err != nil {
		t.Errorf("without the directory: %v", err)
	}
}

func envFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
