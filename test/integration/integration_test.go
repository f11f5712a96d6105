//go:build integration

// Package integration runs Strata's units under a real systemd: a testbed
// (test/testbed) boots a Debian root with systemd as PID 1, Strata's
// binaries are bound in where a package would put them, and each test
// writes definitions, reloads, starts and stops containers, and checks
// what is left. Run with `make integration` (part of `make check`).
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/internal/layout"
	"github.com/strata-project/strata/test/harness"
	"github.com/strata-project/strata/test/testbed"
)

var (
	binDir string // strata, strata-generator, strata-helper built for the host
	pkgDir string // the strata .deb (packaging/build.sh) that every node installs
	image  string // a squashfs of the testbed root: the demo container's image
)

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "strata-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	for _, c := range []string{"strata", "strata-generator", "strata-helper"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "../../cmd/"+c)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", c, err, out)
			return 1
		}
	}
	// Nodes get Strata the way administrators do: the package.
	pkgDir = filepath.Join(tmp, "pkg")
	build := exec.Command("../../packaging/build.sh", pkgDir)
	build.Env = append(os.Environ(), "STRATA_PACKAGE_FORMATS=deb")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "packaging/build.sh: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	// The image is the node's own release (one per root of the matrix).
	image = testbed.DefaultRootDir() + ".sqfs"
	if err := testbed.EnsureSquashfs(ctx, testbed.DefaultRootDir(), image); err != nil {
		fmt.Fprintf(os.Stderr, "the testbed cannot be built: %v\n", err)
		return 1
	}
	return m.Run()
}

// node is a testbed with Strata's .deb installed, and /etc/strata bound to
// a host directory the test writes into.
type node struct {
	*testbed.Testbed
	t    *testing.T
	defs string // host directory seen as /etc/strata
	// loops are the loop devices seen under Strata's layers (view), by
	// disk sequence number: the host's loop devices are shared, and other
	// testbeds attach the same image file, so a device is this node's only
	// while its diskseq is the one seen here.
	loops map[string]string
}

func boot(t *testing.T, opts testbed.Options) *node {
	t.Helper()
	defs := t.TempDir()
	if err := os.Chmod(defs, 0o700); err != nil {
		t.Fatal(err)
	}
	opts.Binds = append(opts.Binds,
		testbed.Bind{Host: pkgDir, Guest: "/srv/pkg", ReadOnly: true},
		testbed.Bind{Host: image, Guest: "/srv/images/base.sqfs", ReadOnly: true},
		testbed.Bind{Host: defs, Guest: "/etc/strata"},
	)
	if opts.LoopDevices == 0 {
		opts.LoopDevices = 4
	}
	tb, err := testbed.Boot(t, opts)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	n := &node{Testbed: tb, t: t, defs: defs, loops: map[string]string{}}
	n.run("sh", "-c", "dpkg -i /srv/pkg/strata_*.deb")
	return n
}

// define writes a definition file into /etc/strata (root's, 0600).
func (n *node) define(name, body string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.defs, name), []byte(body), 0o600); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) run(args ...string) string {
	n.t.Helper()
	return n.MustRun(n.t, args...)
}

// try runs a command that may fail, returning its output and exit code.
func (n *node) try(args ...string) (string, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := n.Run(ctx, args...)
	if err != nil {
		n.t.Fatalf("%q: %v", args, err)
	}
	return strings.TrimSpace(res.Stdout + res.Stderr), res.ExitCode
}

// waitUntil polls cond (bounded: 60 s) and fails the test with what it
// waited for, and why it gave up, when cond never holds.
func (n *node) waitUntil(what string, cond func() (bool, string)) {
	n.t.Helper()
	var state string
	if harness.Poll(60*time.Second, 50*time.Millisecond, func() bool {
		var ok bool
		ok, state = cond()
		return ok
	}) != nil {
		n.t.Fatalf("%s: not after 60s: %s", what, state)
	}
}

// waitInactive waits (bounded) until every unit is inactive or failed:
// stopping the container returns before its lower units finish stopping.
func (n *node) waitInactive(units ...string) {
	n.t.Helper()
	if len(units) == 0 {
		return // systemd has already unloaded them: nothing is active
	}
	var out string
	inactive := func() bool {
		out, _ = n.try(append([]string{"systemctl", "is-active"}, units...)...)
		for _, s := range strings.Fields(out) {
			if s != "inactive" && s != "failed" {
				return false
			}
		}
		return true
	}
	if harness.Poll(60*time.Second, 20*time.Millisecond, inactive) != nil {
		n.t.Fatalf("units still active after 60s: %v: %s", units, out)
	}
}

// strataUnits lists the loaded units Strata generated (not the container
// template itself).
func (n *node) strataUnits() []string {
	out := n.run(append([]string{"systemctl", "list-units", "--all", "--plain", "--no-legend"}, layout.UnitGlobs()...)...)
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// assertReleased checks that nothing of Strata's is mounted, attached or
// active inside the node.
func (n *node) assertReleased() {
	n.t.Helper()
	mounts := n.run("cat", "/proc/self/mountinfo")
	for _, l := range strings.Split(mounts, "\n") {
		if strings.Contains(l, "/run/strata/") || strings.Contains(l, "/var/lib/machines/") {
			n.t.Errorf("still mounted: %s", l)
		}
	}
	for dev, seq := range n.loops {
		// Detached, or attached again since (by another testbed or test).
		if out, _ := n.try("sh", "-c", "[ -s /sys/block/"+dev+"/loop/backing_file ] && cat /sys/block/"+dev+"/diskseq"); out == seq {
			n.t.Errorf("loop device %s (diskseq %s) still attached", dev, seq)
		}
	}
	if left, _ := n.try("sh", "-c", "find /run/strata/state /run/strata/dev -mindepth 1 ! -type d 2>/dev/null"); left != "" {
		n.t.Errorf("records or device links left under /run/strata:\n%s", left)
	}
	for _, u := range n.strataUnits() {
		// failed holds nothing either, and shows what went wrong
		if state, _ := n.try("systemctl", "is-active", u); state != "inactive" && state != "failed" {
			log, _ := n.try("journalctl", "--no-pager", "-o", "short-monotonic", "-u", u)
			n.t.Errorf("unit %s is %s; its journal:\n%s", u, state, log)
		}
	}
}

const demo = `{
  "command": "/usr/lib/systemd/systemd",
  "systemd": true,
  "state": "created",
  "mount": {
    "kind": "overlay",
    "overlay": {
      "lower": [{
        "kind": "attach",
        "attach": {
          "fs_type": "squashfs",
          "mount_options": ["ro"],
          "attach": {"kind": "loopback", "loopback": {"path": "/srv/images/base.sqfs", "base": "root"}}
        }
      }]
    }
  }
}
`

// The whole chain under systemd: a loopback squashfs, a tmpfs overlay, and
// systemd booted inside as a machine; then everything released on stop.
func TestLoopbackContainerBootsAndReleases(t *testing.T) {
	n := boot(t, testbed.Options{})
	n.define("demo.json", demo)
	n.run("systemctl", "daemon-reload")
	n.run("systemctl", "start", "systemd-nspawn@demo.service")

	if out := n.run("machinectl", "list", "--no-legend"); !strings.Contains(out, "demo") {
		t.Errorf("machinectl list does not show demo:\n%s", out)
	}
	// A command inside the nested machine, through machined.
	if out := n.run("systemd-run", "--machine=demo", "--wait", "--pipe", "--quiet", "/bin/cat", "/etc/os-release"); !strings.Contains(out, "Debian") {
		t.Errorf("command in the container: %q", out)
	}
	// The overlay is writable, the layer is not.
	n.run("systemd-run", "--machine=demo", "--wait", "--pipe", "--quiet", "/bin/touch", "/written-in-overlay")
	layer := n.run("findmnt", "--raw", "--noheadings", "--output=TARGET", "--types=squashfs")
	if !strings.HasPrefix(layer, "/run/strata/layers/loop_base.sqfs_") {
		t.Fatalf("squashfs layer mounted at %q", layer)
	}
	if out, code := n.try("touch", layer+"/x"); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("the layer is writable: %d %s", code, out)
	}

	n.view() // notes the layer's loop device for assertReleased
	chain := n.strataUnits()
	if len(chain) != 6 {
		t.Errorf("want 6 units in the chain (attach, layer, tmpfs, prepare, overlay, clean-up), got %v", chain)
	}
	for _, u := range chain {
		if state, _ := n.try("systemctl", "is-active", u); state != "active" {
			t.Errorf("%s is %s while the container runs", u, state)
		}
	}
	t.Logf("running: %v", chain)

	n.run("systemctl", "stop", "systemd-nspawn@demo.service")
	n.waitInactive(chain...)
	n.assertReleased()
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
