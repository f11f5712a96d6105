//go:build integration && demo

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/testbed"
)

// TestDemo is `make demo`: a node with a real systemd, Strata installed, and
// a demo container from a local loopback squashfs image (no Ceph needed),
// shown step by step on stdout.
func TestDemo(t *testing.T) {
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Printf("\n==> "+format+"\n", args...)
	}
	show := func(out string) {
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			fmt.Println("    " + l)
		}
	}

	step("booting a node: Debian with systemd as PID 1 (systemd-nspawn), Strata installed")
	n := boot(t, testbed.Options{})
	show(n.run("systemctl", "is-system-running"))

	step("/etc/strata/demo.json: the node's own root as a read-only squashfs image, a tmpfs overlay on top, systemd inside")
	n.define("demo.json", demo)
	show(demo)
	show(n.run("strata", "validate", "/etc/strata"))

	step("strata reload (systemctl daemon-reload): strata-generator writes the units")
	show(n.run("strata", "reload"))
	show(n.run("sh", "-c", "cd /run/systemd/generator && ls -1 strata-* run-strata-* var-lib-machines-* systemd-nspawn@demo.service.d/*"))

	step("strata start demo (systemctl start systemd-nspawn@demo): attach → layer mount → overlay → machine boots")
	t0 := time.Now()
	n.run("strata", "start", "demo")
	fmt.Printf("    started in %s\n", time.Since(t0).Round(time.Millisecond))
	step("strata status demo: the chain of units and the machine")
	show(n.run("strata", "status", "demo"))
	show(n.run("machinectl", "list", "--no-pager"))

	step("a command inside the container (systemd-run --machine=demo)")
	show(n.run("systemd-run", "--machine=demo", "--wait", "--pipe", "--quiet", "/bin/sh", "-c", "grep PRETTY /etc/os-release; echo \"PID 1 is $(cat /proc/1/comm)\"; systemctl is-system-running --wait"))

	step("strata stop demo (systemctl stop systemd-nspawn@demo): everything only it used is released")
	t0 = time.Now()
	n.run("strata", "stop", "demo")
	n.waitInactive(n.strataUnits()...)
	fmt.Printf("    stopped and released in %s\n", time.Since(t0).Round(time.Millisecond))
	n.assertReleased()
	show(n.run("sh", "-c", "echo \"mounts left: $(findmnt -rn -o TARGET | grep -c -e /run/strata -e /var/lib/machines)\"; echo \"loop devices left: $(losetup -l -n -O BACK-FILE | grep -c /srv/images/base.sqfs)\""))

	step("done in %s; tearing the node down", time.Since(start).Round(time.Millisecond))
}
