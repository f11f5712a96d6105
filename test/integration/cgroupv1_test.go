//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/strata-project/strata/test/testbed"
)

// The core chain on a node booted with cgroup v1 (EL8's default): the
// container (Delegate=yes, Slice=machine.slice) boots, runs in its slice of
// the v1 hierarchy, stops and leaves nothing.
func TestCgroupV1Node(t *testing.T) {
	n := boot(t, testbed.Options{CgroupV1: true})
	if fs := n.run("stat", "-f", "-c", "%T", "/sys/fs/cgroup"); fs != "tmpfs" {
		t.Fatalf("/sys/fs/cgroup is %s: not the legacy hierarchy", fs)
	}
	if _, code := n.try("test", "-e", "/sys/fs/cgroup/unified"); code == 0 {
		t.Fatal("/sys/fs/cgroup/unified exists: a hybrid hierarchy, not cgroup v1")
	}
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")
	if cg := n.unitProp("systemd-nspawn@demo.service", "ControlGroup"); cg != "/machine.slice/systemd-nspawn@demo.service" {
		t.Errorf("the container runs in %q", cg)
	}
	if s := n.run("machinectl", "show", "--property=State", "demo"); s != "State=running" {
		t.Errorf("machinectl: %s", s)
	}
	// The container's init is in the v1 hierarchies (name=systemd and the
	// controllers), in its unit's cgroup.
	leader := n.run("machinectl", "show", "--property=Leader", "--value", "demo")
	if cg := n.run("cat", "/proc/"+leader+"/cgroup"); !strings.Contains(cg, ":name=systemd:/machine.slice/systemd-nspawn@demo.service") || strings.HasPrefix(cg, "0::") {
		t.Errorf("the container's init is in:\n%s", cg)
	}
	n.run("systemctl", "stop", "systemd-nspawn@demo.service")
	n.waitInactive(n.strataUnits()...)
	n.assertReleased()
}
