package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/client"
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

systemd-nspawn@demo.service  active (running)
└─ var-lib-machines-demo.mount  active (mounted)  overlay on /var/lib/machines/demo
   ├─ run-strata-layers-l.mount  active (mounted)  /dev/loop0 on /run/strata/layers/l
   │  └─ strata-attach@l.service  failed (failed), result exit-code
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
	var b bytes.Buffer
	if err := writeList(&b, entries); err != nil {
		t.Fatal(err)
	}
	want := `NAME  STATE             MACHINE  MOUNTS       SOURCE                 NOTE
bad   -                 -        -            /etc/strata/bad.json   invalid definition: see strata validate
demo  active (running)  running  3/3 mounted  /etc/strata/demo.json
`
	if b.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestParseArgsAnywhere(t *testing.T) {
	for _, args := range [][]string{{"--json", "demo"}, {"demo", "--json"}, {"demo", "-json"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		rest, err := parseArgs(fs, args)
		if err != nil || !*j || !reflect.DeepEqual(rest, []string{"demo"}) {
			t.Errorf("%v: rest %v json %v err %v", args, rest, *j, err)
		}
	}
}

func TestParseArgsDoubleDash(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	j := fs.Bool("json", false, "")
	rest, err := parseArgs(fs, []string{"a", "--json", "--", "-b", "--json"})
	if err != nil || !*j || !reflect.DeepEqual(rest, []string{"a", "-b", "--json"}) {
		t.Errorf("rest %v json %v err %v", rest, *j, err)
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
		if !strings.Contains(b.String(), "Machine:    running, leader PID 42\n"+c.want+"\n") {
			t.Errorf("status does not show %q after the machine:\n%s", c.want, b.String())
		}
		data, _ := json.Marshal(v)
		if !strings.Contains(string(data), `"health":{"name":"","status":"`+c.h.Status+`"`) {
			t.Errorf("--json does not hold the health record: %s", data)
		}
	}
}
