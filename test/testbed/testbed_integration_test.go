//go:build integration

package testbed

// Integration tests: they boot real containers. Run as root:
//
//	go test -tags integration -v ./test/testbed/
//
// Boot runs setup-host.sh and build-root.sh itself (idempotent). Anything that keeps
// the testbed from being built or booted FAILS the test with the reason; nothing here
// skips.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
)

func boot(t *testing.T, opts Options) *Testbed {
	t.Helper()
	tb, err := Boot(t, opts)
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	return tb
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// assertHostClean checks, independently of Close's own check, that nothing of tb is
// left. The host is shared (other tests attach loop devices and mount things meanwhile),
// so only what can be this testbed's counts: no mount with the harness's source names
// or tb's name or work directory, none of the loop devices the test saw attached by the
// container still bound to the same file, no cgroup named after tb, no process in such a
// cgroup, no work directory.
func assertHostClean(t *testing.T, tb *Testbed, loops ...loopFile) {
	t.Helper()
	for _, m := range readMounts() {
		if m.Source == "strata-testbed-run" || m.Source == "strata-testbed-root" ||
			strings.Contains(m.Line, tb.Name()) || strings.Contains(m.Line, tb.WorkDir()) {
			t.Errorf("mount left behind: %s", m.Line)
		}
	}
	for _, lf := range loops {
		if lf.stillAttached() {
			t.Errorf("host loop device /dev/loop%d still attached to the container's %s", lf.Index, lf.Backing)
		}
	}
	for _, m := range allCgroupMounts() {
		if _, err := os.Stat(filepath.Join(m, cgroupParent, tb.Name())); err == nil {
			t.Errorf("cgroup %s left behind", filepath.Join(m, cgroupParent, tb.Name()))
		}
	}
	if procs := procsInCgroupNamed(tb.Name()); len(procs) > 0 {
		t.Errorf("processes left behind: %v", procs)
	}
	if _, err := os.Stat(tb.WorkDir()); err == nil {
		t.Errorf("work directory %s left behind", tb.WorkDir())
	}
}

// TestTestbed boots the testbed and exercises everything the harness promises:
// systemd as PID 1 and running, commands with output/stdin/exit codes, D-Bus and
// machined from inside and from the host, loop devices, a unit's lifecycle, binds that
// survive a reboot, and a teardown that leaves nothing on the host.
func TestTestbed(t *testing.T) {
	persist := t.TempDir() // survives the reboot (bind-mounted)
	tools := t.TempDir()   // read-only bind, like test binaries
	if err := os.WriteFile(filepath.Join(tools, "hello.sh"), []byte("#!/bin/sh\necho hello from \"$(hostname)\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	var usedLoops []loopFile
	t0 := time.Now()
	tb := boot(t, Options{
		LoopDevices: 3,
		Binds: []Bind{
			{Host: persist, Guest: "/var/lib/strata-testbed/persist"},
			{Host: tools, Guest: "/opt/strata-test", ReadOnly: true},
		},
	})
	t.Logf("Boot() took %v (timing %+v)", time.Since(t0).Round(time.Millisecond), tb.Timing())
	ctx := ctxT(t)

	t.Run("systemd", func(t *testing.T) {
		if got := tb.MustRun(t, "systemctl", "is-system-running"); got != "running" {
			t.Fatalf("is-system-running = %q", got)
		}
		if got := tb.MustRun(t, "cat", "/proc/1/comm"); got != "systemd" {
			t.Fatalf("PID 1 is %q", got)
		}
		if got := tb.MustRun(t, "systemd-detect-virt", "--container"); got != "systemd-nspawn" {
			t.Fatalf("virtualization %q", got)
		}
		if got := tb.MustRun(t, "stat", "-fc", "%T", "/sys/fs/cgroup"); got != "cgroup2fs" {
			t.Fatalf("cgroup fs in the container: %q (want a pure cgroup2 tree)", got)
		}
		if got := tb.MustRun(t, "hostname"); got != "strata-testbed" {
			t.Fatalf("hostname %q", got)
		}
	})

	t.Run("offline", func(t *testing.T) {
		if got := tb.MustRun(t, "ls", "/sys/class/net"); got != "lo" {
			t.Fatalf("network interfaces in the testbed: %q (want only lo)", got)
		}
	})

	t.Run("exec", func(t *testing.T) {
		res, err := tb.Exec(ctx, Command{
			Args:  []string{"sh", "-c", `read x; echo "got $x in $(pwd)"; echo oops >&2; exit 3`},
			Stdin: strings.NewReader("input\n"),
			Dir:   "/etc",
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 3 || res.Stdout != "got input in /etc\n" || res.Stderr != "oops\n" {
			t.Fatalf("unexpected result: %s", res)
		}
		if got := tb.MustRun(t, "/opt/strata-test/hello.sh"); got != "hello from strata-testbed" {
			t.Fatalf("read-only bind: %q", got)
		}
		res, err = tb.Run(ctx, "touch", "/opt/strata-test/x")
		if err != nil || res.ExitCode == 0 {
			t.Fatalf("read-only bind is writable: %v %v", res, err)
		}
		// Host environment does not leak in.
		t.Setenv("STRATA_SHOULD_NOT_LEAK", "1")
		if out := tb.MustRun(t, "env"); strings.Contains(out, "STRATA_SHOULD_NOT_LEAK") {
			t.Fatal("host environment leaked into Exec")
		}
		// Cancellation kills the command.
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := tb.Run(cctx, "sleep", "100"); err == nil {
			t.Fatal("cancelled command returned no error")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("cancel took %v", d)
		}
		// Files from the host side.
		if err := tb.WriteFile("/etc/strata-note", []byte("note\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := tb.MustRun(t, "stat", "-c", "%a %s", "/etc/strata-note"); got != "644 5" {
			t.Fatalf("WriteFile: %q", got)
		}
		if b, err := tb.ReadFile("/etc/strata-note"); err != nil || string(b) != "note\n" {
			t.Fatalf("ReadFile: %q %v", b, err)
		}
		// Through an absolute symbolic link: resolved inside the container, never on the host.
		tb.MustRun(t, "ln", "-s", "/etc/strata-note", "/etc/strata-note-link")
		if err := tb.WriteFile("/etc/strata-note-link", []byte("via link\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := tb.MustRun(t, "cat", "/etc/strata-note"); got != "via link" {
			t.Fatalf("write through link: %q", got)
		}
		if _, err := os.Stat("/etc/strata-note"); err == nil {
			t.Fatal("WriteFile wrote to the host")
		}
	})

	t.Run("dbus", func(t *testing.T) {
		if got := tb.MustRun(t, "systemctl", "is-active", "dbus.service"); got != "active" {
			t.Fatalf("dbus %q", got)
		}
		// machined is bus-activated.
		out := tb.MustRun(t, "busctl", "call", "org.freedesktop.machine1", "/org/freedesktop/machine1",
			"org.freedesktop.machine1.Manager", "ListMachines")
		if !strings.Contains(out, `".host"`) {
			t.Fatalf("ListMachines inside: %q", out)
		}
		// It answered; its unit turns active once it told systemd it is ready.
		waitFor(t, 10*time.Second, func() bool {
			res, err := tb.Run(ctx, "systemctl", "is-active", "systemd-machined.service")
			return err == nil && strings.TrimSpace(res.Stdout) == "active"
		}, "systemd-machined.service active")
		if out := tb.MustRun(t, "machinectl", "list", "--no-legend"); out != "" {
			t.Logf("machinectl list: %q", out)
		}
		// From the host, through the container's socket: busctl --address ...
		addr := tb.SystemBusAddress()
		want := fmt.Sprintf("unix:path=/proc/%d/root/run/dbus/system_bus_socket", tb.Leader())
		if addr != want {
			t.Fatalf("SystemBusAddress %q, want %q", addr, want)
		}
		host, err := exec.CommandContext(ctx, "busctl", "--address="+addr, "get-property",
			"org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
			"SystemState").CombinedOutput()
		if err != nil || strings.TrimSpace(string(host)) != `s "running"` {
			t.Fatalf("host busctl --address: %q %v", host, err)
		}
		// ... and with DBUS_SYSTEM_BUS_ADDRESS.
		cmd := exec.CommandContext(ctx, "busctl", "--system", "call", "org.freedesktop.machine1",
			"/org/freedesktop/machine1", "org.freedesktop.machine1.Manager", "ListMachines")
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
		host, err = cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(host), `".host"`) {
			t.Fatalf("host busctl with DBUS_SYSTEM_BUS_ADDRESS: %q %v", host, err)
		}
	})

	t.Run("loop", func(t *testing.T) {
		var paths []string
		free := 0
		for _, d := range tb.LoopDevices() {
			paths = append(paths, d.Path)
			if _, bound := loopBacking(d.Index); !bound {
				free++
			}
		}
		if len(paths) < 3 {
			t.Fatalf("loop devices %v", paths)
		}
		t.Logf("bound %d loop nodes in, %d free now", len(paths), free)
		tb.MustRun(t, "mksquashfs", "/etc/systemd", "/tmp/etc.sqfs", "-quiet", "-no-progress", "-noappend", "-comp", "zstd")
		dev := tb.MustRun(t, "losetup", "-f", "--show", "-r", "/tmp/etc.sqfs")
		if !slices.Contains(paths, dev) {
			t.Fatalf("losetup -f gave %s, not one of the bound devices %v", dev, paths)
		}
		usedLoops = append(usedLoops, loopFileOf(t, dev))
		tb.MustRun(t, "mkdir", "-p", "/mnt/sq")
		tb.MustRun(t, "mount", "-t", "squashfs", "-o", "ro", dev, "/mnt/sq")
		if got := tb.MustRun(t, "cat", "/mnt/sq/system.conf"); !strings.Contains(got, "[Manager]") {
			t.Fatalf("squashfs content: %q", got)
		}
		tb.MustRun(t, "umount", "/mnt/sq")
		tb.MustRun(t, "losetup", "-d", dev)
		// mount -o loop (libmount's LOOP_CTL_GET_FREE path) with autoclear.
		tb.MustRun(t, "mount", "-t", "squashfs", "-o", "loop,ro", "/tmp/etc.sqfs", "/mnt/sq")
		src := tb.MustRun(t, "findmnt", "-no", "SOURCE", "/mnt/sq")
		if !slices.Contains(paths, src) {
			t.Fatalf("mount -o loop used %s, not one of %v", src, paths)
		}
		usedLoops = append(usedLoops, loopFileOf(t, src))
		tb.MustRun(t, "umount", "/mnt/sq")
		waitFor(t, 5*time.Second, func() bool { return tb.MustRun(t, "losetup", "-j", "/tmp/etc.sqfs") == "" }, "loop device released after umount")
	})

	t.Run("unit", func(t *testing.T) {
		unit := "[Unit]\nDescription=strata testbed demo\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
			"ExecStart=/bin/sh -c 'echo started > /run/strata-demo'\nExecStop=/bin/rm -f /run/strata-demo\n"
		if err := tb.WriteFile("/etc/systemd/system/strata-demo.service", []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		tb.MustRun(t, "systemctl", "daemon-reload")
		tb.MustRun(t, "systemctl", "start", "strata-demo.service")
		if got := tb.MustRun(t, "cat", "/run/strata-demo"); got != "started" {
			t.Fatalf("unit output %q", got)
		}
		tb.MustRun(t, "systemctl", "stop", "strata-demo.service")
		res, _ := tb.Run(ctx, "systemctl", "is-active", "strata-demo.service")
		if strings.TrimSpace(res.Stdout) != "inactive" {
			t.Fatalf("after stop: %q", res.Stdout)
		}
	})

	t.Run("reboot", func(t *testing.T) {
		tb.MustRun(t, "sh", "-c", "echo kept > /var/lib/strata-testbed/persist/marker; echo lost > /etc/strata-volatile")
		// A stray process left by a test: must die with the container / by cgroup.
		tb.MustRun(t, "sh", "-c", "setsid sleep 1000 </dev/null >/dev/null 2>&1 &")
		oldLeader, oldID := tb.Leader(), tb.MustRun(t, "cat", "/proc/sys/kernel/random/boot_id")
		t0 := time.Now()
		if err := tb.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("Reboot() took %v (timing %+v)", time.Since(t0).Round(time.Millisecond), tb.Timing())
		if tb.Leader() == oldLeader {
			t.Fatal("same leader after reboot")
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", oldLeader)); err == nil {
			t.Fatalf("old PID 1 (%d) still alive", oldLeader)
		}
		_ = oldID // the kernel's boot_id is the host's: not a reboot marker for containers
		if got := tb.MustRun(t, "systemctl", "is-system-running"); got != "running" {
			t.Fatalf("after reboot: %q", got)
		}
		if got := tb.MustRun(t, "cat", "/var/lib/strata-testbed/persist/marker"); got != "kept" {
			t.Fatalf("bind lost its content: %q", got)
		}
		if res, _ := tb.Run(ctx, "test", "-e", "/etc/strata-volatile"); res == nil || res.ExitCode == 0 {
			t.Fatal("/etc/strata-volatile survived a reboot of a volatile testbed")
		}
		if out := tb.MustRun(t, "sh", "-c", "pgrep -x sleep || true"); out != "" {
			t.Fatalf("stray process survived the reboot: %s", out)
		}
		if got := tb.MustRun(t, "cat", "/proc/1/comm"); got != "systemd" {
			t.Fatalf("PID 1 after reboot: %q", got)
		}
	})

	// Teardown, measured, then the test's own check of the host (on top of Close's).
	t0 = time.Now()
	if err := tb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close() took %v", time.Since(t0).Round(time.Millisecond))
	assertHostClean(t, tb, usedLoops...)
}

// TestPersistentReboot: with Options.Persistent, everything written to the root survives
// a reboot, e.g. a unit enabled by a test (or a generator's configuration), which then
// runs at the next boot.
func TestPersistentReboot(t *testing.T) {
	tb := boot(t, Options{Persistent: true})
	ctx := ctxT(t)
	unit := "[Unit]\nDescription=strata boot counter\n[Service]\nType=oneshot\n" +
		"ExecStart=/bin/sh -c 'echo boot >> /var/lib/strata-boots'\n[Install]\nWantedBy=multi-user.target\n"
	if err := tb.WriteFile("/etc/systemd/system/strata-boots.service", []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	tb.MustRun(t, "systemctl", "daemon-reload")
	tb.MustRun(t, "systemctl", "enable", "strata-boots.service")
	for i := 1; i <= 2; i++ {
		if err := tb.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		got := tb.MustRun(t, "sh", "-c", "wc -l < /var/lib/strata-boots")
		if got != strconv.Itoa(i) {
			t.Fatalf("after reboot %d the enabled unit ran %s times", i, got)
		}
	}
	if _, err := os.Stat(filepath.Join(tb.WorkDir(), "state/upper/etc/systemd/system/strata-boots.service")); err != nil {
		t.Fatalf("the overlay upper on the host lacks the unit: %v", err)
	}
	// The debootstrap root itself is never written.
	if _, err := os.Stat(filepath.Join(tb.Root(), "etc/systemd/system/strata-boots.service")); err == nil {
		t.Fatal("the root was modified")
	}
	if err := tb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	assertHostClean(t, tb)
}

// recordingTB captures the errors a testbed reports at teardown, so a test can check
// that the harness detects (and repairs) a leak, without failing itself.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.TB.Logf("(recorded error) "+format, args...)
}

func (r *recordingTB) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recordingTB) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// TestLeakDetection attaches loop devices inside the container and never detaches
// them: Close must report and detach the container's own (a file on its private file
// systems, and a file on a bind that only it sees), and must leave alone one on a file
// that the host sees at the same path (it could be the host's), so that the host is
// clean afterwards and nothing of anyone else is touched.
func TestLeakDetection(t *testing.T) {
	dir := t.TempDir()
	bound := filepath.Join(dir, "bound.img")
	shared := filepath.Join(dir, "shared.img")
	for _, f := range []string{bound, shared} {
		if err := os.WriteFile(f, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recordingTB{TB: t}
	tb, err := Boot(rec, Options{
		LoopDevices: 3,
		Binds:       []Bind{{Host: bound, Guest: "/srv/bound.img"}, {Host: shared, Guest: shared}},
	})
	defer func() {
		for _, f := range rec.cleanups {
			f()
		}
	}()
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	tb.MustRun(t, "truncate", "-s", "8M", "/var/tmp/leak.img")
	private := loopFileOf(t, tb.MustRun(t, "losetup", "-f", "--show", "/var/tmp/leak.img"))
	onBind := loopFileOf(t, tb.MustRun(t, "losetup", "-f", "--show", "/srv/bound.img"))
	ambiguous := loopFileOf(t, tb.MustRun(t, "losetup", "-f", "--show", shared))
	defer func() {
		if ambiguous.stillAttached() {
			_ = detachLoop(ambiguous.Index)
		}
	}()
	if err := tb.Close(); err == nil {
		t.Fatal("Close reported nothing although loop devices were left attached")
	}
	for _, lf := range []loopFile{private, onBind} {
		found := false
		for _, e := range rec.errs {
			if strings.Contains(e, fmt.Sprintf("/dev/loop%d was left attached", lf.Index)) && strings.Contains(e, "detached it") {
				found = true
			}
		}
		if !found {
			t.Errorf("the leaked /dev/loop%d (%s) was not reported; got %q", lf.Index, lf.Backing, rec.errs)
		}
	}
	if len(rec.errs) != 2 {
		t.Errorf("want exactly 2 teardown errors, got %q", rec.errs)
	}
	if !ambiguous.stillAttached() {
		t.Errorf("/dev/loop%d on %s (seen by the host too) was detached: it might have been the host's", ambiguous.Index, shared)
	}
	_ = detachLoop(ambiguous.Index)
	assertHostClean(t, tb, private, onBind)
}

// TestBootFailureIsReported: a root that cannot boot, or an nspawn that fails, makes
// Boot fail with the reason (and the console log), and cleans up.
func TestBootFailureIsReported(t *testing.T) {
	_, err := Boot(t, Options{Root: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "build-root.sh") {
		t.Fatalf("want an error pointing at build-root.sh, got %v", err)
	}
	rec := &recordingTB{TB: t}
	_, err = Boot(rec, Options{ExtraArgs: []string{"--no-such-option"}})
	if err == nil {
		t.Fatal("Boot succeeded with a bad nspawn option")
	}
	if !strings.Contains(err.Error(), "systemd-nspawn exited") || !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("the error does not tell why: %v", err)
	}
	t.Logf("Boot error (as expected):\n%v", err)
	for _, f := range rec.cleanups {
		f()
	}
	if len(rec.errs) > 0 {
		t.Fatalf("teardown after a failed boot reported: %q", rec.errs)
	}
	if _, err := Boot(t, Options{ExtraArgs: []string{"--network-veth"}}); err == nil || !strings.Contains(err.Error(), "network") {
		t.Fatalf("a network option must be refused, got %v", err)
	}
	if _, err := Boot(t, Options{Binds: []Bind{{Host: filepath.Dir(DefaultRootDir()), Guest: "/x"}}}); err == nil || !strings.Contains(err.Error(), "must not contain the root") {
		t.Fatalf("a bind containing the root must be refused, got %v", err)
	}
}

// TestSquashfs builds the squashfs image of the root that tests boot as a nested
// container, and checks it is a squashfs.
func TestSquashfs(t *testing.T) {
	ctx := ctxT(t)
	root := DefaultRootDir()
	out := root + ".sqfs"
	t0 := time.Now()
	if err := EnsureSquashfs(ctx, root, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("EnsureSquashfs took %v", time.Since(t0).Round(time.Millisecond))
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.Read(magic); err != nil || string(magic) != "hsqs" {
		t.Fatalf("%s is not a squashfs (magic %q, %v)", out, magic, err)
	}
}

// loopFileOf identifies what /dev/loopN is attached to now (from the host).
func loopFileOf(t *testing.T, dev string) loopFile {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(dev, "/dev/loop"))
	if err != nil {
		t.Fatalf("not a loop device: %q", dev)
	}
	info, err := loopStatus(n)
	if err != nil {
		t.Fatalf("LOOP_GET_STATUS64 %s: %v", dev, err)
	}
	b, _ := loopBacking(n)
	return loopFile{Index: n, Dev: info.Device, Ino: info.Inode, Flags: info.Flags, Backing: b}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if harness.Poll(timeout, 50*time.Millisecond, cond) != nil {
		t.Fatalf("timed out waiting for: %s", what)
	}
}

// TestNestedContainer is the shape Strata's tests use (testbed reference, section 3): the
// squashfs of the root is bound in read-only, loop-mounted with a tmpfs overlay inside
// the testbed, and booted as a nested systemd-nspawn container under the testbed's
// systemd; machined inside the testbed sees it; stopping it releases everything.
func TestNestedContainer(t *testing.T) {
	ctx := ctxT(t)
	root := DefaultRootDir()
	img := root + ".sqfs"
	if err := EnsureSquashfs(ctx, root, img); err != nil {
		t.Fatal(err)
	}
	guestImg := "/srv/images/base.sqfs"
	tb := boot(t, Options{
		LoopDevices: 2,
		Binds:       []Bind{{Host: img, Guest: guestImg, ReadOnly: true}},
	})
	tb.MustRun(t, "sh", "-ec", `
		mkdir -p /run/nested/lower /run/nested/rw
		mount -t squashfs -o loop,ro "$0" /run/nested/lower
		mount -t tmpfs tmpfs /run/nested/rw
		mkdir -p /run/nested/rw/upper /run/nested/rw/work /run/nested/merged
		mount -t overlay overlay -o lowerdir=/run/nested/lower,upperdir=/run/nested/rw/upper,workdir=/run/nested/rw/work /run/nested/merged
	`, guestImg)
	// The image file is shared (other testbeds may attach it too): follow this loop device.
	lf := loopFileOf(t, tb.MustRun(t, "findmnt", "-no", "SOURCE", "/run/nested/lower"))
	t0 := time.Now()
	tb.MustRun(t, "systemd-run", "--unit=nested", "--property=Type=notify", "--property=KillMode=mixed",
		"--property=Delegate=yes", "--property=Slice=machine.slice",
		"systemd-nspawn", "--keep-unit", "--boot", "--notify-ready=yes", "-M", "nested", "-D", "/run/nested/merged")
	t.Logf("nested container started in %v", time.Since(t0).Round(time.Millisecond))
	if out := tb.MustRun(t, "machinectl", "list", "--no-legend"); !strings.Contains(out, "nested") {
		t.Fatalf("machinectl list: %q", out)
	}
	if got := tb.MustRun(t, "systemctl", "-M", "nested", "is-system-running", "--wait"); got != "running" {
		t.Fatalf("nested system state %q", got)
	}
	t0 = time.Now()
	tb.MustRun(t, "systemctl", "stop", "nested.service")
	t.Logf("nested container stopped in %v", time.Since(t0).Round(time.Millisecond))
	tb.MustRun(t, "sh", "-ec", "umount /run/nested/merged /run/nested/rw /run/nested/lower")
	waitFor(t, 5*time.Second, func() bool { return !lf.stillAttached() }, "loop device released after umount")
	if err := tb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
