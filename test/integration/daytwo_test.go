//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/internal/mountinfo"
	"github.com/strata-project/strata/test/leftover"
	"github.com/strata-project/strata/test/testbed"
)

// Day two: what an administrator does after the first start. Each test
// ends by checking that nothing of Strata's is mounted, attached, recorded
// or active that no running container needs.

// imageAt returns the demo definition on another image file, and makes
// that file inside the node: a copy of the base image, so each version is
// its own file, loop device and layer, as a real roll-out's would be.
func (n *node) version(path string) string {
	n.t.Helper()
	if _, code := n.try("test", "-e", path); code != 0 {
		n.run("cp", "/srv/images/base.sqfs", path)
	}
	return strings.Replace(demo, "/srv/images/base.sqfs", path, 1)
}

// view reads the node's state (test/leftover) and notes its loop devices
// for assertReleased.
func (n *node) view() leftover.View {
	n.t.Helper()
	v, err := leftover.Read(leftoverNode{n})
	if err != nil {
		n.t.Fatal(err)
	}
	n.trackLoops(v.Mounts)
	return v
}

// trackLoops notes the loop devices Strata's layers are mounted from, for
// assertReleased.
func (n *node) trackLoops(ms []mountinfo.Mount) {
	for _, m := range ms {
		// loop_: a loopback layer (a local layer's device is the node's own).
		dev := strings.TrimPrefix(m.Source, "/dev/")
		if filepath.Dir(m.Point) != "/run/strata/layers" || !strings.HasPrefix(filepath.Base(m.Point), "loop_") || !strings.HasPrefix(dev, "loop") {
			continue
		}
		if seq, code := n.try("cat", "/sys/block/"+dev+"/diskseq"); code == 0 {
			n.loops[dev] = seq
		}
	}
}

// backing returns the image file behind a layer directory.
func (n *node) backing(layer string) string {
	n.t.Helper()
	out, _ := n.try("sh", "-c", "cat /sys/block/$(basename $(findmnt -no SOURCE "+layer+"))/loop/backing_file")
	return out
}

// runsOn checks that container name runs on image file, and only on it.
func (n *node) runsOn(name, file string) {
	n.t.Helper()
	v := n.view()
	ls := v.Lowers(name)
	if len(ls) != 1 {
		n.t.Fatalf("%s: root mounted on %q, want one layer (of %s)", name, ls, file)
	}
	if got := n.backing(ls[0]); got != file {
		n.t.Errorf("%s runs on %s, want %s", name, got, file)
	}
}

// onlyNeeded waits until what is mounted, attached and recorded is exactly
// what the running containers use (the clean-up may still be finishing
// when systemctl returns), and fails with the difference.
func (n *node) onlyNeeded() {
	n.t.Helper()
	defer func() {
		if n.t.Failed() {
			args := []string{"journalctl", "--no-pager", "-o", "short-monotonic"}
			for _, g := range append(layout.UnitGlobs(), layout.ContainerPrefix+"*") {
				args = append(args, "-u", g)
			}
			log, _ := n.try(args...)
			n.t.Logf("journal of Strata's units:\n%s", log)
		}
	}()
	n.waitUntil("nothing left that no running container needs", func() (bool, string) {
		extra := n.view().Extra()
		return len(extra) == 0, strings.Join(extra, "\n")
	})
}

// restartToApply is what `strata list --json` says of container name.
func (n *node) restartToApply(name string) bool {
	n.t.Helper()
	r := n.ok("list", n.cli("list", "--json"))
	var l struct {
		Containers []struct {
			Name           string `json:"name"`
			RestartToApply bool   `json:"restart_to_apply"`
		} `json:"containers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		n.t.Fatalf("strata list --json: %v\n%s", err, r)
	}
	for _, c := range l.Containers {
		if c.Name == name {
			return c.RestartToApply
		}
	}
	n.t.Fatalf("strata list has no %s:\n%s", name, r)
	return false
}

func (n *node) reloadRestart(name string) {
	n.t.Helper()
	n.run("systemctl", "daemon-reload")
	if out, code := n.try("systemctl", "restart", "systemd-nspawn@"+name+".service"); code != 0 {
		// Which unit of the chain failed, and why: the journal of this boot's
		// last lines says it; "a dependency job failed" alone does not.
		journal, _ := n.try("journalctl", "-b", "--no-pager", "-n", "80", "-o", "short-monotonic")
		n.t.Fatalf("systemctl restart %s: exit %d: %s\njournal:\n%s", name, code, out, journal)
	}
}

func (n *node) stopAll(names ...string) {
	n.t.Helper()
	for _, name := range names {
		n.try("systemctl", "stop", "systemd-nspawn@"+name+".service")
	}
	n.onlyNeeded()
	n.assertReleased()
}

// Roll an image forward and back with restarts: each restart runs the new
// image and releases the old one.
func TestRollOutAndBack(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	n.runsOn("demo", "/srv/images/base.sqfs")

	if n.restartToApply("demo") {
		t.Error("strata list says restart to apply before any edit")
	}
	n.define("demo.json", n.version("/var/tmp/v2.sqfs"))
	n.run("systemctl", "daemon-reload")
	// Until the restart it runs as it was started, and nothing is lost;
	// strata list and status say that a restart applies the edit.
	n.runsOn("demo", "/srv/images/base.sqfs")
	n.onlyNeeded()
	if !n.restartToApply("demo") {
		t.Error("strata list does not say restart to apply after an edit")
	}
	if st := n.cli("status", "demo"); !strings.Contains(st.stdout, "restart to apply") {
		t.Errorf("strata status does not say restart to apply:\n%s", st)
	}

	n.run("systemctl", "restart", "systemd-nspawn@demo.service")
	n.runsOn("demo", "/var/tmp/v2.sqfs")
	n.onlyNeeded()
	if n.restartToApply("demo") {
		t.Error("strata list still says restart to apply after the restart")
	}

	n.define("demo.json", demo) // roll back
	n.reloadRestart("demo")
	n.runsOn("demo", "/srv/images/base.sqfs")
	n.onlyNeeded()

	// Edited, reloaded, then stopped rather than restarted: the layer it
	// ran on is released too, though no unit file names it any more.
	n.define("demo.json", n.version("/var/tmp/v2.sqfs"))
	n.run("systemctl", "daemon-reload")
	n.stopAll("demo")
}

// A definition removed while its container runs: the container keeps
// running; stopping it releases everything.
func TestRemoveWhileRunningThenStop(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	if err := os.Remove(filepath.Join(n.defs, "demo.json")); err != nil {
		t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	if state, _ := n.try("systemctl", "is-active", "systemd-nspawn@demo.service"); state != "active" {
		t.Fatalf("the container is %s after its definition went", state)
	}
	n.onlyNeeded()
	if out, _ := n.try("systemctl", "status", "--no-pager", "systemd-nspawn@demo.service"); !strings.Contains(out, "definition removed") {
		t.Errorf("status does not say the definition is gone:\n%s", out)
	}
	n.stopAll("demo")
	// Starting it again says why it cannot.
	if out, code := n.try("systemctl", "start", "systemd-nspawn@demo.service"); code == 0 {
		t.Errorf("a removed container started: %s", out)
	}
}

// A definition removed while its container runs, then the node reboots:
// nothing of it comes back.
func TestRemoveWhileRunningThenReboot(t *testing.T) {
	n := boot(t, testbed.Options{Persistent: true})
	n.define("demo.json", strings.Replace(demo, `"state": "created"`, `"state": "running"`, 1))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	os.Remove(filepath.Join(n.defs, "demo.json"))
	n.run("systemctl", "daemon-reload")
	if err := n.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if state, _ := n.try("systemctl", "is-active", "systemd-nspawn@demo.service"); state == "active" {
		t.Errorf("the removed container came back at boot")
	}
	n.onlyNeeded()
	n.assertReleased()
}

// A definition broken while its container runs: it keeps running, status
// says what is wrong, and stopping it releases everything.
func TestBrokenWhileRunning(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	n.define("demo.json", strings.Replace(demo, `"systemd": true`, `"systemd": true, "bogus": 1`, 1))
	n.run("systemctl", "daemon-reload")
	if state, _ := n.try("systemctl", "is-active", "systemd-nspawn@demo.service"); state != "active" {
		t.Fatalf("the container is %s after its definition broke", state)
	}
	n.onlyNeeded()
	n.stopAll("demo")
	out, code := n.try("systemctl", "start", "systemd-nspawn@demo.service")
	if code == 0 {
		t.Fatalf("a broken definition started")
	}
	if log, _ := n.try("journalctl", "--no-pager", "-u", "systemd-nspawn@demo.service"); !strings.Contains(log, "bogus") {
		t.Errorf("the journal does not name the problem: %s\n%s", out, log)
	}
	n.assertReleased()
}

// Two containers share a layer and move to a new image one at a time: the
// shared layer stays until its last user moves.
func TestSharedLayerMovesOneAtATime(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("a.json", demo)
	n.define("b.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@a.service", "systemd-nspawn@b.service")
	if v := n.view(); len(v.Attachments) != 1 {
		t.Fatalf("two containers on one image: %d attachments %v", len(v.Attachments), v.Attachments)
	}
	v2 := n.version("/var/tmp/v2.sqfs")
	n.define("a.json", v2)
	n.reloadRestart("a")
	n.runsOn("a", "/var/tmp/v2.sqfs")
	n.runsOn("b", "/srv/images/base.sqfs")
	n.onlyNeeded()
	if v := n.view(); len(v.Attachments) != 2 {
		t.Errorf("b's layer went with a's move: %v", v.Attachments)
	}
	n.define("b.json", v2)
	n.reloadRestart("b")
	n.runsOn("b", "/var/tmp/v2.sqfs")
	n.onlyNeeded()
	if v := n.view(); len(v.Attachments) != 1 {
		t.Errorf("after both moved: %v", v.Attachments)
	}
	n.stopAll("a", "b")
}

// What the clean-up could not release (a process held the old layer busy
// at the restart) shows in strata list as not needed by any running
// container, and strata gc releases it once it can, never what runs.
func TestOrphansShownAndCollected(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	old := n.view().Lowers("demo")[0]
	n.run("systemd-run", "--unit=holder", "--property=WorkingDirectory="+old, "/bin/sleep", "infinity")
	n.define("demo.json", n.version("/var/tmp/v2.sqfs"))
	n.reloadRestart("demo")
	n.runsOn("demo", "/var/tmp/v2.sqfs")

	r := n.ok("list", n.cli("list"))
	if !strings.Contains(r.stdout, "Not needed by any running container") || !strings.Contains(r.stdout, "layer "+old) {
		t.Errorf("strata list does not show the busy old layer:\n%s", r)
	}
	var l struct {
		Orphans []struct{ Kind, Name string } `json:"orphans"`
	}
	if err := json.Unmarshal([]byte(n.ok("list", n.cli("list", "--json")).stdout), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Orphans) == 0 || l.Orphans[0].Kind != "layer" || l.Orphans[0].Name != old {
		t.Errorf("strata list --json orphans: %+v", l.Orphans)
	}
	dry := n.cli("gc", "--dry-run")
	if !strings.Contains(dry.stdout, "would release layer "+old) {
		t.Errorf("strata gc --dry-run: %s", dry)
	}
	if v := n.view(); len(v.Attachments) != 2 {
		t.Errorf("a dry run released something: %v", v.Attachments)
	}
	// While the holder runs, gc fails on the busy layer and says so.
	if r := n.cli("gc"); r.code == 0 || !strings.Contains(r.stderr, old) {
		t.Errorf("strata gc with the layer busy: %s", r)
	}
	n.run("systemctl", "stop", "holder")
	n.ok("gc", n.cli("gc"))
	n.onlyNeeded()
	n.runsOn("demo", "/var/tmp/v2.sqfs")
	n.stopAll("demo")
}

// Fifty roll-outs back and forth: devices, mounts and records do not grow.
func TestFiftyRollOuts(t *testing.T) {
	n := boot(t, testbed.Options{})
	files := []string{"/srv/images/base.sqfs", "/var/tmp/v2.sqfs"}
	defs := []string{demo, n.version(files[1])}
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	for i := 1; i <= 50; i++ {
		n.define("demo.json", defs[i%2])
		n.reloadRestart("demo")
		n.onlyNeeded()
		if v := n.view(); len(v.Attachments) != 1 || len(v.Links) != 1 || !slices.Equal(v.Containers, []string{"demo"}) {
			t.Fatalf("cycle %d: attachments %v, links %v, containers %v", i, v.Attachments, v.Links, v.Containers)
		}
	}
	n.runsOn("demo", files[0])
	n.stopAll("demo")
}
