//go:build vm

package vm

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBootActivation boots a node whose /etc/strata holds definitions with
// state "running": nothing is started by hand. The root is the networkd
// variant (root-networkd.sh): systemd-networkd configures eth0 from a
// .network file (the initramfs sets no address) and
// systemd-networkd-wait-online holds network-online.target until it has,
// as on a real node. Two boots share the namespace and the cluster:
//
//   - Boots: the seed's definition on rbd/image1@v1. Boot reaches "running";
//     the container runs, its attach unit started after network-online.target,
//     which came after wait-online; udev made the device link.
//   - UnreachableMonitor: the same, plus a definition whose monitor is an
//     address of the namespace where nothing answers. Only that container
//     fails, after the kernel's mount_timeout, with the reason in its status;
//     the first one runs as before, and boot ends "degraded", not hanging.
//
// Both boots shorten systemd's device time-out to 5 s (DefaultDeviceTimeoutSec=),
// well under the time the VM takes to get its network online: what a node
// whose network takes longer than the default 90 s sees. The generator's
// device drop-in leaves the wait to the attach unit, so the container still
// starts, and a failing one fails for its attach's reason, not "Timed out
// waiting for device".
//
// Both boot times are logged (host: qemu started until `systemctl
// is-system-running --wait` returned; guest: systemd-analyze).
func TestBootActivation(t *testing.T) {
	root := ensureNetworkdRoot(t)
	e := newRBDCluster(t)
	good := seedDefinitionSnap("boot", "image1", "v1", e.monitor, e.secretOptions(e.key))
	var times []string

	t.Run("Boots", func(t *testing.T) {
		e.t = t
		e.bootWith(root, map[string]string{"boot": good}, false)
		times = append(times, e.bootTime("one container"))
		e.checkBootActivated("boot")
		e.onlyNeeded()
	})

	t.Run("UnreachableMonitor", func(t *testing.T) {
		e.t = t
		// No host has this address: the kernel client gets no answer.
		bad := seedDefinition("unreach", "image1", "10.99.0.9", e.secretOptions(e.key))
		e.bootWith(root, map[string]string{"boot": good, "unreach": bad}, true)
		times = append(times, e.bootTime("plus one with an unreachable monitor"))
		if st := e.must("sh", "-c", "systemctl is-system-running || true"); st != "degraded" {
			t.Errorf("system state %q, want degraded (a container that should run does not)", st)
		}
		e.checkBootActivated("boot")

		if st, _, _ := e.try(time.Minute, "systemctl", "is-active", "systemd-nspawn@unreach.service"); st == "active" {
			t.Fatalf("systemd-nspawn@unreach is active")
		}
		attach := e.attachUnitOf("unreach")
		ran := e.monotonic(attach, "ExecMainExitTimestampMonotonic") - e.monotonic(attach, "ExecMainStartTimestampMonotonic")
		t.Logf("%s failed after %s", attach, ran.Round(time.Millisecond))
		// The helper gives up on its own after its map retries (two
		// attempts of the kernel's mount_timeout, 60 s, within
		// krbd.DefaultRetry's 130 s), before the template's 3 min start
		// time-out would kill it: systemd's Result says which ended it (a
		// fact, where a duration guard would race on a loaded machine).
		if res := e.must("systemctl", "show", "--property=Result", "--value", attach); res != "exit-code" {
			t.Errorf("%s ended with Result=%s, want exit-code: the unit's time-out, not the helper's bounded retries, ended it", attach, res)
		}
		// The other container does not wait for it: nothing it is ordered
		// after leads to the unreachable attach (a check of the graph, not of
		// timestamps, which a loaded machine makes race).
		if deps, _, _ := e.try(time.Minute, "systemctl", "list-dependencies", "--after", "--all", "--plain", "--no-pager", "systemd-nspawn@boot.service"); strings.Contains(deps, attach) {
			t.Errorf("systemd-nspawn@boot is ordered after %s:\n%s", attach, deps)
		}
		reason := "no answer from the monitors 10.99.0.9:6789"
		if st, _, _ := e.try(time.Minute, "journalctl", "--no-pager", "-u", attach); !strings.Contains(st, "gave up after 2 attempts") {
			t.Errorf("%s's journal does not say the map was retried (\"gave up after 2 attempts\"):\n%s", attach, st)
		}
		st, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=20", "systemd-nspawn@unreach.service")
		if !strings.Contains(st, reason) {
			t.Errorf("systemctl status systemd-nspawn@unreach does not say %q:\n%s", reason, st)
		}
		sst, _, _ := e.try(time.Minute, "strata", "status", "unreach")
		if !strings.Contains(sst, reason) {
			t.Errorf("strata status unreach does not say %q:\n%s", reason, sst)
		}
		t.Logf("systemctl status systemd-nspawn@unreach:\n%s\nstrata status unreach:\n%s", st, sst)
		e.onlyNeeded()
	})
	t.Logf("boot times: %s", strings.Join(times, "; "))
}

// bootWith boots the env's VM on the networkd root with defs in /etc/strata
// (0600 files in a 0700 directory, as an administrator writes them).
func (e *rbdEnv) bootWith(root string, defs map[string]string, degraded bool) {
	e.t.Helper()
	network := fmt.Sprintf("[Match]\nName=eth0\n\n[Network]\nAddress=%s/%d\n", e.ns.GuestAddr, e.ns.PrefixLen)
	files := []File{{Path: "/etc/systemd/network/10-eth0.network", Data: []byte(network)},
		{Path: "/etc/systemd/system.conf.d/50-device-timeout.conf", Data: []byte("[Manager]\nDefaultDeviceTimeoutSec=5s\n")}}
	for name, body := range defs {
		files = append(files, File{Path: "/etc/strata/" + name + ".json", Data: []byte(body), Mode: 0o600})
	}
	e.boot(Options{RootImage: root, NetworkByRoot: true, Files: files, AllowDegraded: degraded,
		Hook: `chmod 0700 "$NEWROOT/etc/strata"`})
}

// bootTime logs and returns how long the boot took.
func (e *rbdEnv) bootTime(what string) string {
	e.t.Helper()
	analyze, _, _ := e.try(time.Minute, "systemd-analyze", "time")
	s := fmt.Sprintf("%s: %s until running (host), %s", what, e.vm.Timing().Running.Round(100*time.Millisecond),
		strings.TrimSpace(strings.SplitN(analyze, "\n", 2)[0]))
	e.t.Log(s)
	return s
}

// checkBootActivated checks that container name came up at boot on its
// RBD layer, after the network was online.
func (e *rbdEnv) checkBootActivated(name string) {
	e.t.Helper()
	if cl := e.must("cat", "/proc/cmdline"); strings.Contains(cl, "strata.ip=") {
		e.t.Errorf("the initramfs set the address (%s): networkd was to", cl)
	}
	if st := e.must("systemctl", "is-active", "systemd-networkd.service", "systemd-networkd-wait-online.service", "network-online.target"); st != "active\nactive\nactive" {
		e.t.Errorf("networkd, wait-online, network-online.target: %q", st)
	}
	if out := e.must("networkctl", "list", "--no-legend", "eth0"); !strings.Contains(out, "configured") {
		e.t.Errorf("networkctl: eth0 is not configured by networkd: %s", out)
	}
	if st, _, _ := e.try(time.Minute, "systemctl", "is-active", "systemd-nspawn@"+name+".service"); st != "active" {
		e.t.Fatalf("systemd-nspawn@%s is %s after boot:\n%s", name, st, e.journal())
	}
	e.checkMachineRunning(name)
	if j := e.journal(); strings.Contains(j, "Timed out waiting for device") {
		e.t.Errorf("a device wait timed out at boot:\n%s", j)
	}
	if jobs := e.must("systemctl", "list-jobs", "--no-legend"); jobs != "" {
		e.t.Errorf("jobs left after boot:\n%s", jobs)
	}
	e.must("test", "-b", "/dev/rbd/rbd/image1@v1")
	attach := e.attachUnitOf(name)
	online := e.monotonic("network-online.target", "ActiveEnterTimestampMonotonic")
	waited := e.monotonic("systemd-networkd-wait-online.service", "ActiveEnterTimestampMonotonic")
	mapped := e.monotonic(attach, "ExecMainStartTimestampMonotonic")
	if !(waited <= online && online <= mapped) {
		e.t.Errorf("order: wait-online done at %s, network-online.target at %s, %s started at %s", waited, online, attach, mapped)
	}
	e.t.Logf("after boot: wait-online done at %s, network-online.target %s, %s started %s, container up %s", waited, online, attach, mapped,
		e.monotonic("systemd-nspawn@"+name+".service", "ActiveEnterTimestampMonotonic"))
}

// attachUnitOf is the attach unit of container name's one RBD layer.
func (e *rbdEnv) attachUnitOf(name string) string {
	e.t.Helper()
	for _, u := range strings.Fields(e.must("sh", "-c", "cd /run/systemd/generator && ls -d strata-attach@*.service.d")) {
		u = strings.TrimSuffix(u, ".d")
		deps := e.must("systemctl", "list-dependencies", "--reverse", "--all", "--plain", "--no-legend", u)
		if strings.Contains(deps, "systemd-nspawn@"+name+".service") {
			return u
		}
	}
	e.t.Fatalf("no attach unit serves %s", name)
	return ""
}

// monotonic reads a unit's monotonic timestamp property.
func (e *rbdEnv) monotonic(unit, prop string) time.Duration {
	e.t.Helper()
	v := e.must("systemctl", "show", "-P", prop, unit)
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil || us == 0 {
		e.t.Fatalf("%s %s = %q", unit, prop, v)
	}
	return time.Duration(us) * time.Microsecond
}
