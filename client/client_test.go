package client

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// demoUnits is the chain of one loopback container as systemd reports it
// (names as the generator writes them), plus the system units a walk must
// not follow.
func demoUnits() map[string]*Unit {
	us := map[string]*Unit{
		"systemd-nspawn@demo.service": {Requires: []string{"var-lib-machines-demo.mount", "system-systemd\\x2dnspawn.slice", "-.mount"}},
		"var-lib-machines-demo.mount": {Requires: []string{"strata-upper-demo.service", "run-strata-layers-loop_x.mount", "-.mount"},
			NeededBy: []string{"systemd-nspawn@demo.service"}, StopWhenUnneeded: true},
		"run-strata-layers-loop_x.mount": {Requires: []string{"strata-attach@loop_x.service"},
			NeededBy: []string{"var-lib-machines-demo.mount"}, StopWhenUnneeded: true},
		"strata-attach@loop_x.service": {Requires: []string{"-.mount"}, NeededBy: []string{"run-strata-layers-loop_x.mount"}, StopWhenUnneeded: true},
		"strata-upper-demo.service":    {Requires: []string{"run-strata-upper-demo.mount"}, NeededBy: []string{"var-lib-machines-demo.mount"}, StopWhenUnneeded: true},
		"run-strata-upper-demo.mount":  {NeededBy: []string{"strata-upper-demo.service"}, StopWhenUnneeded: true},
	}
	for n, u := range us {
		u.Name = n
		u.ActiveState = "active"
	}
	return us
}

func fakeGet(us map[string]*Unit, read *[]string) func(context.Context, string) (*Unit, error) {
	return func(_ context.Context, name string) (*Unit, error) {
		*read = append(*read, name)
		if u, ok := us[name]; ok {
			return u, nil
		}
		return nil, fmt.Errorf("walked outside the chain: %s", name)
	}
}

func TestWalkFollowsOnlyStrataUnits(t *testing.T) {
	var read []string
	ch, err := walk(context.Background(), "systemd-nspawn@demo.service", fakeGet(demoUnits(), &read))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"systemd-nspawn@demo.service", "run-strata-layers-loop_x.mount", "run-strata-upper-demo.mount",
		"strata-attach@loop_x.service", "strata-upper-demo.service", "var-lib-machines-demo.mount"}
	if got := ch.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if len(read) != len(want) {
		t.Errorf("read %d units (%v), want each of %d once", len(read), read, len(want))
	}
}

// treeString flattens a tree to "name(child,child)" for comparison.
func treeString(n *Node) string {
	s := n.Name
	if len(n.Children) > 0 {
		s += "("
		for i, c := range n.Children {
			if i > 0 {
				s += ","
			}
			s += treeString(c)
		}
		s += ")"
	}
	return s
}

func TestTreeAndMounts(t *testing.T) {
	var read []string
	ch, err := walk(context.Background(), "systemd-nspawn@demo.service", fakeGet(demoUnits(), &read))
	if err != nil {
		t.Fatal(err)
	}
	want := "systemd-nspawn@demo.service(var-lib-machines-demo.mount(run-strata-layers-loop_x.mount(strata-attach@loop_x.service)," +
		"strata-upper-demo.service(run-strata-upper-demo.mount)))"
	if got := treeString(ch.Tree()); got != want {
		t.Errorf("tree:\n got %s\nwant %s", got, want)
	}
	var mounts []string
	for _, m := range ch.Mounts() {
		mounts = append(mounts, m.Name)
	}
	if want := []string{"var-lib-machines-demo.mount", "run-strata-layers-loop_x.mount", "run-strata-upper-demo.mount"}; !reflect.DeepEqual(mounts, want) {
		t.Errorf("Mounts() = %v, want the root mount first: %v", mounts, want)
	}
}

func TestTreeCutsCycles(t *testing.T) {
	us := map[string]*Unit{
		"systemd-nspawn@c.service": {Name: "systemd-nspawn@c.service", Requires: []string{"strata-a.service"}},
		"strata-a.service":         {Name: "strata-a.service", Requires: []string{"strata-b.service"}},
		"strata-b.service":         {Name: "strata-b.service", Requires: []string{"strata-a.service"}},
	}
	var read []string
	ch, err := walk(context.Background(), "systemd-nspawn@c.service", fakeGet(us, &read))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := treeString(ch.Tree()), "systemd-nspawn@c.service(strata-a.service(strata-b.service))"; got != want {
		t.Errorf("tree %s, want %s", got, want)
	}
}

func TestFailedContainerFirst(t *testing.T) {
	us := demoUnits()
	us["strata-attach@loop_x.service"].ActiveState = "failed"
	us["systemd-nspawn@demo.service"].ActiveState = "failed"
	var read []string
	ch, _ := walk(context.Background(), "systemd-nspawn@demo.service", fakeGet(us, &read))
	var got []string
	for _, u := range ch.Failed() {
		got = append(got, u.Name)
	}
	if want := []string{"systemd-nspawn@demo.service", "strata-attach@loop_x.service"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Failed() = %v, want %v", got, want)
	}
}

func TestUnitFromProps(t *testing.T) {
	u := unitFromProps("var-lib-machines-demo.mount", map[string]any{
		"Description": "Strata root file system of container demo", "LoadState": "loaded",
		"ActiveState": "active", "SubState": "mounted", "Result": "success",
		"What": "overlay", "Where": "/var/lib/machines/demo",
		"Requires":             []string{"run-strata-layers-x.mount", "-.mount"},
		"BindsTo":              []string{"run-strata-layers-x.mount", "strata-upper-demo.service"},
		"RequiredBy":           []string{"systemd-nspawn@demo.service"},
		"BoundBy":              []string{"systemd-nspawn@demo.service"},
		"StopWhenUnneeded":     true,
		"StateChangeTimestamp": uint64(1700000000123456),
	})
	if !reflect.DeepEqual(u.Requires, []string{"run-strata-layers-x.mount", "-.mount", "strata-upper-demo.service"}) {
		t.Errorf("Requires = %v: want Requires and BindsTo, once each", u.Requires)
	}
	if !reflect.DeepEqual(u.NeededBy, []string{"systemd-nspawn@demo.service"}) {
		t.Errorf("NeededBy = %v", u.NeededBy)
	}
	if u.What != "overlay" || u.Where != "/var/lib/machines/demo" || !u.StopWhenUnneeded {
		t.Errorf("mount fields: %+v", u)
	}
	if !u.StateChange.Equal(time.UnixMicro(1700000000123456)) {
		t.Errorf("StateChange = %v", u.StateChange)
	}
	// A service has no What/Where even if some property of that name existed.
	if s := unitFromProps("strata-upper-demo.service", map[string]any{"What": "x"}); s.What != "" {
		t.Errorf("service got What %q", s.What)
	}
}

func TestHasStrataDropIn(t *testing.T) {
	u := &Unit{Name: "systemd-nspawn@demo.service", DropInPaths: []string{"/run/systemd/generator/systemd-nspawn@demo.service.d/50-strata.conf"}}
	if !u.HasStrataDropIn() {
		t.Error("generator drop-in not recognised")
	}
	u.DropInPaths = []string{"/etc/systemd/system/systemd-nspawn@demo.service.d/override.conf"}
	if u.HasStrataDropIn() {
		t.Error("another drop-in taken for Strata's")
	}
}

func TestSettle(t *testing.T) {
	us := demoUnits()
	lower := []string{"var-lib-machines-demo.mount", "run-strata-layers-loop_x.mount", "strata-attach@loop_x.service",
		"strata-upper-demo.service", "run-strata-upper-demo.mount"}
	neededBy := map[string][]string{}
	for _, n := range lower {
		neededBy[n] = us[n].NeededBy
	}
	// The layer is shared with container b, which runs.
	neededBy["run-strata-layers-loop_x.mount"] = append(neededBy["run-strata-layers-loop_x.mount"], "var-lib-machines-b.mount")
	st := func(over map[string]unitState) map[string]unitState {
		m := map[string]unitState{"systemd-nspawn@demo.service": {ActiveState: "inactive"}, "var-lib-machines-b.mount": {ActiveState: "active"}}
		for _, n := range lower {
			m[n] = unitState{ActiveState: "active"}
		}
		for k, v := range over {
			m[k] = v
		}
		return m
	}

	// Just after the container stopped: everything of its own is still to
	// stop; the shared layer and its attachment stay for b.
	waiting, kept := settle(lower, neededBy, st(map[string]unitState{"var-lib-machines-demo.mount": {ActiveState: "active", JobType: "stop"}}))
	if want := []string{"var-lib-machines-demo.mount", "strata-upper-demo.service", "run-strata-upper-demo.mount"}; !reflect.DeepEqual(waiting, want) {
		t.Errorf("waiting = %v, want %v", waiting, want)
	}
	wantKept := []Kept{
		{Unit: "run-strata-layers-loop_x.mount", By: []string{"var-lib-machines-b.mount"}},
		{Unit: "strata-attach@loop_x.service", By: []string{"run-strata-layers-loop_x.mount"}},
	}
	if !reflect.DeepEqual(kept, wantKept) {
		t.Errorf("kept = %+v, want %+v", kept, wantKept)
	}

	// b stopping too (a stop job): nothing is kept any more.
	waiting, kept = settle(lower, neededBy, st(map[string]unitState{"var-lib-machines-b.mount": {ActiveState: "active", JobType: "stop"}}))
	if len(kept) != 0 || len(waiting) != len(lower) {
		t.Errorf("with b stopping: waiting %v, kept %v", waiting, kept)
	}

	// All down (one failed on the way): nothing to wait for.
	down := map[string]unitState{"var-lib-machines-b.mount": {ActiveState: "inactive"}}
	for _, n := range lower {
		down[n] = unitState{ActiveState: "inactive"}
	}
	down["strata-attach@loop_x.service"] = unitState{ActiveState: "failed"}
	if waiting, kept := settle(lower, neededBy, st(down)); len(waiting) != 0 || len(kept) != 0 {
		t.Errorf("all down: waiting %v, kept %v", waiting, kept)
	}

	// The container started again meanwhile (a start job): it keeps its chain.
	waiting, _ = settle(lower, neededBy, st(map[string]unitState{"systemd-nspawn@demo.service": {ActiveState: "inactive", JobType: "start"}}))
	if len(waiting) != 0 {
		t.Errorf("container starting again: still waiting for %v", waiting)
	}
}

func TestSystemRoot(t *testing.T) {
	for addr, want := range map[string]string{
		"":                                      "",
		"unix:path=/run/dbus/system_bus_socket": "",
		"unix:path=/var/run/dbus/system_bus_socket":                   "",
		"unix:path=/proc/1234/root/run/dbus/system_bus_socket":        "/proc/1234/root",
		"unix:path=/srv/my%20root/run/dbus/system_bus_socket,guid=ab": "/srv/my root",
		"tcp:host=x,port=1;unix:path=/r/run/dbus/system_bus_socket":   "/r",
		"unix:path=/tmp/other.socket":                                 "",
		"unix:abstract=/tmp/dbus-x":                                   "",
	} {
		if got := systemRoot(addr); got != want {
			t.Errorf("systemRoot(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseJournalJSON(t *testing.T) {
	out := []byte(`{"__REALTIME_TIMESTAMP":"1700000000000001","MESSAGE":"plain"}
{"__REALTIME_TIMESTAMP":"1700000000000002","MESSAGE":[104,105,255]}
{"__REALTIME_TIMESTAMP":"1700000000000003","MESSAGE":null}
-- No entries --
`)
	es := parseJournalJSON(out)
	if len(es) != 3 {
		t.Fatalf("got %d entries: %+v", len(es), es)
	}
	if es[0].message != "plain" || es[1].message != "hi\uFFFD" || es[2].message == "" {
		t.Errorf("messages: %q %q %q", es[0].message, es[1].message, es[2].message)
	}
	if !es[2].time.Equal(time.UnixMicro(1700000000000003)) {
		t.Errorf("time %v", es[2].time)
	}
}

func TestJobErrorMessage(t *testing.T) {
	e := &JobError{Action: "start", Unit: "systemd-nspawn@x.service", Result: "dependency",
		Failures: []Failure{{Unit: &Unit{Name: "strata-attach@a.service"}}}}
	want := "start systemd-nspawn@x.service: job dependency (a unit it requires failed); failed: strata-attach@a.service"
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
}

func TestOrphans(t *testing.T) {
	neededBy := map[string][]string{
		"strata-upper-x.service":   {"var-lib-machines-x.mount"},
		"run-strata-upper-x.mount": {"strata-upper-x.service"},
	}
	waiting := []string{"strata-upper-x.service", "run-strata-upper-x.mount"}
	st := map[string]unitState{
		"var-lib-machines-x.mount": {ActiveState: "inactive"},
		"strata-upper-x.service":   {ActiveState: "active"},
		"run-strata-upper-x.mount": {ActiveState: "active"},
	}
	// Only the top one: the mount below waits for the service to go.
	if got := orphans(waiting, neededBy, st); !reflect.DeepEqual(got, []string{"strata-upper-x.service"}) {
		t.Errorf("orphans = %v", got)
	}
	// With a stop job queued, systemd is on it.
	st["strata-upper-x.service"] = unitState{ActiveState: "active", JobType: "stop"}
	if got := orphans(waiting, neededBy, st); len(got) != 0 {
		t.Errorf("orphans with a stop job queued = %v", got)
	}
	// The root mount still stopping: not an orphan yet.
	st["strata-upper-x.service"] = unitState{ActiveState: "active"}
	st["var-lib-machines-x.mount"] = unitState{ActiveState: "deactivating", JobType: "stop"}
	if got := orphans(waiting, neededBy, st); len(got) != 0 {
		t.Errorf("orphans under a stopping root = %v", got)
	}
}

// What list and status show of a container unit: changed on disk, started
// at boot, and which run its journal lines belong to.
func TestContainerUnitProps(t *testing.T) {
	id := []byte{0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0}
	u := unitFromProps("systemd-nspawn@demo.service", map[string]any{
		"NeedDaemonReload": true, "WantedBy": []string{"machines.target"}, "InvocationID": id,
	})
	if !u.NeedDaemonReload || !u.AtBoot || u.InvocationID != "0f1e2d3c4b5a69788796a5b4c3d2e1f0" {
		t.Errorf("props: %+v", u)
	}
	if got := journalMatch(u); !reflect.DeepEqual(got, []string{"_SYSTEMD_INVOCATION_ID=" + u.InvocationID, "+", "INVOCATION_ID=" + u.InvocationID}) {
		t.Errorf("journal match of a unit that ran: %q", got)
	}
	never := unitFromProps("systemd-nspawn@new.service", map[string]any{"InvocationID": make([]byte, 16), "WantedBy": []string{"other.target"}})
	if never.AtBoot || never.InvocationID != "" || never.NeedDaemonReload {
		t.Errorf("a unit that never ran: %+v", never)
	}
	if got := journalMatch(never); !reflect.DeepEqual(got, []string{"--unit=systemd-nspawn@new.service"}) {
		t.Errorf("journal match of a unit that never ran: %q", got)
	}
	attach := &Unit{Name: "strata-attach@rbd_x_1.service", Description: "Strata RBD image rbd/x@v3"}
	if attach.Image() != "RBD image rbd/x@v3" || (&Unit{Name: "strata-upper-x.service", Description: "Strata upper"}).Image() != "" {
		t.Errorf("images: %q", attach.Image())
	}
}

// InChain follows the units the generator names and nothing of the system's.
func TestInChain(t *testing.T) {
	for name, want := range map[string]bool{
		"strata-attach@rbd_image1_0123456789.service": true,
		"strata-cleanup@demo.service":                 true,
		"strata-upper-demo.service":                   true,
		"run-strata-layers-loop_x.mount":              true,
		"run-strata-upper-demo.mount":                 true,
		"var-lib-machines-demo.mount":                 true,
		"-.mount":                                     false,
		"run-strata.mount":                            false,
		"var-lib-machines.mount":                      false,
		"system-systemd\\x2dnspawn.slice":             false,
		"modprobe@loop.service":                       false,
	} {
		if got := InChain(name); got != want {
			t.Errorf("InChain(%q) = %v, want %v", name, got, want)
		}
	}
}
