//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/test/testbed"
)

// A health check's units when its definition is removed, or its health
// section deleted, while the container runs and a check is under way:
// the reload takes their files, and with them the timer's BindsTo= on the
// container, so systemd keeps the timer active ("not-found") past the
// container's stop. They follow the rest of the chain's units whose file
// went (the upper's service): left as they are while the container runs,
// stopped by the collection its stop runs.
func TestHealthRemovedWhileRunning(t *testing.T) {
	n := boot(t, testbed.Options{})
	// A check that takes a while, so one is under way at the reload.
	health := `"health": {"command": "/bin/sleep 3", "interval": "1s", "start_period": "1s", "timeout": "1min"}`
	names := []string{"gone", "edited"}
	for _, name := range names {
		n.define(name+".json", withFields(health))
	}
	// quiet's check is not under way at the reload: systemd fails its
	// timer then ("unit to trigger vanished"); its stop resets that, so a
	// removed definition never leaves the node degraded.
	n.define("quiet.json", withFields(`"health": {"command": "/bin/true", "interval": "1h", "start_period": "1s"}`))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", layout.ContainerUnit("quiet"))
	t.Cleanup(func() { n.try("systemctl", "stop", layout.ContainerUnit("quiet")) })
	for _, name := range names {
		n.run("systemctl", "start", layout.ContainerUnit(name))
		t.Cleanup(func() { n.try("systemctl", "stop", layout.ContainerUnit(name)) })
	}
	checks := []string{layout.HealthUnit("gone"), layout.HealthUnit("edited")}
	timers := []string{layout.HealthTimer("gone"), layout.HealthTimer("edited")}
	n.waitUntil("a health check under way in both containers", func() (bool, string) {
		out, _ := n.try(append([]string{"systemctl", "is-active"}, checks...)...)
		return out == "activating\nactivating", out
	})

	n.waitUntil("quiet's first check done", func() (bool, string) {
		out, _ := n.try("systemctl", "show", "--property=ExecMainExitTimestampMonotonic", "--value", layout.HealthUnit("quiet"))
		return out != "" && out != "0", out
	})
	for _, f := range []string{"gone.json", "quiet.json"} {
		if err := os.Remove(filepath.Join(n.defs, f)); err != nil {
			t.Fatal(err)
		}
	}
	n.define("edited.json", demo) // no health section
	n.run("systemctl", "daemon-reload")
	for _, name := range names {
		if state, _ := n.try("systemctl", "is-active", layout.ContainerUnit(name)); state != "active" {
			t.Fatalf("container %s is %s after the reload", name, state)
		}
	}
	if load := n.run(append([]string{"systemctl", "show", "--property=LoadState", "--value"}, append(timers, checks...)...)...); strings.Count(load, "not-found") != 4 {
		t.Errorf("the health units still have files after the reload: %q", load)
	}
	// The checks under way end; nothing starts another.
	n.waitInactive(checks...)
	n.onlyNeeded()

	n.stopAll(append(names, "quiet")...)
	timers = append(timers, layout.HealthTimer("quiet"))
	checks = append(checks, layout.HealthUnit("quiet"))
	if out, _ := n.try(append([]string{"systemctl", "is-active"}, timers...)...); slices.Contains(strings.Fields(out), "active") {
		t.Errorf("health timers after their containers stopped: %q", out)
	}
	if out, _ := n.try(append([]string{"systemctl", "is-failed"}, append(timers, checks...)...)...); slices.Contains(strings.Fields(out), "failed") {
		t.Errorf("health units left failed after their containers stopped: %q", out)
	}
}
