//go:build integration

package integration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/testbed"
)

const demoTOML = `command = "/usr/lib/systemd/systemd"
systemd = true

[mount]
kind = "overlay"

[[mount.overlay.lower]]
kind = "attach"

[mount.overlay.lower.attach]
fs_type = "squashfs"
mount_options = ["ro"]

[mount.overlay.lower.attach.attach]
kind = "loopback"

[mount.overlay.lower.attach.attach.loopback]
path = "/srv/images/base.sqfs"
base = "root"
`

const demoYAML = `command: /usr/lib/systemd/systemd
systemd: true
mount:
  kind: overlay
  overlay:
    lower:
      - kind: attach
        attach:
          fs_type: squashfs
          mount_options: [ro]
          attach:
            kind: loopback
            loopback: {path: /srv/images/base.sqfs, base: root}
`

// unitProp reads one property of a unit.
func (n *node) unitProp(unit, prop string) string {
	n.t.Helper()
	return n.run("systemctl", "show", "--value", "--property="+prop, unit)
}

// The same container written in JSON, TOML and YAML gets the same units
// and runs the same way.
func TestFormatsBehaveAlike(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("j.json", demo)
	n.define("t.toml", demoTOML)
	n.define("y.yaml", demoYAML)
	n.run("systemctl", "daemon-reload")
	for _, name := range []string{"j", "t", "y"} {
		n.run("systemctl", "start", "systemd-nspawn@"+name+".service")
	}
	out := n.run("machinectl", "list", "--no-legend")
	for _, name := range []string{"j", "t", "y"} {
		if !strings.Contains(out, name+" ") {
			t.Errorf("machine %s not running: %s", name, out)
		}
	}
	// Units differ only in names and source: compare ExecStart of each.
	j := n.unitProp("systemd-nspawn@j.service", "ExecStart")
	for _, name := range []string{"t", "y"} {
		got := strings.ReplaceAll(n.unitProp("systemd-nspawn@"+name+".service", "ExecStart"), "machines/"+name, "machines/j")
		got = strings.ReplaceAll(got, "--machine="+name, "--machine=j")
		if pidless(got) != pidless(j) {
			t.Errorf("%s ExecStart differs:\n%s\n%s", name, got, j)
		}
	}
	n.run("systemctl", "stop", "systemd-nspawn@j.service", "systemd-nspawn@t.service", "systemd-nspawn@y.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// pidless drops the run-time parts of an ExecStart property (pid, times).
func pidless(s string) string {
	if i := strings.Index(s, " ; ignore_errors"); i >= 0 {
		return s[:i]
	}
	return s
}

// Two containers sharing one image: one attach unit and one layer mount;
// stopping one keeps the other running; stopping both releases everything.
func TestSharedImage(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("a.json", demo)
	n.define("b.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@a.service", "systemd-nspawn@b.service")

	if loops := n.run("losetup", "--noheadings", "-O", "NAME", "-j", "/srv/images/base.sqfs"); len(strings.Fields(loops)) != 1 {
		t.Errorf("want one loop device for the shared image, got %q", loops)
	}
	if layers := n.run("findmnt", "--raw", "--noheadings", "--output=TARGET", "--types=squashfs"); len(strings.Fields(layers)) != 1 {
		t.Errorf("want one layer mount, got %q", layers)
	}

	n.run("systemctl", "stop", "systemd-nspawn@a.service")
	n.waitInactive("var-lib-machines-a.mount", "strata-upper-a.service", "run-strata-upper-a.mount")
	if state := n.unitProp("systemd-nspawn@b.service", "ActiveState"); state != "active" {
		t.Fatalf("b is %s after stopping a", state)
	}
	if out := n.run("systemd-run", "--machine=b", "--wait", "--pipe", "--quiet", "/bin/true"); out != "" {
		t.Errorf("b: %q", out)
	}
	for _, u := range n.strataUnits() {
		if strings.Contains(u, "layers") || strings.HasPrefix(u, "strata-attach@") {
			if state := n.unitProp(u, "ActiveState"); state != "active" {
				t.Errorf("shared %s is %s while b runs", u, state)
			}
		}
	}

	n.run("systemctl", "stop", "systemd-nspawn@b.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// state "running" starts at boot (through machines.target, even though
// nothing enabled it); "created" does not.
func TestStateRunningStartsAtBoot(t *testing.T) {
	n := boot(t, testbed.Options{Persistent: true}) // the installed package survives the reboot
	n.define("auto.json", strings.Replace(demo, `"state": "created"`, `"state": "running"`, 1))
	n.define("manual.json", demo)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := n.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	n.waitUntil("auto starts at boot", func() (bool, string) {
		out, code := n.try("systemctl", "status", "--no-pager", "systemd-nspawn@auto.service")
		return code == 0, out
	})
	if state := n.unitProp("systemd-nspawn@manual.service", "ActiveState"); state != "inactive" {
		t.Errorf("manual is %s after boot, want inactive", state)
	}
	n.run("systemctl", "stop", "systemd-nspawn@auto.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// A broken definition beside good ones: the good ones run, and the broken
// one's unit says why in systemctl status.
func TestBrokenBesideGood(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("good.json", demo)
	n.define("broken.json", strings.Replace(demo, `"command"`, `"comand"`, 1))
	out, code := n.try("systemctl", "daemon-reload")
	if code != 0 {
		t.Fatalf("daemon-reload failed: %s", out)
	}
	n.run("systemctl", "start", "systemd-nspawn@good.service")
	if _, code := n.try("systemctl", "start", "systemd-nspawn@broken.service"); code == 0 {
		t.Error("the broken container started")
	}
	status, _ := n.try("systemctl", "status", "--no-pager", "--lines=20", "systemd-nspawn@broken.service")
	for _, want := range []string{"invalid definition", `unknown field "comand"; did you mean "command"?`, "/etc/strata/broken.json"} {
		if !strings.Contains(status, want) {
			t.Errorf("systemctl status lacks %q:\n%s", want, status)
		}
	}
	if v, _ := n.try("strata", "validate", "/etc/strata"); !strings.Contains(v, "1 valid, 1 invalid") {
		t.Errorf("strata validate: %s", v)
	}
	n.run("systemctl", "stop", "systemd-nspawn@good.service")
	n.waitInactive(n.strataUnits()...)
}

// Editing or removing a definition takes effect at daemon-reload, as for
// any unit file (docs/OPERATIONS.md): a stopped container picks up an edit
// at its next start; a removed one loses its units. A container that is
// running when its definition is removed keeps running; putting the file
// back and stopping it then releases everything (the attach unit was kept
// by its retiring drop-in meanwhile, not stopped as unneeded).
func TestEditAndRemove(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("c.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@c.service")
	n.run("systemctl", "stop", "systemd-nspawn@c.service")
	n.waitInactive(n.strataUnits()...)

	n.define("c.json", strings.Replace(demo, `"systemd": true,`, `"systemd": true, "environment": {"EDITED": "yes"},`, 1))
	n.run("systemctl", "daemon-reload")
	if exec := n.unitProp("systemd-nspawn@c.service", "ExecStart"); !strings.Contains(exec, "--setenv=EDITED=yes") {
		t.Errorf("edit not applied: %s", exec)
	}
	n.run("systemctl", "start", "systemd-nspawn@c.service")
	if out := n.run("systemd-run", "--machine=c", "--wait", "--pipe", "--quiet", "/bin/sh", "-c", "tr '\\0' '\\n' < /proc/1/environ"); !strings.Contains(out, "EDITED=yes") {
		t.Errorf("the container's init lacks EDITED=yes: %s", out)
	}

	// Removed after stopping: the units go away at daemon-reload.
	n.run("systemctl", "stop", "systemd-nspawn@c.service")
	n.waitInactive(n.strataUnits()...)
	n.run("rm", "/etc/strata/c.json")
	n.run("systemctl", "daemon-reload")
	if drop := n.unitProp("systemd-nspawn@c.service", "DropInPaths"); strings.Contains(drop, "50-strata.conf") {
		t.Errorf("drop-in still loaded after removal: %s", drop)
	}
	if _, code := n.try("systemctl", "start", "systemd-nspawn@c.service"); code == 0 {
		t.Error("a removed container still starts")
	}
	n.assertReleased()

	// Removed while running: the container keeps running until stopped.
	n.define("d.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@d.service")
	chain := n.strataUnits()
	n.run("rm", "/etc/strata/d.json")
	n.run("systemctl", "daemon-reload")
	if state := n.unitProp("systemd-nspawn@d.service", "ActiveState"); state != "active" {
		t.Errorf("removing the definition stopped the running container: %s", state)
	}
	n.define("d.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "stop", "systemd-nspawn@d.service")
	n.waitInactive(chain...)
	n.assertReleased()
}

// The container's init crashes: the restart policy from the definition
// applies, and the layers stay mounted and consistent across the restart.
func TestInitCrashRestarts(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("crash.json", strings.Replace(demo, `"systemd": true,`, `"systemd": true, "service": {"Restart": "on-failure", "RestartSec": "1"},`, 1))
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@crash.service")
	leader := n.run("machinectl", "show", "--value", "--property=Leader", "crash")
	// A new invocation, not NRestarts: systemd 257 logs "restart counter is
	// at 1" but shows NRestarts=0 once the restart has taken the root mount
	// (PartOf=) down and up with it; 247 and 252 count 1.
	before := n.unitProp("systemd-nspawn@crash.service", "InvocationID")
	n.run("/bin/sh", "-c", "kill -SEGV "+leader)

	n.waitUntil("a restart after the crash", func() (bool, string) {
		now := n.unitProp("systemd-nspawn@crash.service", "InvocationID")
		state := n.unitProp("systemd-nspawn@crash.service", "ActiveState")
		return now != before && state == "active", "invocation " + before + " → " + now + ", state " + state
	})
	if j := n.run("journalctl", "--no-pager", "-u", "systemd-nspawn@crash.service"); !strings.Contains(j, "Scheduled restart job") {
		t.Errorf("not restarted by its Restart= policy:\n%s", j)
	}
	if now := n.run("machinectl", "show", "--value", "--property=Leader", "crash"); now == leader {
		t.Errorf("same leader %s after restart", now)
	}
	// The node's own mount table: losetup -j sees other testbeds' devices
	// on the same host file (test/testbed/README.md).
	if loops := n.run("sh", "-c", "findmnt -rn -o SOURCE,TARGET | awk '$2 ~ \"^/run/strata/layers/\" { print $1 }'"); len(strings.Fields(loops)) != 1 || !strings.HasPrefix(loops, "/dev/loop") {
		t.Errorf("want one loop device under the layers after the restart, got %q", loops)
	}
	n.run("systemctl", "stop", "systemd-nspawn@crash.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// A plain command (not systemd) runs in the overlay root, and its exit
// status reaches systemd.
func TestPlainCommandExitStatus(t *testing.T) {
	n := boot(t, testbed.Options{})
	plain := strings.Replace(demo, `"command": "/usr/lib/systemd/systemd",
  "systemd": true,`, `"command": "/bin/sh -c 'test -f /etc/debian_version && exit 7'",
  "systemd": false,`, 1)
	n.define("job.json", plain)
	n.run("systemctl", "daemon-reload")
	n.try("systemctl", "start", "systemd-nspawn@job.service")
	n.waitUntil("the job ends", func() (bool, string) {
		state := n.unitProp("systemd-nspawn@job.service", "ActiveState")
		return state != "active" && state != "activating", state
	})
	if status := n.unitProp("systemd-nspawn@job.service", "ExecMainStatus"); status != "7" {
		t.Errorf("ExecMainStatus = %s, want 7 (the command's exit status)", status)
	}
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}

// 50 start/stop cycles leave no mount, loop device or active unit behind.
func TestStartStopCycles(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("cyc.json", demo)
	n.run("systemctl", "daemon-reload")
	cycles := 50
	if s := testingShort(); s {
		cycles = 10
	}
	for i := 0; i < cycles; i++ {
		n.run("systemctl", "start", "systemd-nspawn@cyc.service")
		n.run("systemctl", "stop", "systemd-nspawn@cyc.service")
		n.waitInactive(n.strataUnits()...)
	}
	n.assertReleased()
	t.Logf("%d cycles", cycles)
}

func testingShort() bool {
	v, _ := strconv.ParseBool(strings.TrimSpace(envOr("STRATA_SHORT", "0")))
	return v || testing.Short()
}

// machinectl works on Strata's containers: status shows the unit, and
// poweroff shuts the container down cleanly, releasing its chain. machinectl
// start needs /var/lib/machines/NAME to exist (it looks for an image
// there), which is the case once the container has run on this boot.
func TestMachinectl(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("m.json", demo)
	n.run("systemctl", "daemon-reload")
	for _, start := range [][]string{{"systemctl", "start", "systemd-nspawn@m.service"}, {"machinectl", "start", "m"}} {
		n.run(start...)
		if st := n.run("machinectl", "status", "m", "--no-pager"); !strings.Contains(st, "systemd-nspawn@m.service") {
			t.Errorf("machinectl status:\n%s", st)
		}
		n.run("machinectl", "poweroff", "m")
		n.waitInactive(append(n.strataUnits(), "systemd-nspawn@m.service")...)
		if res := n.unitProp("systemd-nspawn@m.service", "Result"); res != "success" {
			t.Errorf("%v, then poweroff: result %s", start, res)
		}
		n.assertReleased()
	}
}

// A start that fails (the image is missing) leaves nothing up: the upper
// layer is ordered after the attachments, so it never starts alone.
func TestFailedStartLeavesNothing(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("bad.json", strings.Replace(demo, "/srv/images/base.sqfs", "/srv/images/missing.sqfs", 1))
	n.run("systemctl", "daemon-reload")
	// The attach fails slowly, as a network attach would: everything that
	// does not wait for it has long started by then.
	attach := n.run("sh", "-c", "cd /run/systemd/generator && for d in strata-attach@*.service.d; do echo ${d%.d}; done")
	if err := n.WriteFile("/etc/systemd/system/"+attach+".d/slow.conf", []byte("[Service]\nExecStartPre=/bin/sleep 0.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.run("systemctl", "daemon-reload")
	for i := 0; i < 3; i++ {
		if out, code := n.try("systemctl", "start", "systemd-nspawn@bad.service"); code == 0 {
			t.Fatalf("start with a missing image succeeded: %s", out)
		}
		n.waitInactive(n.strataUnits()...)
		n.assertReleased()
	}
	if st, _ := n.try("systemctl", "status", "--no-pager", "strata-attach@*"); !strings.Contains(st, "missing.sqfs") {
		t.Errorf("the attach unit's status does not name the missing file:\n%s", st)
	}
}
