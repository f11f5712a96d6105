//go:build vm

package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// rbdEnv is one network namespace holding a Ceph cluster with rbd/image1 (the testbed
// root's squashfs) and a VM on the namespace's tap with Strata installed.
type rbdEnv struct {
	t       *testing.T
	ns      *Netns
	cl      *Cluster
	vm      *VM
	monitor string // what definitions name: the mon's address in the namespace
	key     string // client.strata-node's secret
}

const nodeUser = "strata-node" // mon 'profile rbd', osd 'profile rbd-read-only pool=rbd'

func newRBDEnv(t *testing.T, opts Options) *rbdEnv {
	t.Helper()
	e := newRBDCluster(t)
	e.boot(opts)
	return e
}

// newRBDCluster is newRBDEnv without the VM: the namespace and the cluster
// with rbd/image1, for a test that boots its VM with files that need them.
func newRBDCluster(t *testing.T) *rbdEnv {
	t.Helper()
	ctx := ctxFor(t, 10*time.Minute)
	e := &rbdEnv{t: t}
	t0 := time.Now()
	ns, err := NewNetns(ctx)
	if err != nil {
		t.Fatalf("network namespace: %v", err)
	}
	t.Cleanup(func() {
		// Runs last: the VM and the cluster are gone; nothing may be left in the namespace.
		if err := ns.Close(); err != nil {
			t.Errorf("%v", err)
		}
		if e.cl != nil {
			if left := e.cl.waitGone(5 * time.Second); len(left) > 0 {
				t.Errorf("ceph processes left: %v", left)
			}
		}
	})
	e.ns = ns
	dir := t.TempDir()
	cl, err := StartCluster(ctx, ns, filepath.Join(dir, "ceph"))
	if err != nil {
		t.Fatalf("ceph cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cl.Stop(ctx); err != nil {
			t.Errorf("%v", err)
		}
	})
	e.cl = cl
	t.Logf("ceph cluster ready on %s in %s", cl.MonV1(), time.Since(t0).Round(time.Millisecond))
	if !strings.HasSuffix(cl.MonV1(), ":6789") {
		t.Fatalf("the mon's v1 address is %s, not on the default port 6789", cl.MonV1())
	}
	e.monitor = ns.HostAddr // as the seed writes it: an address, port 6789 implied
	t1 := time.Now()
	switch imageTool {
	case "strata-image":
		// As an admin would: the build user (osd 'profile rbd pool=rbd'), the testbed
		// root's squashfs written as it is, a protected snapshot v1 for the snapshot case.
		out, err := ns.Run(ctx, filepath.Join(binDir, "strata-image"), "build", rootSqfs,
			"--pool", "rbd", "--image", "image1", "--snapshot", "v1", "--protect",
			"--mon", cl.MonV1(), "--id", "strata-build", "--keyring", cl.Keyring("strata-build"), "--progress", "none")
		if err != nil {
			t.Fatalf("strata-image build: %v", err)
		}
		t.Logf("strata-image build %s into rbd/image1@v1: %s\n%s", rootSqfs, time.Since(t1).Round(time.Millisecond), out)
	default:
		if out, err := cl.RBD(ctx, "import", "--no-progress", "--image-feature", "layering", rootSqfs, "rbd/image1"); err != nil {
			t.Fatalf("rbd import: %v: %s", err, out)
		}
		if out, err := cl.RBD(ctx, "snap", "create", "rbd/image1@v1"); err != nil {
			t.Fatalf("rbd snap create: %v: %s", err, out)
		}
		t.Logf("rbd import of %s into rbd/image1 (+ snapshot v1): %s", rootSqfs, time.Since(t1).Round(time.Millisecond))
	}
	if e.key, err = cl.Key(nodeUser); err != nil {
		t.Fatal(err)
	}
	if caps, err := cl.Ceph(ctx, "auth", "get", "client."+nodeUser); err != nil || !strings.Contains(caps, "profile rbd-read-only pool=rbd") {
		t.Fatalf("client.%s caps: %v\n%s", nodeUser, err, caps)
	}
	return e
}

// boot boots the env's VM on its namespace (Strata installed unless
// opts.Binds says otherwise) and checks it reaches the cluster.
func (e *rbdEnv) boot(opts Options) {
	e.t.Helper()
	opts.Netns = e.ns
	if opts.Binds == nil {
		opts.Binds = strataBinds()
	}
	vm, err := Boot(e.t, opts)
	if err != nil {
		e.t.Fatalf("boot: %v", err)
	}
	e.vm = vm
	// The VM reaches the cluster, and only through the namespace.
	e.must("grep", "-q", e.ns.GuestAddr, "/proc/net/fib_trie")
	e.must("timeout", "10", "bash", "-c", "exec 3<>/dev/tcp/"+e.ns.HostAddr+"/6789")
}

func (e *rbdEnv) must(args ...string) string {
	e.t.Helper()
	return e.vm.MustRun(e.t, args...)
}

// try runs a command that may fail; bounded by d.
func (e *rbdEnv) try(d time.Duration, args ...string) (string, int, time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := e.vm.Run(ctx, args...)
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	return strings.TrimSpace(r.Stdout + r.Stderr), r.ExitCode, r.Duration
}

// seedDefinition is the seed's definition (shared/seeds, "Scheme: RBD") with the test
// cluster's monitor and the restricted user; rbdOptions replace its options.
func seedDefinition(name, image, monitor string, rbdOptions map[string]any) string {
	return seedDefinitionSnap(name, image, "", monitor, rbdOptions)
}

// seedDefinitionSnap is seedDefinition on a snapshot of the image (when snap is set).
func seedDefinitionSnap(name, image, snap, monitor string, rbdOptions map[string]any) string {
	rbd := map[string]any{
		"image":    image,
		"monitors": []string{monitor},
		"options":  rbdOptions,
		"pool":     "rbd",
	}
	if snap != "" {
		rbd["snapshot"] = snap
	}
	def := map[string]any{
		"name":    name,
		"command": "/usr/lib/systemd/systemd",
		"mount": map[string]any{
			"kind": "overlay",
			"overlay": map[string]any{
				"lower": []any{map[string]any{
					"kind": "attach",
					"attach": map[string]any{
						"kind":          "rbd",
						"fs_type":       "squashfs",
						"mount_options": []string{"ro"},
						"attach": map[string]any{
							"kind": "rbd",
							"rbd":  rbd,
						},
					},
				}},
			},
		},
		"state":   "running",
		"systemd": true,
	}
	b, _ := json.MarshalIndent(def, "", "  ")
	return string(b) + "\n"
}

func (e *rbdEnv) secretOptions(key string) map[string]any {
	return map[string]any{"name": nodeUser, "ro": true, "secret": key}
}

// define replaces every definition in /etc/strata with defs (name → body, mode 0600)
// and reloads.
func (e *rbdEnv) define(defs map[string]string) {
	e.t.Helper()
	e.must("sh", "-c", "mkdir -p /etc/strata && chmod 0700 /etc/strata && rm -f /etc/strata/*")
	for name, body := range defs {
		if err := e.vm.WriteFile("/etc/strata/"+name+".json", []byte(body), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	e.must("systemctl", "daemon-reload")
}

// rbdDevices lists /sys/bus/rbd/devices as "ID pool/image" lines.
func (e *rbdEnv) rbdDevices() []string {
	e.t.Helper()
	out := e.must("sh", "-c", `[ -d /sys/bus/rbd/devices ] || exit 0
for d in /sys/bus/rbd/devices/*; do
	[ -e "$d/pool" ] || continue
	id=$(basename "$d")
	echo "$id $(cat "$d/pool")/$(cat "$d/name") ro=$(cat /sys/block/rbd$id/ro)"
done`)
	return trimLines(out)
}

// strataUnits lists the units Strata generated, loaded or not running.
func (e *rbdEnv) strataUnits() []string {
	out := e.must("systemctl", "list-units", "--all", "--plain", "--no-legend", "strata-*", "run-strata-*", "var-lib-machines-*")
	var names []string
	for _, l := range trimLines(out) {
		names = append(names, strings.Fields(l)[0])
	}
	return names
}

// waitReleased waits (bounded) until every Strata unit is inactive or failed and no
// rbd device is mapped, then checks nothing is mounted.
func (e *rbdEnv) waitReleased(d time.Duration) {
	e.t.Helper()
	var busy, devs []string
	released := func() bool {
		busy = []string{}
		for _, u := range e.strataUnits() {
			st, _, _ := e.try(time.Minute, "systemctl", "is-active", u)
			if st != "inactive" && st != "failed" {
				busy = append(busy, u+"="+st)
			}
		}
		devs = e.rbdDevices()
		return len(busy) == 0 && len(devs) == 0
	}
	if harness.Poll(d, 200*time.Millisecond, released) != nil {
		e.t.Fatalf("not released after %s: units %v, rbd devices %v", d, busy, devs)
	}
	mounts := e.must("cat", "/proc/self/mountinfo")
	for _, l := range strings.Split(mounts, "\n") {
		if strings.Contains(l, "/run/strata/") || strings.Contains(l, "/var/lib/machines/") || strings.Contains(l, "/dev/rbd") {
			e.t.Errorf("still mounted: %s", l)
		}
	}
}

func (e *rbdEnv) journal(units ...string) string {
	args := []string{"journalctl", "--no-pager", "-b", "-o", "short-monotonic"}
	for _, u := range units {
		args = append(args, "-u", u)
	}
	out, _, _ := e.try(time.Minute, args...)
	return out
}

// startContainer starts systemd-nspawn@NAME and fails the test with the journal when
// that does not work.
func (e *rbdEnv) startContainer(name string) time.Duration {
	e.t.Helper()
	out, code, d := e.try(6*time.Minute, "systemctl", "start", "systemd-nspawn@"+name+".service")
	if code != 0 {
		st, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=30", "systemd-nspawn@"+name+".service", "strata-attach@*")
		e.t.Fatalf("systemctl start systemd-nspawn@%s: exit %d: %s\n%s\njournal:\n%s", name, code, out, st, e.journal())
	}
	return d
}

// checkMachineRunning checks machinectl lists NAME and that its systemd booted.
func (e *rbdEnv) checkMachineRunning(name string) {
	e.t.Helper()
	if out := e.must("machinectl", "list", "--no-legend"); !strings.Contains(out, name) {
		e.t.Errorf("machinectl list does not show %s:\n%s", name, out)
	}
	// The nested systemd answers (notify-ready made the start wait for it).
	var out string
	if harness.Poll(3*time.Minute, 500*time.Millisecond, func() bool {
		var code int
		out, code, _ = e.try(time.Minute, "systemctl", "-M", name, "is-system-running")
		return code == 0 || out == "degraded"
	}) != nil {
		e.t.Errorf("the nested systemd of %s is %q", name, out)
	}
}

// TestRBD runs the seed's RBD scheme through the kernel path in one VM: start (krbd map
// by strata-helper through sysfs, /dev/rbd/rbd/image1 from Strata's udev rule,
// squashfs, overlay, nested machine), stop (unmapped), sharing, and the failures. The
// cluster-down case runs last (it stops the cluster).
func TestRBD(t *testing.T) {
	t0 := time.Now()
	e := newRBDEnv(t, Options{})
	t.Logf("environment ready in %s", time.Since(t0).Round(time.Millisecond))
	e.must("modprobe", "rbd")

	t.Run("Seed", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{"test": seedDefinition("test", "image1", e.monitor, e.secretOptions(e.key))})
		d := e.startContainer("test")
		t.Logf("start (map, mounts, nested boot): %s", d.Round(time.Millisecond))
		devs := e.rbdDevices()
		if len(devs) != 1 || !strings.Contains(devs[0], "rbd/image1") || !strings.Contains(devs[0], "ro=1") {
			t.Errorf("rbd devices: %v, want one read-only rbd/image1", devs)
		}
		link := e.must("readlink", "-f", "/dev/rbd/rbd/image1")
		if !strings.HasPrefix(link, "/dev/rbd") {
			t.Errorf("/dev/rbd/rbd/image1 -> %q", link)
		}
		layer := e.must("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "--target", "/var/lib/machines/test")
		if !strings.HasPrefix(layer, "overlay overlay") {
			t.Errorf("/var/lib/machines/test: %s", layer)
		}
		lower := e.must("sh", "-c", "findmnt -n -o SOURCE,FSTYPE,OPTIONS -S "+link)
		if !strings.Contains(lower, "squashfs") || !strings.Contains(lower, "ro") {
			t.Errorf("%s is mounted as: %s", link, lower)
		}
		e.checkMachineRunning("test")
		// The helper used the sysfs interface, with the key in the kernel keyring.
		if j := e.journal("strata-attach@*"); !strings.Contains(j, "mapped rbd rbd/image1") {
			t.Errorf("the attach unit's journal does not show the helper's map:\n%s", j)
		}
		if dm := e.must("dmesg"); strings.Contains(dm, e.key) {
			t.Errorf("the secret appears in the kernel log")
		}

		_, code, d := e.try(3*time.Minute, "systemctl", "stop", "systemd-nspawn@test.service")
		if code != 0 {
			t.Fatalf("stop failed:\n%s", e.journal())
		}
		e.waitReleased(2 * time.Minute)
		t.Logf("stop: %s (+ lower units)", d.Round(time.Millisecond))
		if out := e.must("sh", "-c", "ls /sys/bus/rbd/devices | wc -l"); out != "0" {
			t.Errorf("/sys/bus/rbd/devices not empty after stop")
		}
		if out := e.must("sh", "-c", "find /dev/rbd -mindepth 1 2>/dev/null || true"); out != "" {
			t.Errorf("/dev/rbd after stop:\n%s", out)
		}
	})

	t.Run("KernelMapOptions", e.kernelMapOptions)

	t.Run("SharedImageMapsOnce", func(t *testing.T) {
		e.t = t
		// options.keyring: a Ceph keyring file (0600) instead of the secret.
		kr := "/etc/ceph/ceph.client." + nodeUser + ".keyring"
		if err := e.vm.WriteFile(kr, []byte(readHost(t, e.cl.Keyring(nodeUser))), 0o600); err != nil {
			t.Fatal(err)
		}
		opts := map[string]any{"name": nodeUser, "ro": true, "keyring": kr}
		e.define(map[string]string{
			"a": seedDefinition("a", "image1", e.monitor, opts),
			"b": seedDefinition("b", "image1", e.monitor, opts),
		})
		e.startContainer("a")
		e.startContainer("b")
		if devs := e.rbdDevices(); len(devs) != 1 {
			t.Errorf("two containers on rbd/image1: rbd devices %v, want exactly one", devs)
		}
		e.checkMachineRunning("a")
		e.checkMachineRunning("b")
		e.must("systemctl", "stop", "systemd-nspawn@a.service")
		e.waitNoJobs() // StopWhenUnneeded queues its stops as jobs: none left, none to come
		if devs := e.rbdDevices(); len(devs) != 1 {
			t.Errorf("after stopping a, b still runs: rbd devices %v, want one", devs)
		}
		if st, _, _ := e.try(time.Minute, "systemctl", "is-active", "systemd-nspawn@b.service"); st != "active" {
			t.Errorf("b is %s after stopping a", st)
		}
		e.must("systemctl", "stop", "systemd-nspawn@b.service")
		e.waitReleased(2 * time.Minute)
	})

	t.Run("Snapshot", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{"snap": seedDefinitionSnap("snap", "image1", "v1", e.monitor, e.secretOptions(e.key))})
		e.startContainer("snap")
		devs := e.rbdDevices()
		if len(devs) != 1 || !strings.Contains(devs[0], "rbd/image1") {
			t.Errorf("rbd devices: %v", devs)
		}
		if snap := e.must("cat", "/sys/bus/rbd/devices/"+strings.Fields(devs[0])[0]+"/current_snap"); snap != "v1" {
			t.Errorf("current_snap = %q, want v1", snap)
		}
		e.must("test", "-b", "/dev/rbd/rbd/image1@v1")
		e.checkMachineRunning("snap")
		e.must("systemctl", "stop", "systemd-nspawn@snap.service")
		e.waitReleased(2 * time.Minute)
	})

	// An OCI image built into RBD boots (oci_test.go).
	t.Run("OCIBootsFromRBD", e.ociBootsFromRBD)

	// Day two (daytwo_test.go): roll-out and roll-back between snapshots,
	// and a definition removed while its container runs.
	t.Run("RollOutAndBack", func(t *testing.T) {
		e.t = t
		e.versionedImage("rollout", "v1", "v2")
		e.rollOutAndBack(t)
	})
	t.Run("RemoveWhileRunningThenStop", e.removeWhileRunningThenStop)

	// A failing start: bounded, the container not running, the reason in systemctl status.
	failing := func(t *testing.T, name, body string, bound time.Duration, reasons ...string) {
		e.t = t
		e.define(map[string]string{name: body})
		out, code, d := e.try(bound+time.Minute, "systemctl", "start", "systemd-nspawn@"+name+".service")
		t.Logf("systemctl start failed after %s (exit %d): %s", d.Round(time.Millisecond), code, out)
		if code == 0 {
			t.Fatalf("start of %s succeeded", name)
		}
		if d > bound {
			t.Errorf("the failure took %s, more than %s", d, bound)
		}
		// The reason is in the attach unit's status (the helper's message); the
		// container's own status says "Dependency failed".
		cst, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=20", "systemd-nspawn@"+name+".service")
		ast, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=20", "strata-attach@*")
		has := func(s string) bool {
			for _, r := range reasons {
				if strings.Contains(s, r) {
					return true
				}
			}
			return false
		}
		if !has(ast) {
			t.Errorf("systemctl status strata-attach@* names none of %q:\n%s", reasons, ast)
		}
		t.Logf("container status names the reason: %v; attach unit status:\n%s", has(cst), ast)
		if !strings.Contains(cst, "Dependency failed") && !has(cst) {
			t.Errorf("systemctl status systemd-nspawn@%s shows neither the reason nor the failed dependency:\n%s", name, cst)
		}
		if st, _, _ := e.try(time.Minute, "systemctl", "is-active", "systemd-nspawn@"+name+".service"); st == "active" {
			t.Errorf("the container is active")
		}
		e.waitReleased(2 * time.Minute)
		e.must("systemctl", "reset-failed")
	}

	t.Run("ImageMissing", func(t *testing.T) {
		failing(t, "missing", seedDefinition("missing", "nosuchimage", e.monitor, e.secretOptions(e.key)),
			2*time.Minute, "image rbd/nosuchimage does not exist")
	})

	t.Run("WrongKey", func(t *testing.T) {
		// A well-formed cephx key that is not client.strata-node's.
		wrong := "AQBZ0ktmAAAAABAA2bqZ0uJ6ETm2r3Cqsu9YzQ=="
		failing(t, "wrongkey", seedDefinition("wrongkey", "image1", e.monitor, e.secretOptions(wrong)),
			2*time.Minute, "cephx permission denied for client.strata-node")
	})

	t.Run("ClusterDown", func(t *testing.T) {
		e.t = t
		ctx := ctxFor(t, 2*time.Minute)
		if err := e.cl.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		// Two attempts of the kernel's mount_timeout (60 s by default) within
		// the helper's 130 s budget; the unit's bound is 3 min.
		failing(t, "down", seedDefinition("down", "image1", e.monitor, e.secretOptions(e.key)),
			3*time.Minute+30*time.Second, "no answer from the monitors 10.99.0.1:6789 within mount_timeout")
	})
	t.Logf("TestRBD body: %s", time.Since(t0).Round(time.Second))
}

// kernelMapOptions maps rbd/image1 through its attach unit alone (no
// container: a transient unit requires it) with each map option that depends on the kernel: on a kernel
// that has it, the device is mapped with it (config_info); on an older one
// the unit fails saying which option and which Linux added it.
func (e *rbdEnv) kernelMapOptions(t *testing.T) {
	e.t = t
	release := e.must("uname", "-r")
	for _, o := range []struct {
		key   string
		value any
		since string // the Linux that added it (helpers/krbd)
	}{
		{"read_from_replica", "balance", "5.8"},
		{"ms_mode", "prefer-crc", "5.11"},
		{"rxbounce", true, "5.17"},
	} {
		opts := e.secretOptions(e.key)
		opts[o.key] = o.value
		e.define(map[string]string{"opt": seedDefinition("opt", "image1", e.monitor, opts)})
		unit := strings.TrimSuffix(e.must("sh", "-c", "cd /run/systemd/generator && ls -d strata-attach@rbd_*.service.d"), ".d")
		// A unit that needs it holds it up (StopWhenUnneeded=yes).
		_, code, _ := e.try(3*time.Minute, "systemd-run", "--unit=strata-test-hold", "--property=Requires="+unit,
			"--property=After="+unit, "sleep", "infinity")
		option := o.key
		if v, ok := o.value.(string); ok {
			option += "=" + v
		}
		if kernelAtLeast(release, o.since) {
			if code != 0 {
				t.Errorf("%s on %s (Linux %s added it): the map failed:\n%s", option, release, o.since, e.journal(unit))
				continue
			}
			devs := e.rbdDevices()
			if len(devs) != 1 {
				t.Errorf("%s: rbd devices %v", option, devs)
			} else if ci := e.must("cat", "/sys/bus/rbd/devices/"+strings.Fields(devs[0])[0]+"/config_info"); !strings.Contains(ci, option) {
				t.Errorf("%s on %s: mapped without it: %s", option, release, ci)
			}
			t.Logf("%s: accepted by %s", option, release)
		} else {
			want := "does not know the map option " + o.key + ": Linux " + o.since + " added it"
			if j := e.journal(unit); code == 0 || !strings.Contains(j, want) {
				t.Errorf("%s on %s: exit %d, the journal does not say %q:\n%s", option, release, code, want, j)
			}
			t.Logf("%s: refused on %s", option, release)
		}
		e.try(time.Minute, "systemctl", "stop", "strata-test-hold.service")
		e.try(time.Minute, "systemctl", "reset-failed", "strata-test-hold.service")
		e.waitReleased(2 * time.Minute)
	}
}

// waitNoJobs waits (bounded) until systemd has no job queued or running:
// a stop that StopWhenUnneeded would add is queued when the job that made a
// unit unneeded finishes, so an empty queue means nothing more will happen.
func (e *rbdEnv) waitNoJobs() {
	e.t.Helper()
	var jobs string
	if harness.Poll(time.Minute, 100*time.Millisecond, func() bool {
		jobs = e.must("systemctl", "list-jobs", "--no-legend", "--plain")
		return jobs == ""
	}) != nil {
		e.t.Fatalf("systemd still has jobs after a minute:\n%s", jobs)
	}
}

// kernelAtLeast compares a kernel release ("6.1.0-57-amd64") with "M.N".
func kernelAtLeast(release, want string) bool {
	var rm, rn, wm, wn int
	fmt.Sscanf(release, "%d.%d", &rm, &rn)
	fmt.Sscanf(want, "%d.%d", &wm, &wn)
	return rm > wm || rm == wm && rn >= wn
}
