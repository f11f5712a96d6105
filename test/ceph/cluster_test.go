//go:build ceph

package ceph

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// listeners are the TCP addresses pid listens on.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			addr, port, _ := strings.Cut(fields[1], ":")
			raw, _ := hex.DecodeString(addr)
			// /proc/net/tcp writes each 32-bit word in host (little-endian) order.
			for i := 0; i+4 <= len(raw); i += 4 {
				raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			p, _ := strconv.ParseUint(port, 16, 16)
			out = append(out, net.JoinHostPort(net.IP(raw).String(), strconv.Itoa(int(p))))
		}
	}
	return out
}

// processesOf are the PIDs whose command line names dir.
func processesOf(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(data, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestCluster(t *testing.T) {
	c := Start(t)
	for _, f := range []string{c.Conf, c.Admin.Keyring, c.Build.Keyring, c.Node.Keyring} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if c.Pool != "rbd" || c.Admin.ID != "admin" || c.Build.Name() != "client.strata-build" || c.Node.Name() != "client.strata-node" {
		t.Errorf("cluster %+v", c)
	}
	if !strings.HasPrefix(c.MonV1, "127.0.0.1:") || !strings.HasPrefix(c.MonV2, "127.0.0.1:") ||
		c.MonHost != fmt.Sprintf("[v2:%s,v1:%s]", c.MonV2, c.MonV1) {
		t.Errorf("monitors %q %q %q", c.MonHost, c.MonV1, c.MonV2)
	}
	pids := c.PIDs()
	if pids["mon.a"] == 0 || pids["osd.0"] == 0 || pids["watcher"] == 0 {
		t.Fatalf("pids %v", pids)
	}
	// Nothing listens anywhere but 127.0.0.1.
	for _, d := range []string{"mon.a", "osd.0"} {
		ls := listeners(t, pids[d])
		if len(ls) == 0 {
			t.Errorf("%s listens nowhere", d)
		}
		for _, l := range ls {
			if !strings.HasPrefix(l, "127.0.0.1:") {
				t.Errorf("%s listens on %s", d, l)
			}
		}
		if d == "mon.a" && !(contains(ls, c.MonV1) && contains(ls, c.MonV2)) {
			t.Errorf("mon listens on %v, want %s and %s", ls, c.MonV1, c.MonV2)
		}
	}
	// cephx is on, pool rbd is initialised for rbd, the users have their caps.
	conf, _ := os.ReadFile(c.Conf)
	for _, want := range []string{"auth_cluster_required = cephx", "auth_client_required = cephx", "ms_bind_ipv6 = false", "osd_objectstore = memstore"} {
		if !bytes.Contains(conf, []byte(want)) {
			t.Errorf("conf lacks %q", want)
		}
	}
	if out := c.Run(t, "ceph", "osd", "pool", "application", "get", "rbd"); !strings.Contains(out, `"rbd"`) {
		t.Errorf("application: %s", out)
	}
	if out := c.Run(t, "ceph", "health"); !strings.HasPrefix(out, "HEALTH_OK") {
		t.Errorf("health: %s", out)
	}
	node := c.Run(t, "ceph", "auth", "get", "client.strata-node")
	build := c.Run(t, "ceph", "auth", "get", "client.strata-build")
	if !strings.Contains(node, `caps mon = "profile rbd"`) || !strings.Contains(node, `caps osd = "profile rbd-read-only pool=rbd"`) {
		t.Errorf("strata-node: %s", node)
	}
	if !strings.Contains(build, `caps osd = "profile rbd pool=rbd"`) {
		t.Errorf("strata-build: %s", build)
	}
	for _, u := range []User{c.Admin, c.Build, c.Node} {
		if !strings.Contains(node+build, u.Key) && u.ID != "admin" || len(u.Key) != 40 {
			t.Errorf("%s: key %q", u.Name(), u.Key)
		}
	}
	// The node user reads, and cannot write.
	c.Run(t, "rbd", "create", "--size", "4M", "--image-feature", "layering", "rbd/probe")
	asNode := []string{"--id", c.Node.ID, "--keyring", c.Node.Keyring}
	if out, err := c.Command("rbd", append([]string{"info", "rbd/probe"}, asNode...)...).CombinedOutput(); err != nil {
		t.Errorf("rbd info as strata-node: %v %s", err, out)
	}
	if out, err := c.Command("rbd", append([]string{"create", "--size", "4M", "rbd/nope"}, asNode...)...).CombinedOutput(); err == nil {
		t.Errorf("strata-node created an image: %s", out)
	}

	// start again: nothing changes.
	out, err := exec.Command(filepath.Join(ScriptDir(), "cluster.sh"), "start", c.Dir).Output()
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if !strings.Contains(string(out), "CEPH_MON_HOST="+c.MonHost) {
		t.Errorf("second start printed %s", out)
	}
	if again := c.readPIDs(); again["mon.a"] != pids["mon.a"] || again["osd.0"] != pids["osd.0"] {
		t.Errorf("second start changed the daemons: %v -> %v", pids, again)
	}

	// A second cluster beside it takes other ports.
	c2 := Start(t)
	if c2.MonV1 == c.MonV1 || c2.MonV2 == c.MonV2 {
		t.Errorf("two clusters on %s / %s", c.MonHost, c2.MonHost)
	}
	if out := c2.Run(t, "rbd", "ls"); strings.Contains(out, "probe") {
		t.Errorf("the second cluster sees the first one's image")
	}
	// Stopped: every process is gone, and stop again does nothing.
	if err := c2.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := processesOf(c2.Dir); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
	if err := c2.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	// The first one is unaffected.
	if out := c.Run(t, "rbd", "ls"); !strings.Contains(out, "probe") {
		t.Errorf("rbd ls after stopping the other cluster: %s", out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A test binary killed by its time-out runs no cleanup: the watcher that
// --owner starts stops the cluster when its owner exits.
func TestOwnerGoneStopsCluster(t *testing.T) {
	Setup(t)
	dir, err := os.MkdirTemp("", "strata-ceph-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	owner := exec.Command("sleep", "600")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(ScriptDir(), "cluster.sh")
	defer exec.Command(script, "stop", dir).Run()
	if out, err := exec.Command(script, "start", dir, "--owner", strconv.Itoa(owner.Process.Pid)).CombinedOutput(); err != nil {
		owner.Process.Kill()
		t.Fatalf("start: %v\n%s", err, out)
	}
	if n := len(processesOf(dir)); n < 3 {
		t.Fatalf("%d processes (mon, osd, watcher expected)", n)
	}
	owner.Process.Kill()
	owner.Wait()
	if harness.Poll(30*time.Second, 200*time.Millisecond, func() bool { return len(processesOf(dir)) == 0 }) != nil {
		t.Fatalf("still running 30 s after the owner died: %v", processesOf(dir))
	}
}

// A start that fails says why and leaves nothing running: here the OSD's
// mkfs fails (a ceph-osd that exits 1 comes first in PATH) after the mon
// has started.
func TestFailedStartLeavesNothing(t *testing.T) {
	Setup(t)
	dir, err := os.MkdirTemp("", "strata-ceph-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(ScriptDir(), "cluster.sh")
	defer exec.Command(script, "stop", dir).Run()
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "ceph-osd"), []byte("#!/bin/sh\necho broken osd >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, "start", dir)
	cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("start with a broken ceph-osd succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "ceph-osd --mkfs failed") || !strings.Contains(string(out), "broken osd") {
		t.Errorf("no reason given: %s", out)
	}
	if left := processesOf(dir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
	// Usage errors.
	if err := exec.Command(script, "start").Run(); err == nil {
		t.Error("start without DIR succeeded")
	}
	if err := exec.Command(script, "restart", dir).Run(); err == nil {
		t.Error("an unknown command succeeded")
	}
}

func TestClusterWithMgr(t *testing.T) {
	c := StartWith(t, Options{Mgr: true, MemstoreBytes: 256 << 20})
	if c.PIDs()["mgr.x"] == 0 {
		t.Fatalf("no mgr: %v", c.PIDs())
	}
	for _, l := range listeners(t, c.PIDs()["mgr.x"]) {
		if !strings.HasPrefix(l, "127.0.0.1:") {
			t.Errorf("mgr listens on %s", l)
		}
	}
	c.Run(t, "rbd", "create", "--size", "4M", "rbd/with-mgr")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if left := processesOf(c.Dir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}
