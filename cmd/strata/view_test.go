package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/client"
	"github.com/strata-project/strata/cmd/strata/cli"
	"github.com/strata-project/strata/helpers/state"
)

// chain builds a client.Container for a running demo container whose
// attach unit failed, without a bus.
func demoContainer() *client.Container {
	u := func(name, active, sub string, requires ...string) *client.Unit {
		return &client.Unit{Name: name, ActiveState: active, SubState: sub, Requires: requires, Result: "success"}
	}
	units := map[string]*client.Unit{
		"systemd-nspawn@demo.service": u("systemd-nspawn@demo.service", "active", "running", "var-lib-machines-demo.mount"),
		"var-lib-machines-demo.mount": u("var-lib-machines-demo.mount", "active", "mounted", "run-strata-layers-l.mount", "strata-upper-demo.service"),
		"run-strata-layers-l.mount":   u("run-strata-layers-l.mount", "active", "mounted", "strata-attach@l.service"),
		"strata-attach@l.service":     u("strata-attach@l.service", "failed", "failed"),
		"strata-upper-demo.service":   u("strata-upper-demo.service", "active", "exited", "run-strata-upper-demo.mount"),
		"run-strata-upper-demo.mount": u("run-strata-upper-demo.mount", "active", "mounted"),
	}
	units["systemd-nspawn@demo.service"].DropInPaths = []string{"/run/systemd/generator/systemd-nspawn@demo.service.d/50-strata.conf"}
	units["strata-attach@l.service"].Result = "exit-code"
	units["strata-attach@l.service"].Description = "Strata loop device for /srv/images/base.sqfs"
	units["var-lib-machines-demo.mount"].What, units["var-lib-machines-demo.mount"].Where = "overlay", "/var/lib/machines/demo"
	units["run-strata-layers-l.mount"].What, units["run-strata-layers-l.mount"].Where = "/dev/loop0", "/run/strata/layers/l"
	units["run-strata-upper-demo.mount"].What, units["run-strata-upper-demo.mount"].Where = "tmpfs", "/run/strata/upper/demo"
	return &client.Container{
		Name:    "demo",
		Chain:   &client.Chain{Container: "systemd-nspawn@demo.service", Units: units},
		Machine: &client.Machine{Name: "demo", State: "running", Leader: 42, Class: "container"},
	}
}

func TestStatusText(t *testing.T) {
	ct := demoContainer()
	failures := []client.Failure{{Unit: ct.Chain.Units["strata-attach@l.service"], Journal: []string{"strata-helper: boom", "Failed with result 'exit-code'."}}}
	var b bytes.Buffer
	writeStatus(&b, viewStatus(defined{Name: "demo", Source: "/etc/strata/demo.json"}, ct, failures))
	want := `Container:  demo
Definition: /etc/strata/demo.json
Machine:    running, leader PID 42
Boot:       not started at boot

systemd-nspawn@demo.service  active (running)
└─ var-lib-machines-demo.mount  active (mounted)  overlay on /var/lib/machines/demo
   ├─ run-strata-layers-l.mount  active (mounted)  /dev/loop0 on /run/strata/layers/l
   │  └─ strata-attach@l.service  failed (failed), result exit-code  loop device for /srv/images/base.sqfs
   │        strata-helper: boom
   │        Failed with result 'exit-code'.
   └─ strata-upper-demo.service  active (exited)
      └─ run-strata-upper-demo.mount  active (mounted)  tmpfs on /run/strata/upper/demo
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestStatusJSON(t *testing.T) {
	ct := demoContainer()
	failures := []client.Failure{{Unit: ct.Chain.Units["strata-attach@l.service"], JournalErr: errors.New("no journalctl")}}
	data, err := json.Marshal(viewStatus(defined{Name: "demo", Source: "/etc/strata/demo.json"}, ct, failures))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Loaded  bool
		Machine struct{ Leader int }
		Tree    struct {
			Unit     string
			Children []struct {
				Unit     string
				What     string
				Children []struct {
					Unit     string
					Children []struct {
						Unit         string
						ActiveState  string `json:"active_state"`
						JournalError string `json:"journal_error"`
					}
				}
			}
		}
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	root := got.Tree.Children[0]
	attach := root.Children[0].Children[0]
	if !got.Loaded || got.Machine.Leader != 42 || root.What != "overlay" || attach.Unit != "strata-attach@l.service" ||
		attach.ActiveState != "failed" || attach.JournalError != "no journalctl" {
		t.Errorf("unexpected JSON: %s", data)
	}
}

func TestListText(t *testing.T) {
	ct := demoContainer()
	entries := []listEntry{
		viewListEntry(defined{Name: "bad", Source: "/etc/strata/bad.json", Invalid: true}, nil),
		viewListEntry(defined{Name: "demo", Source: "/etc/strata/demo.json"}, ct),
	}
	if got := entries[1].Layers; len(got) != 3 || got[0].Unit != "var-lib-machines-demo.mount" {
		t.Errorf("layers: %+v", got)
	}
	// A stopped container whose attach failed, changed on disk since, and
	// started at boot; a masked one.
	stopped := demoContainer()
	for _, u := range stopped.Chain.Units {
		if !u.Failed() {
			u.ActiveState, u.SubState = "inactive", "dead"
		}
	}
	stopped.Machine = nil
	root := stopped.Unit()
	root.NeedDaemonReload, root.AtBoot = true, true
	entries = append(entries,
		viewListEntry(defined{Name: "gone", Source: "/etc/strata/gone.json"}, stopped),
		viewListEntry(defined{Name: "hidden", Source: "/etc/strata/hidden.json", Masked: true}, nil))
	var b bytes.Buffer
	if err := writeList(&b, entries); err != nil {
		t.Fatal(err)
	}
	want := `NAME    STATE             BOOT  MACHINE  MOUNTS       SOURCE                   NOTE
bad     -                 -     -        -            /etc/strata/bad.json     invalid definition: see strata validate
demo    active (running)  -     running  3/3 mounted  /etc/strata/demo.json    failed: strata-attach@l.service
gone    inactive (dead)   yes   -        -            /etc/strata/gone.json    changed on disk: run strata reload; failed: strata-attach@l.service
hidden  masked            -     -        -            /etc/strata/hidden.json  masked: /etc/strata/hidden.json links to /dev/null
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestListEmpty(t *testing.T) {
	t.Setenv("STRATA_DEFINITION_PATH", "/nonexistent/a:/nonexistent/b")
	var b bytes.Buffer
	if err := writeList(&b, nil); err != nil {
		t.Fatal(err)
	}
	if want := "no containers defined in /nonexistent/a, /nonexistent/b\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// status exits as systemctl status does: 0 only while the container runs.
func TestStatusExit(t *testing.T) {
	for state, want := range map[string]int{"active": 0, "reloading": 0, "inactive": 3, "failed": 3, "activating": 3, "deactivating": 3} {
		if got := statusExit(state); got != want {
			t.Errorf("%s: exit %d, want %d", state, got, want)
		}
	}
}

// Jobs are refused, with systemctl's exit codes, for names that are not
// Strata's containers, and start and restart for a definition changed
// since systemd loaded it.
func TestJobRefusal(t *testing.T) {
	dropIn := []string{"/run/systemd/generator/systemd-nspawn@d.service.d/50-strata.conf"}
	unit := func(active string, reload bool, dropIns []string) *client.Unit {
		return &client.Unit{Name: "systemd-nspawn@d.service", ActiveState: active, NeedDaemonReload: reload, DropInPaths: dropIns}
	}
	defd := defined{Name: "d", Source: "/etc/strata/d.json"}
	for _, c := range []struct {
		cmd  string
		d    defined
		u    *client.Unit
		code int
		msg  string
	}{
		{"start", defd, unit("inactive", false, dropIn), 0, ""},
		{"restart", defd, unit("active", true, dropIn), 1, "changed on disk since systemd loaded it: run strata reload first"},
		{"stop", defd, unit("active", true, dropIn), 0, ""},
		{"start", defd, unit("inactive", false, nil), 1, "is defined (/etc/strata/d.json) but systemd has not loaded it: run strata reload"},
		{"stop", defd, unit("inactive", false, nil), 0, ""},
		{"start", defined{Name: "d"}, unit("inactive", false, nil), 5, `no container "d"`},
		{"stop", defined{Name: "d"}, unit("inactive", false, nil), 5, `no container "d"`},
		{"stop", defined{Name: "d"}, unit("active", false, nil), 0, ""},
		{"start", defined{Name: "d", Source: "/etc/strata/d.json", Masked: true}, unit("inactive", false, nil), 1, "is masked"},
	} {
		msg, code := jobRefusal(c.cmd, c.d, c.u)
		if code != c.code || !strings.Contains(msg, c.msg) || (c.msg == "") != (msg == "") {
			t.Errorf("%s %+v %+v: %d %q, want %d %q", c.cmd, c.d, *c.u, code, msg, c.code, c.msg)
		}
	}
}

// Every command of the table has a handler and a --help: exit 0, its
// synopsis, description and exactly the table's flags on stdout.
func TestHelp(t *testing.T) {
	if len(commands) != len(cli.Commands) {
		t.Errorf("%d handlers for %d commands in the table", len(commands), len(cli.Commands))
	}
	for _, c := range cli.Commands {
		if _, ok := commands[c.Name]; !ok {
			t.Errorf("command %s of the table has no handler", c.Name)
			continue
		}
		if c.Name == "image" {
			continue // runs strata-image, whose --help it is
		}
		var out, errb bytes.Buffer
		code := run([]string{c.Name, "--help"}, &out, &errb)
		var flags []string
		for _, l := range strings.Split(out.String(), "\n") {
			if f, ok := strings.CutPrefix(l, "  -"); ok {
				// The table spells one-letter flags as journalctl does (-f).
				name := strings.Fields(f)[0]
				if len(name) == 1 {
					flags = append(flags, "-"+name)
				} else {
					flags = append(flags, "--"+name)
				}
			}
		}
		var want []string
		for _, f := range c.Flags {
			want = append(want, f.Name)
		}
		if code != 0 || errb.Len() != 0 || c.Summary == "" ||
			!strings.HasPrefix(out.String(), "usage: strata "+c.Synopsis()+"\n\n"+c.Summary+"\n") || !reflect.DeepEqual(flags, want) {
			t.Errorf("strata %s --help: exit %d, flags %q (table: %q)\nstdout:\n%s\nstderr:\n%s", c.Name, code, flags, want, out.String(), errb.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"status"},
		{"status", "a", "b"},
		{"start", "bad_name"},
		{"stop", "--bogus", "x"},
		{"list", "extra"},
		{"reload", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %s", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	run([]string{"stop", "--bogus", "x"}, &out, &errb)
	if want := "strata stop: flag provided but not defined: -bogus\nusage: strata stop [--no-block] NAME (see strata stop --help)\n"; errb.String() != want {
		t.Errorf("usage error: got %q, want %q", errb.String(), want)
	}
	errb.Reset()
	run([]string{"start", "bad_name"}, &out, &errb)
	if !strings.Contains(errb.String(), "use '-' instead of '_'") {
		t.Errorf("bad name not explained: %s", errb.String())
	}
}

func TestStatusHealth(t *testing.T) {
	ct := demoContainer()
	v := viewStatus(defined{Name: "demo", Source: "/etc/strata/demo.json"}, ct, nil)
	for _, c := range []struct {
		h    state.Health
		want string
	}{
		{state.Health{Status: state.HealthStarting}, "Health:     starting (no check yet)\n"},
		{state.Health{Status: state.HealthHealthy, LastCheck: time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)}, "Health:     healthy (last check 2026-01-02 03:04:05: exit status 0)\n"},
		{state.Health{Status: state.HealthUnhealthy, Failures: 3, LastExit: 7, LastCheck: time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)}, "Health:     unhealthy (last check 2026-01-02 03:04:05: exit status 7, 3 failed in a row)\n"},
	} {
		v.Health = &c.h
		var b bytes.Buffer
		writeStatus(&b, v)
		if !strings.Contains(b.String(), "Machine:    running, leader PID 42\nBoot:       not started at boot\n"+c.want+"\n") {
			t.Errorf("status does not show %q after the machine:\n%s", c.want, b.String())
		}
		data, _ := json.Marshal(v)
		if !strings.Contains(string(data), `"health":{"name":"","status":"`+c.h.Status+`"`) {
			t.Errorf("--json does not hold the health record: %s", data)
		}
	}
}

// shell runs a command through systemd-run (its exit status passed on),
// with a terminal only when strata has one, and the login shell through
// machinectl on a terminal, else /bin/sh reading the pipe; what follows
// NAME is the command's, flags included.
func TestShellCommand(t *testing.T) {
	for _, c := range []struct {
		command  []string
		terminal bool
		want     string
	}{
		{nil, true, "machinectl shell demo"},
		{nil, false, "systemd-run --machine=demo --quiet --wait --collect --service-type=exec --pipe -- /bin/sh"},
		{[]string{"/bin/sh", "-c", "echo x"}, false, "systemd-run --machine=demo --quiet --wait --collect --service-type=exec --pipe -- /bin/sh -c echo x"},
		{[]string{"/bin/ls", "--help"}, true, "systemd-run --machine=demo --quiet --wait --collect --service-type=exec --pty -- /bin/ls --help"},
	} {
		if got := strings.Join(shellCommand("demo", c.command, c.terminal), " "); got != c.want {
			t.Errorf("shellCommand(%q, terminal %v) = %s, want %s", c.command, c.terminal, got, c.want)
		}
	}
}

func TestLogsShellUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"logs"},
		{"logs", "a", "b"},
		{"logs", "-n", "many", "a"},
		{"logs", "-n", "-3", "a"},
		{"logs", "bad_name"},
		{"shell"},
		{"shell", "bad_name", "/bin/true"},
		{"shell", "--bogus", "a"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: strata "+args[0]) {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %s", args, code, errb.String())
		}
	}
}
