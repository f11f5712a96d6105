//go:build integration

package integration

// The strata CLI's systemd commands (list, status, start, stop, restart,
// reload) against a real systemd: run inside the testbed, as an operator
// would, and from the host through the testbed's bus address. Outputs are
// checked by parsing --json.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/testbed"
)

// The --json shapes, as a consumer of the CLI reads them.
type cliUnit struct {
	Unit        string    `json:"unit"`
	ActiveState string    `json:"active_state"`
	SubState    string    `json:"sub_state"`
	Result      string    `json:"result"`
	What        string    `json:"what"`
	Where       string    `json:"where"`
	Journal     []string  `json:"journal"`
	Children    []cliUnit `json:"children"`
}

type cliMachine struct {
	State  string `json:"state"`
	Leader int    `json:"leader"`
}

type cliListEntry struct {
	Name          string      `json:"name"`
	Source        string      `json:"source"`
	Invalid       bool        `json:"invalid"`
	Masked        bool        `json:"masked"`
	AtBoot        bool        `json:"at_boot"`
	ChangedOnDisk bool        `json:"changed_on_disk"`
	Failed        []string    `json:"failed"`
	Problems      []any       `json:"problems"`
	Loaded        bool        `json:"loaded"`
	Unit          string      `json:"unit"`
	ActiveState   string      `json:"active_state"`
	SubState      string      `json:"sub_state"`
	Machine       *cliMachine `json:"machine"`
	Layers        []cliUnit   `json:"layers"`
}

type cliStatus struct {
	Name    string      `json:"name"`
	Source  string      `json:"source"`
	Invalid bool        `json:"invalid"`
	Loaded  bool        `json:"loaded"`
	Machine *cliMachine `json:"machine"`
	Tree    cliUnit     `json:"tree"`
}

// units flattens a status tree, top down.
func (u cliUnit) units() []cliUnit {
	out := []cliUnit{u}
	for _, c := range u.Children {
		out = append(out, c.units()...)
	}
	return out
}

// cliResult is one run of the CLI.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// cli runs strata inside the testbed (/usr/bin/strata, the default
// search path /etc/strata and the default system bus).
func (n *node) cli(args ...string) cliResult {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := n.Run(ctx, append([]string{"strata"}, args...)...)
	if err != nil {
		n.t.Fatalf("strata %q: %v", args, err)
	}
	return cliResult{res.Stdout, res.Stderr, res.ExitCode}
}

// hostCLI runs the host-built strata against the testbed's systemd: its
// bus through DBUS_SYSTEM_BUS_ADDRESS, and the definitions from the host
// directory the testbed sees as /etc/strata.
func (n *node) hostCLI(args ...string) cliResult {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "strata"), args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+n.SystemBusAddress(), "STRATA_DEFINITION_PATH="+n.defs)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("host strata %q: %v", args, err)
	}
	return cliResult{stdout.String(), stderr.String(), code}
}

// ok fails the test unless r exited 0.
func (n *node) ok(what string, r cliResult) cliResult {
	n.t.Helper()
	if r.code != 0 {
		n.t.Fatalf("%s: %s", what, r)
	}
	return r
}

// notRunning fails the test unless r exited 3: strata status of a
// container that does not run (as systemctl status).
func (n *node) notRunning(what string, r cliResult) cliResult {
	n.t.Helper()
	if r.code != 3 {
		n.t.Fatalf("%s: %s, want exit 3 (not running)", what, r)
	}
	return r
}

func decode[T any](t *testing.T, r cliResult) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r)
	}
	return v
}

func listEntries(t *testing.T, r cliResult) map[string]cliListEntry {
	t.Helper()
	l := decode[struct {
		Containers []cliListEntry `json:"containers"`
	}](t, r)
	out := map[string]cliListEntry{}
	for _, e := range l.Containers {
		out[e.Name] = e
	}
	return out
}

// assertRunning checks a status: the container and every unit of its
// chain active, the machine registered with machined under the leader
// machinectl reports; it returns the leader.
func (n *node) assertRunning(s cliStatus, wantUnits int) int {
	n.t.Helper()
	units := s.Tree.units()
	if len(units) != wantUnits {
		n.t.Errorf("%s: chain of %d units, want %d: %+v", s.Name, len(units), wantUnits, s.Tree)
	}
	for _, u := range units {
		if u.ActiveState != "active" {
			n.t.Errorf("%s: %s is %s (%s) while the container runs", s.Name, u.Unit, u.ActiveState, u.SubState)
		}
	}
	if s.Machine == nil || s.Machine.State != "running" || s.Machine.Leader <= 0 {
		n.t.Fatalf("%s: machine %+v, want registered and running", s.Name, s.Machine)
	}
	leader := n.run("machinectl", "show", "--value", "--property=Leader", s.Name)
	if strconv.Itoa(s.Machine.Leader) != leader {
		n.t.Errorf("%s: leader %d, machinectl says %s", s.Name, s.Machine.Leader, leader)
	}
	return s.Machine.Leader
}

// assertStopped checks a status: every unit of the chain inactive (not
// failed), no machine.
func (n *node) assertStopped(s cliStatus) {
	n.t.Helper()
	for _, u := range s.Tree.units() {
		if u.ActiveState != "inactive" {
			n.t.Errorf("%s: %s is %s (%s) after stop", s.Name, u.Unit, u.ActiveState, u.SubState)
		}
	}
	if s.Machine != nil {
		n.t.Errorf("%s: machine still registered after stop: %+v", s.Name, s.Machine)
	}
}

// assertDown checks a status: every unit of the chain inactive or failed
// (what a failed start leaves), no machine.
func (n *node) assertDown(s cliStatus) {
	n.t.Helper()
	for _, u := range s.Tree.units() {
		if u.ActiveState != "inactive" && u.ActiveState != "failed" {
			n.t.Errorf("%s: %s is %s (%s) after stop", s.Name, u.Unit, u.ActiveState, u.SubState)
		}
	}
	if s.Machine != nil {
		n.t.Errorf("%s: machine registered after stop: %+v", s.Name, s.Machine)
	}
}

// missing is the demo with an image that does not exist: the attach
// service (strata-helper loop-attach) fails.
var missing = strings.Replace(demo, "/srv/images/base.sqfs", "/srv/images/missing.sqfs", 1)

// The CLI as an operator runs it on a node: reload, list, status, start,
// restart, stop, a failing start, and a broken definition.
func TestCliInsideTestbed(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.define("missing.json", missing)

	if r := n.ok("reload", n.cli("reload")); !strings.Contains(r.stdout, "2 valid, 0 invalid") {
		t.Errorf("reload report: %s", r)
	}

	// Defined and loaded, not started.
	l := listEntries(t, n.ok("list", n.cli("list", "--json")))
	d, ok := l["demo"]
	if !ok || len(l) != 2 {
		t.Fatalf("list: %+v", l)
	}
	if d.Invalid || !d.Loaded || d.Source != "/etc/strata/demo.json" || d.Unit != "systemd-nspawn@demo.service" ||
		d.ActiveState != "inactive" || d.Machine != nil || len(d.Layers) != 3 {
		t.Errorf("demo before start: %+v", d)
	}

	// start waits for the job: when it returns, everything runs.
	n.ok("start", n.cli("start", "demo"))
	s := decode[cliStatus](t, n.ok("status", n.cli("status", "demo", "--json")))
	leader := n.assertRunning(s, 7) // container, root mount, layer, attach, upper service, upper mount, clean-up
	root := s.Tree.Children[0]
	if root.Unit != "var-lib-machines-demo.mount" || root.What != "overlay" || root.Where != "/var/lib/machines/demo" {
		t.Errorf("root mount: %+v", root)
	}
	d = listEntries(t, n.ok("list", n.cli("list", "--json")))["demo"]
	if d.ActiveState != "active" || d.SubState != "running" || d.Machine == nil || d.Machine.State != "running" {
		t.Errorf("demo in list after start: %+v", d)
	}
	for _, m := range d.Layers {
		if m.ActiveState != "active" || m.SubState != "mounted" || m.Where == "" {
			t.Errorf("mount after start: %+v", m)
		}
	}
	text := n.ok("status text", n.cli("status", "demo")).stdout
	for _, want := range []string{"systemd-nspawn@demo.service  active (running)", "└─ var-lib-machines-demo.mount  active (mounted)  overlay on /var/lib/machines/demo", "strata-attach@loop_base.sqfs_"} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}

	// restart: a new leader, everything running again.
	n.ok("restart", n.cli("restart", "demo"))
	s = decode[cliStatus](t, n.ok("status", n.cli("status", "--json", "demo")))
	if again := n.assertRunning(s, 7); again == leader {
		t.Errorf("same leader %d after restart", again)
	}

	// stop waits for the lower units too: right after it, all inactive.
	// They stop in milliseconds, faster than the next command starts, so
	// the attach services are slowed down (a drop-in for every unit named
	// strata-attach@*) to make a stop that does not wait show. Slowing
	// their start too makes the failing start below fail after the upper
	// layer is up, which systemd then leaves running (see client.orphans).
	if err := n.WriteFile("/etc/systemd/system/strata-attach@.service.d/slow.conf", []byte("[Service]\nExecStartPre=/bin/sleep 1\nExecStopPost=/bin/sleep 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.ok("reload", n.cli("reload"))
	n.ok("stop", n.cli("stop", "demo"))
	n.assertStopped(decode[cliStatus](t, n.notRunning("status", n.cli("status", "--json", "demo"))))
	n.assertReleased()

	// A failing start: exit 1, and the reason from the helper's journal.
	r := n.cli("start", "missing")
	if r.code != 1 || !strings.Contains(r.stderr, "job dependency") ||
		!strings.Contains(r.stderr, "loop-attach failed for loop file /srv/images/missing.sqfs (definition /etc/strata/missing.json, unit strata-attach@loop_missing.sqfs_") ||
		!strings.Contains(r.stderr, "): open backing file read-only: no such file or directory") {
		t.Errorf("failing start: %s", r)
	}
	// status shows the failed attach unit with its journal.
	s = decode[cliStatus](t, n.notRunning("status", n.cli("status", "--json", "missing")))
	var failed []cliUnit
	for _, u := range s.Tree.units() {
		if u.ActiveState == "failed" {
			failed = append(failed, u)
		}
	}
	if len(failed) != 1 || !strings.HasPrefix(failed[0].Unit, "strata-attach@loop_missing.sqfs_") || failed[0].Result != "exit-code" ||
		!strings.Contains(strings.Join(failed[0].Journal, "\n"), "no such file or directory") {
		t.Errorf("failed units in status: %+v", failed)
	}
	t.Logf("after the failed start, the upper layer is %s", n.unitProp("strata-upper-missing.service", "ActiveState"))
	// stop releases what the failed start left up.
	n.ok("stop after a failed start", n.cli("stop", "missing"))
	n.assertDown(decode[cliStatus](t, n.notRunning("status", n.cli("status", "--json", "missing"))))

	// A broken definition: reload says so (exit 1, naming it), list marks
	// it invalid, start fails with the problems.
	n.define("broken.json", strings.Replace(demo, `"command"`, `"comand"`, 1))
	r = n.cli("reload")
	if r.code != 1 || !strings.Contains(r.stdout, "/etc/strata/broken.json") || !strings.Contains(r.stdout, `unknown field "comand"`) ||
		!strings.Contains(r.stdout, "2 valid, 1 invalid") {
		t.Errorf("reload with a broken definition: %s", r)
	}
	b := listEntries(t, n.ok("list", n.cli("list", "--json")))["broken"]
	if !b.Invalid || len(b.Problems) == 0 || !b.Loaded {
		t.Errorf("broken in list: %+v", b)
	}
	if r = n.cli("start", "broken"); r.code != 1 || !strings.Contains(r.stderr, `unknown field "comand"`) {
		t.Errorf("start of the broken container: %s", r)
	}

	// Usage errors exit 2.
	for _, args := range [][]string{{"status"}, {"start", "bad_name"}, {"stop", "a", "b"}} {
		if r := n.cli(args...); r.code != 2 {
			t.Errorf("strata %q: %s, want exit 2", args, r)
		}
	}
	// Unknown names exit as systemctl does for an unknown unit.
	for _, cmd := range []string{"status", "start", "stop", "restart"} {
		_, want := n.try("systemctl", cmd, "nosuch-unit.service")
		if r := n.cli(cmd, "nosuch"); r.code != want || !strings.Contains(r.stderr, `no container "nosuch"`) {
			t.Errorf("strata %s of an unknown container: %s, want exit %d as systemctl %s", cmd, r, want, cmd)
		}
	}
}

// The host-built CLI drives the testbed's systemd through its bus
// address: a failing start explained from the testbed's journal, and two
// containers sharing an image, where stopping one leaves the shared layer
// to the other.
func TestCliFromHost(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("a.json", demo)
	n.define("b.json", demo)
	n.define("missing.json", missing)
	n.ok("reload", n.hostCLI("reload"))

	r := n.hostCLI("start", "missing")
	if r.code != 1 || !strings.Contains(r.stderr, "strata-attach@loop_missing.sqfs_") ||
		!strings.Contains(r.stderr, "open backing file read-only: no such file or directory") {
		t.Errorf("failing start from the host: %s", r)
	}

	n.ok("stop after a failed start", n.hostCLI("stop", "missing"))
	n.assertDown(decode[cliStatus](t, n.notRunning("status", n.hostCLI("status", "--json", "missing"))))

	n.ok("start a", n.hostCLI("start", "a"))
	n.ok("start b", n.hostCLI("start", "b"))
	l := listEntries(t, n.ok("list", n.hostCLI("list", "--json")))
	for _, name := range []string{"a", "b"} {
		e := l[name]
		if e.ActiveState != "active" || e.Machine == nil || e.Machine.State != "running" || e.Source != filepath.Join(n.defs, name+".json") {
			t.Errorf("%s from the host: %+v", name, e)
		}
	}
	n.assertRunning(decode[cliStatus](t, n.ok("status", n.hostCLI("status", "--json", "a"))), 7)

	// Stopping a: its own units stop, the shared layer stays for b (and
	// stop says so instead of waiting for it).
	r = n.ok("stop a", n.hostCLI("stop", "a"))
	if !strings.Contains(r.stdout, "stays active: needed by ") || !strings.Contains(r.stdout, "var-lib-machines-b.mount") {
		t.Errorf("stop a does not report the shared layer: %s", r)
	}
	a := decode[cliStatus](t, n.notRunning("status", n.hostCLI("status", "--json", "a")))
	for _, u := range a.Tree.units() {
		shared := strings.HasPrefix(u.Unit, "run-strata-layers-") || strings.HasPrefix(u.Unit, "strata-attach@")
		if want := map[bool]string{true: "active", false: "inactive"}[shared]; u.ActiveState != want {
			t.Errorf("after stopping a: %s is %s, want %s", u.Unit, u.ActiveState, want)
		}
	}
	n.assertRunning(decode[cliStatus](t, n.ok("status", n.hostCLI("status", "--json", "b"))), 7)

	n.ok("stop b", n.hostCLI("stop", "b"))
	n.assertStopped(decode[cliStatus](t, n.notRunning("status", n.hostCLI("status", "--json", "b"))))
	// The attach unit of "missing" failed on purpose; the rest must be released.
	n.run("systemctl", "reset-failed")
	n.assertReleased()
}

// plain is the demo's image with a plain command instead of systemd.
func plain(command string, extra string) string {
	d := strings.Replace(demo, `"command": "/usr/lib/systemd/systemd",
  "systemd": true,`, `"command": "`+command+`",`+extra, 1)
	if d == demo {
		panic("the demo definition changed: plain() no longer applies")
	}
	return d
}

// A plain command gets the stop signal: strata stop ends with the unit
// stopped cleanly and the command gone, and a command that traps SIGTERM
// runs its handler.
func TestCliPlainCommandStop(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("sleeper.json", plain("/bin/sleep 1000", ""))
	// The stub sends SIGHUP after SIGTERM (for shells that ignore SIGTERM):
	// a command that handles SIGTERM ignores SIGHUP to run its handler.
	n.define("trapper.json", plain(`/bin/sh -c \"trap '' HUP; trap 'echo got SIGTERM; exit 0' TERM; while :; do sleep 0.1; done\"`, ""))
	n.define("stubborn.json", plain(`/bin/sh -c \"trap '' TERM HUP; while :; do sleep 0.1; done\"`, `
  "service": {"TimeoutStopSec": "2"},`))
	n.ok("reload", n.cli("reload"))

	n.ok("start", n.cli("start", "sleeper"))
	leader := n.assertRunning(decode[cliStatus](t, n.ok("status", n.cli("status", "--json", "sleeper"))), 7)
	began := time.Now()
	n.ok("stop", n.cli("stop", "sleeper"))
	t.Logf("strata stop of a plain command took %s", time.Since(began).Round(time.Millisecond))
	for prop, want := range map[string]string{"ActiveState": "inactive", "Result": "success"} {
		if got := n.unitProp("systemd-nspawn@sleeper.service", prop); got != want {
			t.Errorf("after stop, %s=%s, want %s", prop, got, want)
		}
	}
	if out, code := n.try("kill", "-0", strconv.Itoa(leader)); code == 0 {
		t.Errorf("the container's leader %d is still there after stop: %s", leader, out)
	}
	if out, code := n.try("sh", "-c", "grep -lx sleep /proc/[0-9]*/comm"); code == 0 {
		t.Errorf("sleep still runs after stop: %s", out)
	}

	n.ok("start", n.cli("start", "trapper"))
	n.ok("stop", n.cli("stop", "trapper"))
	if got := n.unitProp("systemd-nspawn@trapper.service", "Result"); got != "success" {
		t.Errorf("after stop, the trapping container's result is %s, want success", got)
	}
	if out := n.run("journalctl", "--no-pager", "-u", "systemd-nspawn@trapper.service"); !strings.Contains(out, "got SIGTERM") {
		t.Errorf("the command's SIGTERM handler did not run:\n%s", out)
	}

	// A command that ignores the stop signals is killed after the unit's
	// stop time-out: strata stop says so and exits 1.
	n.ok("start", n.cli("start", "stubborn"))
	r := n.cli("stop", "stubborn")
	if r.code != 1 || !strings.Contains(r.stderr, "result timeout") || !strings.Contains(r.stderr, "killed") {
		t.Errorf("stop of a command that ignores SIGTERM: %s", r)
	}
	if got := n.unitProp("systemd-nspawn@stubborn.service", "ActiveState"); got != "failed" {
		t.Errorf("after a stop that timed out, the unit is %s, want failed", got)
	}
}

// What list and status say, and how they exit, for a container that
// failed, one masked, one changed on disk since the last reload, one
// defined but not loaded, one starting at boot, and one whose definition
// was removed while it ran.
func TestCliStates(t *testing.T) {
	n := boot(t, testbed.Options{})
	if r := n.ok("list", n.cli("list")); !strings.Contains(r.stdout, "no containers defined in /etc/strata, /run/strata/definitions, /usr/lib/strata") {
		t.Errorf("list with nothing defined: %s", r)
	}
	n.define("demo.json", demo)
	n.define("missing.json", missing)
	n.define("atboot.json", strings.Replace(demo, `"state": "created"`, `"state": "running"`, 1))
	if err := os.Symlink("/dev/null", filepath.Join(n.defs, "masked.json")); err != nil {
		t.Fatal(err)
	}
	n.ok("reload", n.cli("reload"))

	// Failed: the list names the failed unit, status exits 3.
	if r := n.cli("start", "missing"); r.code != 1 {
		t.Errorf("failing start: %s", r)
	}
	l := listEntries(t, n.ok("list", n.cli("list", "--json")))
	if m := l["missing"]; len(m.Failed) != 1 || !strings.HasPrefix(m.Failed[0], "strata-attach@loop_missing.sqfs_") {
		t.Errorf("missing in list: %+v", m)
	}
	text := n.ok("list", n.cli("list")).stdout
	if !strings.Contains(text, "failed: strata-attach@loop_missing.sqfs_") {
		t.Errorf("list text does not name the failed unit:\n%s", text)
	}
	n.notRunning("status of a failed container", n.cli("status", "missing"))
	// A second failed start: status shows the journal of this attempt only.
	if r := n.cli("start", "missing"); r.code != 1 {
		t.Errorf("second failing start: %s", r)
	}
	s := decode[cliStatus](t, n.notRunning("status", n.cli("status", "--json", "missing")))
	for _, u := range s.Tree.units() {
		if u.ActiveState != "failed" {
			continue
		}
		// systemd says "Starting" and "Failed with result" once per run.
		starts, fails := 0, 0
		for _, l := range u.Journal {
			if strings.HasPrefix(l, "Starting ") {
				starts++
			}
			if strings.Contains(l, "Failed with result") {
				fails++
			}
		}
		if starts != 1 || fails != 1 {
			t.Errorf("%s: the journal of %d starts and %d failures, want the last attempt's only:\n%s", u.Unit, starts, fails, strings.Join(u.Journal, "\n"))
		}
	}

	// Masked: listed as masked; start refuses.
	if m := l["masked"]; !m.Masked || m.Source != "/etc/strata/masked.json" {
		t.Errorf("masked in list: %+v", m)
	}
	if !strings.Contains(text, "masked: /etc/strata/masked.json links to /dev/null") {
		t.Errorf("list text does not show the masked name:\n%s", text)
	}
	if r := n.cli("start", "masked"); r.code != 1 || !strings.Contains(r.stderr, "masked") {
		t.Errorf("start of a masked container: %s", r)
	}

	// Starts at boot (state running): the boot column says so.
	if !l["atboot"].AtBoot || l["demo"].AtBoot {
		t.Errorf("at boot: atboot %v, demo %v; want true, false", l["atboot"].AtBoot, l["demo"].AtBoot)
	}

	// Changed on disk: list and status say so, restart refuses, the
	// container keeps running.
	n.ok("start", n.cli("start", "demo"))
	n.define("demo.json", strings.Replace(demo, `"systemd": true,`, `"systemd": true, "environment": {"EDITED": "1"},`, 1))
	if d := listEntries(t, n.ok("list", n.cli("list", "--json")))["demo"]; !d.ChangedOnDisk {
		t.Errorf("demo in list after an edit: %+v", d)
	}
	if r := n.ok("status", n.cli("status", "demo")); !strings.Contains(r.stdout, "changed on disk: run strata reload") ||
		!strings.Contains(r.stdout, "loop device for /srv/images/base.sqfs") {
		t.Errorf("status after an edit (changed on disk, the image in the tree): %s", r)
	}
	if r := n.cli("restart", "demo"); r.code != 1 || !strings.Contains(r.stderr, "run strata reload first") {
		t.Errorf("restart after an edit without reload: %s", r)
	}
	n.ok("still running", n.cli("status", "demo"))

	// Defined but not loaded: start says to reload.
	n.define("fresh.json", demo)
	if r := n.cli("start", "fresh"); r.code != 1 || !strings.Contains(r.stderr, "is defined (/etc/strata/fresh.json) but systemd has not loaded it: run strata reload") {
		t.Errorf("start before a reload: %s", r)
	}

	// Removed while running: still listed, status exits 0 and says there
	// is no definition; once stopped and reloaded, the name is unknown.
	if err := os.Remove(filepath.Join(n.defs, "demo.json")); err != nil {
		t.Fatal(err)
	}
	n.ok("reload", n.cli("reload"))
	if d, ok := listEntries(t, n.ok("list", n.cli("list", "--json")))["demo"]; !ok || d.Source != "" || d.ActiveState != "active" {
		t.Errorf("demo in list after its removal: %+v (listed: %v)", d, ok)
	}
	if r := n.ok("status", n.cli("status", "demo")); !strings.Contains(r.stdout, "Definition: none in the search path") {
		t.Errorf("status after the removal: %s", r)
	}
	n.ok("stop", n.cli("stop", "demo"))
	n.ok("reload", n.cli("reload"))
	if r := n.cli("status", "demo"); r.code != 4 {
		t.Errorf("status of a removed, stopped container after a reload: %s, want exit 4", r)
	}
}
