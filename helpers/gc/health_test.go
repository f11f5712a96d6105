package gc

import (
	"slices"
	"testing"

	"github.com/strata-project/strata/internal/layout"
)

// A health timer and service whose files went with their definition (or
// its health section) while the container ran lost their BindsTo= at the
// reload: once the container has stopped, the collector stops them, as it
// stops an upper's service. Loaded ones, and those of a running container,
// are systemd's.
func TestHealthUnitsOfAStoppedContainer(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.sd.load = map[string]string{}
	for _, name := range []string{"gone", "running.dots", "defined"} {
		for _, u := range []string{layout.HealthTimer(name), layout.HealthUnit(name)} {
			w.sd.states[u] = State{Active: "active"}
			if name != "defined" {
				w.sd.load[u] = "not-found"
			}
		}
	}
	w.sd.states[layout.ContainerUnit("running.dots")] = State{Active: "active", MainPID: 7}

	if _, err := w.n.Collect(Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{layout.HealthUnit("gone"), layout.HealthTimer("gone")}
	slices.Sort(w.sd.stopped)
	if !slices.Equal(w.sd.stopped, want) {
		t.Errorf("stopped %q, want %q", w.sd.stopped, want)
	}
	// Once the running one stops too.
	w.sd.states[layout.ContainerUnit("running.dots")] = State{Active: "deactivating"}
	w.sd.stopped = nil
	w.n.Collect(Options{Container: "running.dots"})
	want = []string{layout.HealthUnit("running.dots"), layout.HealthTimer("running.dots")}
	slices.Sort(w.sd.stopped)
	if !slices.Equal(w.sd.stopped, want) {
		t.Errorf("after its container stopped: stopped %q, want %q", w.sd.stopped, want)
	}
}

// A health timer systemd failed at the reload ("unit to trigger vanished")
// is reset once its container has stopped, so the node is not left
// degraded; a running container's, and a loaded one's, are left alone.
func TestFailedHealthUnitsReset(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.sd.load = map[string]string{}
	for _, name := range []string{"gone", "running", "defined"} {
		u := layout.HealthTimer(name)
		w.sd.states[u] = State{Active: "failed"}
		if name != "defined" {
			w.sd.load[u] = "not-found"
		}
	}
	w.sd.states[layout.ContainerUnit("running")] = State{Active: "active", MainPID: 7}
	acts, err := w.n.Collect(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{layout.HealthTimer("gone")}; !slices.Equal(w.sd.reset, want) || len(w.sd.stopped) != 0 {
		t.Errorf("reset %q and stopped %q, want reset %q only", w.sd.reset, w.sd.stopped, want)
	}
	if len(acts) != 1 || acts[0].Kind != "unit" || acts[0].Name != layout.HealthTimer("gone") {
		t.Errorf("reported %v", acts)
	}
}
