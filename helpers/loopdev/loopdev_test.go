//go:build linux

package loopdev

// These tests use real loop devices and real mounts, so they need root and
// skip without it. Other processes on the machine use loop devices too, so
// the tests never assume device numbers, only ever detach devices they
// attached themselves (Device.Detach checks that the device is still bound
// to the test's file), and register every clean-up with t.Cleanup so that
// a failing test leaves nothing attached or mounted.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: attaches real loop devices")
	}
	if _, err := os.Stat(controlPath()); err != nil {
		t.Skipf("no loop support: %v", err)
	}
}

var refSeq atomic.Int64

// testRef makes a ref no other process uses, so FindRef finds only ours.
func testRef(t testing.TB) string {
	return fmt.Sprintf("strata-test-%d-%d", os.Getpid(), refSeq.Add(1))
}

// tempFile makes a zero-filled file to attach, with its symlinks resolved
// so that it compares equal to the kernel's backing_file.
func tempFile(t testing.TB, size int64) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return path
}

const squashContent = "hello from a read-only squashfs\n"

// squashfsImage builds a squashfs image holding hello.txt.
func squashfsImage(t testing.TB) string {
	t.Helper()
	mksquashfs, err := exec.LookPath("mksquashfs")
	if err != nil {
		t.Skip("mksquashfs not found: apt-get install squashfs-tools")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte(squashContent), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "image.squashfs")
	out, err := exec.Command(mksquashfs, src, img, "-noappend", "-no-progress", "-quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

// cleanupDetach makes sure d is detached when the test ends, whatever
// happened. Device.Detach leaves alone a device that is no longer ours.
func cleanupDetach(t testing.TB, d *Device) {
	t.Cleanup(func() {
		if err := d.Detach(); err != nil {
			t.Errorf("clean-up: %v", err)
		}
	})
}

func attach(t testing.TB, file string, opts Options) *Device {
	t.Helper()
	d, err := Attach(file, opts)
	if err != nil {
		t.Fatal(err)
	}
	cleanupDetach(t, d)
	return d
}

func attachOrReuse(t testing.TB, file string, opts Options) *Device {
	t.Helper()
	d, err := AttachOrReuse(file, opts)
	if err != nil {
		t.Fatal(err)
	}
	cleanupDetach(t, d)
	return d
}

// mountRO mounts a squashfs device read-only on a fresh directory whose
// name has a space, to check that mountinfo's escaping is undone. The
// returned function unmounts it; a clean-up does so too if the test did
// not.
func mountRO(t testing.TB, dev string) (dir string, unmount func() error) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(base, "mount point")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, dir, "squashfs", unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
	mounted := true
	unmount = func() error {
		if !mounted {
			return nil
		}
		if err := unix.Unmount(dir, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
		mounted = false
		return nil
	}
	t.Cleanup(func() {
		// EINVAL: no longer a mount point, the test unmounted it itself.
		if err := unmount(); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("clean-up: %v", err)
			unix.Unmount(dir, unix.MNT_DETACH) // at least do not leave it behind
		}
	})
	return dir, unmount
}

// attachedInSysfs counts the loop devices whose sysfs backing_file is file:
// a count independent of the package's own Find.
func attachedInSysfs(t testing.TB, file string) int {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(sysDir, "block", "loop*", "loop", "backing_file"))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.TrimSpace(string(b)) == file {
			count++
		}
	}
	return count
}

func paths(ds []*Device) []string {
	var ps []string
	for _, d := range ds {
		ps = append(ps, d.Path)
	}
	return ps
}

func sysfsAttr(t testing.TB, d *Device, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sysBlock(d.Number), name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitFor polls cond for up to five seconds.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestReadOnlySquashfs(t *testing.T) {
	requireRoot(t)
	img := squashfsImage(t)
	ref := testRef(t)
	d := attach(t, img, Options{ReadOnly: true, Ref: ref})

	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if !d.ReadOnly || d.Autoclear || d.Ref != ref || d.BackingFile != img ||
		d.BackingDev != st.Dev || d.BackingInode != st.Ino || d.Path != loopPath(d.Number) || d.Reused {
		t.Fatalf("device %+v does not describe a read-only attachment of %s with ref %q", d, img, ref)
	}
	if got := sysfsAttr(t, d, "ro"); got != "1" {
		t.Errorf("sysfs ro = %s, want 1", got)
	}
	if got := fmt.Sprintf("%d:%d", d.Major, d.Minor); got != sysfsAttr(t, d, "dev") {
		t.Errorf("device number %s, sysfs says %s", got, sysfsAttr(t, d, "dev"))
	}

	// The block device itself is read-only: BLKROGET says so and the
	// kernel refuses a write to it, even through a descriptor opened for
	// writing.
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := unix.IoctlGetInt(fd, unix.BLKROGET)
	unix.Close(fd)
	if err != nil || ro != 1 {
		t.Errorf("BLKROGET = %d, %v; want 1", ro, err)
	}
	refused := func(err error) bool {
		return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES)
	}
	if fd, err := unix.Open(d.Path, unix.O_WRONLY|unix.O_CLOEXEC, 0); err != nil {
		if !refused(err) {
			t.Errorf("open %s for writing: %v, want EPERM, EROFS or EACCES", d.Path, err)
		}
	} else {
		_, err := unix.Pwrite(fd, make([]byte, 4096), 0)
		unix.Close(fd)
		if !refused(err) {
			t.Errorf("write to read-only %s: %v, want EPERM or EROFS", d.Path, err)
		}
		t.Logf("write to %s: %v", d.Path, err)
	}

	// Both ways of finding the attachment see it, and only it.
	if found, err := FindRef(ref); err != nil || !slices.Equal(paths(found), []string{d.Path}) {
		t.Errorf("FindRef(%q) = %v, %v; want [%s]", ref, paths(found), err, d.Path)
	}
	if found, err := Find(img); err != nil || !slices.Equal(paths(found), []string{d.Path}) {
		t.Errorf("Find(%s) = %v, %v; want [%s]", img, paths(found), err, d.Path)
	}

	dir, unmount := mountRO(t, d.Path)
	got, err := os.ReadFile(filepath.Join(dir, "hello.txt"))
	if err != nil || string(got) != squashContent {
		t.Errorf("read back %q, %v; want %q", got, err, squashContent)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into the mount: %v, want EROFS", err)
	}
	if err := unmount(); err != nil {
		t.Fatal(err)
	}

	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if n := attachedInSysfs(t, img); n != 0 {
		t.Errorf("%d devices still attached to %s after Detach", n, img)
	}
	if found, err := FindRef(ref); err != nil || len(found) != 0 {
		t.Errorf("FindRef after Detach = %v, %v; want none", paths(found), err)
	}
}

func TestAttachOrReuse(t *testing.T) {
	requireRoot(t)
	file := tempFile(t, 1<<20)
	ref := testRef(t)
	opts := Options{ReadOnly: true, Ref: ref}

	first := attachOrReuse(t, file, opts)
	if first.Reused {
		t.Fatal("first AttachOrReuse claims to reuse")
	}
	again := attachOrReuse(t, file, opts)
	if again.Path != first.Path || !again.Reused {
		t.Fatalf("second AttachOrReuse gave %s (reused %v), want %s reused", again.Path, again.Reused, first.Path)
	}

	// The file is recognised by identity, not by the path it is named by.
	dir := filepath.Dir(file)
	symlink, hardlink := filepath.Join(dir, "symlink"), filepath.Join(dir, "hardlink")
	if err := os.Symlink(file, symlink); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, hardlink); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{symlink, hardlink} {
		if d := attachOrReuse(t, name, opts); d.Path != first.Path || !d.Reused {
			t.Errorf("AttachOrReuse(%s) gave %s (reused %v), want %s", name, d.Path, d.Reused, first.Path)
		}
	}

	// Incompatible attachments are not reused.
	for _, other := range []Options{
		{ReadOnly: false, Ref: ref},           // read-write wanted
		{ReadOnly: true, Ref: ref + "-other"}, // someone else's
		{ReadOnly: true, Ref: ref, Partscan: true},
	} {
		if d := attachOrReuse(t, file, other); d.Path == first.Path || d.Reused {
			t.Errorf("AttachOrReuse(%+v) reused %s, attached %+v", other, d.Path, first)
		}
	}
	if n := attachedInSysfs(t, file); n != 4 {
		t.Errorf("%d devices attached to %s, want 4", n, file)
	}
	found, err := Find(file)
	if err != nil || len(found) != 4 {
		t.Errorf("Find = %v, %v; want 4 devices", paths(found), err)
	}
	if found, err := Find(symlink); err != nil || len(found) != 4 {
		t.Errorf("Find through a symlink = %v, %v; want 4 devices", paths(found), err)
	}
}

func TestAttachOrReuseConcurrent(t *testing.T) {
	requireRoot(t)
	// Started together, as units at boot are, callers must agree on one
	// device rather than each attach the file. A barrier lines the
	// goroutines up so that their scans overlap; several rounds make an
	// unlocked implementation fail reliably.
	const n, rounds = 8, 10
	for round := range rounds {
		file := tempFile(t, 1<<20)
		opts := Options{ReadOnly: true, Ref: testRef(t)}
		var wg, ready sync.WaitGroup
		start := make(chan struct{})
		devs := make([]*Device, n)
		errs := make([]error, n)
		ready.Add(n)
		for i := range n {
			wg.Go(func() {
				ready.Done()
				<-start
				devs[i], errs[i] = AttachOrReuse(file, opts)
			})
		}
		ready.Wait()
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			cleanupDetach(t, devs[i])
		}
		reused := 0
		for _, d := range devs {
			if d.Reused {
				reused++
			}
		}
		if got := attachedInSysfs(t, file); got != 1 || reused != n-1 {
			t.Fatalf("round %d: %d devices attached and %d of %d calls reused; want 1 and %d", round, got, reused, n, n-1)
		}
	}
}

// helperEnv makes the test binary act as a separate helper process that
// calls AttachOrReuse once and prints the device; see
// TestAttachOrReuseProcesses.
const helperEnv = "LOOPDEV_TEST_HELPER_FILE"

func TestMain(m *testing.M) {
	if file := os.Getenv(helperEnv); file != "" {
		io.Copy(io.Discard, os.Stdin) // the parent's start signal: EOF
		d, err := AttachOrReuse(file, Options{ReadOnly: true, Ref: os.Getenv(helperEnv + "_REF")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(d.Path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The boot-time case for real: separate processes, serialised only by the
// lock on /dev/loop-control, all get the one device.
func TestAttachOrReuseProcesses(t *testing.T) {
	requireRoot(t)
	file := tempFile(t, 1<<20)
	ref := testRef(t)
	// The children leave their attachment behind, as a helper does; the
	// file is this test's own, so every device on it is ours to detach.
	t.Cleanup(func() {
		found, err := Find(file)
		if err != nil {
			t.Errorf("clean-up: %v", err)
		}
		for _, d := range found {
			if err := d.Detach(); err != nil {
				t.Errorf("clean-up: %v", err)
			}
		}
	})

	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	var starts []io.Closer
	for i := range n {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^$")
		cmds[i].Env = append(os.Environ(), helperEnv+"="+file, helperEnv+"_REF="+ref)
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		stdin, err := cmds[i].StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, stdin)
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	// Let them all go at once, so that their scans overlap.
	for _, s := range starts {
		s.Close()
	}
	var got []string
	for i := range n {
		if err := cmds[i].Wait(); err != nil {
			t.Errorf("helper %d: %v: %s", i, err, outs[i])
		}
		got = append(got, strings.TrimSpace(outs[i].String()))
	}
	if distinct := slices.Compact(slices.Sorted(slices.Values(got))); len(distinct) != 1 {
		t.Errorf("helpers got %v, want one device", got)
	}
	if c := attachedInSysfs(t, file); c != 1 {
		t.Errorf("%d devices attached, want 1", c)
	}
}

// Concurrent Attach calls are all handed the same free device by the
// kernel and lose the race to bind it: they must each end up with a device
// of their own.
func TestAttachConcurrent(t *testing.T) {
	requireRoot(t)
	file := tempFile(t, 1<<20)
	const n = 8
	var wg sync.WaitGroup
	devs := make([]*Device, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { devs[i], errs[i] = Attach(file, Options{ReadOnly: true}) })
	}
	lost := lostRaces.Load()
	wg.Wait()
	t.Logf("binds lost to a concurrent attach and retried: %d", lostRaces.Load()-lost)
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Error(errs[i])
			continue
		}
		cleanupDetach(t, devs[i])
		if seen[devs[i].Path] {
			t.Errorf("%s handed out twice", devs[i].Path)
		}
		seen[devs[i].Path] = true
	}
	if got := attachedInSysfs(t, file); got != len(seen) {
		t.Errorf("%d devices attached, want %d", got, len(seen))
	}
}

func TestAttachDetachCycles(t *testing.T) {
	requireRoot(t)
	file := tempFile(t, 1<<20)
	before := attachedInSysfs(t, file)

	var current *Device // detached by the clean-up if a cycle fails
	t.Cleanup(func() {
		if current != nil {
			if err := current.Detach(); err != nil {
				t.Errorf("clean-up: %v", err)
			}
		}
	})
	const cycles = 100
	start := time.Now()
	for i := range cycles {
		d, err := Attach(file, Options{ReadOnly: i%2 == 0, Ref: testRef(t)})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		current = d
		if n := attachedInSysfs(t, file); n != before+1 {
			t.Fatalf("cycle %d: %d devices attached, want %d", i, n, before+1)
		}
		// Both forms of Detach: by Device, and by path as a helper run
		// that only knows the path does.
		if i%2 == 0 {
			err = d.Detach()
		} else {
			err = Detach(d.Path)
		}
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		current = nil
	}
	t.Logf("%d cycles in %v", cycles, time.Since(start))
	if after := attachedInSysfs(t, file); after != before {
		t.Errorf("%d devices attached to %s after %d cycles, %d before", after, file, cycles, before)
	}
	if found, err := Find(file); err != nil || len(found) != 0 {
		t.Errorf("Find after cycles = %v, %v; want none", paths(found), err)
	}
}

func TestAutoclear(t *testing.T) {
	requireRoot(t)

	t.Run("released at unmount", func(t *testing.T) {
		img := squashfsImage(t)
		d := attach(t, img, Options{ReadOnly: true, Autoclear: true, Ref: testRef(t)})
		if !d.Autoclear || sysfsAttr(t, d, "loop/autoclear") != "1" {
			t.Fatalf("autoclear not set: %+v", d)
		}
		_, unmount := mountRO(t, d.Path)
		// The mount now keeps the device; our hold is no longer needed.
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if n := attachedInSysfs(t, img); n != 1 {
			t.Fatalf("%d devices attached while mounted, want 1", n)
		}
		// Detach refuses while mounted, changing nothing...
		var be *BusyError
		if err := Detach(d.Path); !errors.As(err, &be) || be.Deferred {
			t.Fatalf("Detach while mounted: %v, want a *BusyError, not deferred", err)
		}
		// ...and unmounting releases the device by itself.
		if err := unmount(); err != nil {
			t.Fatal(err)
		}
		if !waitFor(func() bool { return attachedInSysfs(t, img) == 0 }) {
			t.Fatal("device still attached after unmount")
		}
		if found, err := Find(img); err != nil || len(found) != 0 {
			t.Errorf("Find after unmount = %v, %v; want none", paths(found), err)
		}
	})

	t.Run("released at Close when unused", func(t *testing.T) {
		file := tempFile(t, 1<<20)
		d := attach(t, file, Options{Autoclear: true})
		// Attach's hold keeps it attached until Close...
		if n := attachedInSysfs(t, file); n != 1 {
			t.Fatalf("%d devices attached before Close, want 1", n)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		// ...after which nothing holds it.
		if !waitFor(func() bool { return attachedInSysfs(t, file) == 0 }) {
			t.Fatal("device still attached after Close")
		}
	})

	t.Run("reused autoclear device is held", func(t *testing.T) {
		file := tempFile(t, 1<<20)
		opts := Options{Autoclear: true, Ref: testRef(t)}
		first := attachOrReuse(t, file, opts)
		second := attachOrReuse(t, file, opts)
		if !second.Reused || second.Path != first.Path {
			t.Fatalf("not reused: %s, %s", first.Path, second.Path)
		}
		first.Close()
		if n := attachedInSysfs(t, file); n != 1 {
			t.Fatalf("released while the reuser holds it (%d attached)", n)
		}
		second.Close()
		if !waitFor(func() bool { return attachedInSysfs(t, file) == 0 }) {
			t.Fatal("device still attached after both closed")
		}
	})
}

func TestDetachBusy(t *testing.T) {
	requireRoot(t)
	img := squashfsImage(t)
	d := attach(t, img, Options{ReadOnly: true, Ref: testRef(t)})
	dir, unmount := mountRO(t, d.Path)

	start := time.Now()
	err := Detach(d.Path)
	t.Logf("Detach of a mounted device, after %v: %v", time.Since(start).Round(time.Millisecond), err)
	var be *BusyError
	if !errors.Is(err, unix.EBUSY) || !errors.As(err, &be) {
		t.Fatalf("Detach of a mounted device: %v, want EBUSY", err)
	}
	if be.Deferred || !slices.Contains(be.Mounts, dir) || be.Device != d.Path {
		t.Errorf("BusyError %+v, want not deferred, device %s, mount %s", be, d.Path, dir)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, d.Path) || !strings.Contains(msg, "in use") {
		t.Errorf("message %q does not say that %s is in use on %s", msg, d.Path, dir)
	}
	// The refusal changed nothing: still attached, not marked for
	// autoclear, still readable.
	if n := attachedInSysfs(t, img); n != 1 {
		t.Errorf("%d attached after refused Detach, want 1", n)
	}
	if got := sysfsAttr(t, d, "loop/autoclear"); got != "0" {
		t.Errorf("refused Detach armed autoclear (%s)", got)
	}
	if _, err := os.ReadFile(filepath.Join(dir, "hello.txt")); err != nil {
		t.Errorf("mount broken by refused Detach: %v", err)
	}
	if err := d.Detach(); !errors.Is(err, unix.EBUSY) {
		t.Errorf("Device.Detach of a mounted device: %v, want EBUSY", err)
	}

	if err := unmount(); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if n := attachedInSysfs(t, img); n != 0 {
		t.Errorf("%d attached after Detach, want 0", n)
	}
}

// DetachLazy is losetup -d: accepted while mounted, done at unmount.
func TestDetachLazy(t *testing.T) {
	requireRoot(t)
	img := squashfsImage(t)
	d := attach(t, img, Options{ReadOnly: true, Ref: testRef(t)})
	dir, unmount := mountRO(t, d.Path)

	if err := DetachLazy(d.Path); err != nil {
		t.Fatal(err)
	}
	// Still attached and usable while mounted, now marked for autoclear.
	if n := attachedInSysfs(t, img); n != 1 {
		t.Fatalf("%d attached while mounted, want 1", n)
	}
	if got := sysfsAttr(t, d, "loop/autoclear"); got != "1" {
		t.Errorf("autoclear = %s after DetachLazy, want 1", got)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "hello.txt")); err != nil || string(got) != squashContent {
		t.Errorf("mount broken by DetachLazy: %q, %v", got, err)
	}
	if err := unmount(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { return attachedInSysfs(t, img) == 0 }) {
		t.Fatal("device still attached after unmount")
	}
}

// After a lazy unmount (umount -l) with a file still open, the filesystem
// keeps the device claimed but no longer shows in mountinfo: Detach must
// still refuse, say it found no mount, and DetachLazy must then let the
// device go once the filesystem is finally released.
func TestDetachAfterLazyUnmount(t *testing.T) {
	requireRoot(t)
	defer func(old time.Duration) { busyWait = old }(busyWait)
	busyWait = 100 * time.Millisecond

	img := squashfsImage(t)
	d := attach(t, img, Options{ReadOnly: true, Ref: testRef(t)})
	dir, _ := mountRO(t, d.Path)
	open, err := os.Open(filepath.Join(dir, "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}

	err = Detach(d.Path)
	var be *BusyError
	if !errors.As(err, &be) || be.Deferred || len(be.Mounts) != 0 || !strings.Contains(err.Error(), "no mount") {
		t.Fatalf("Detach after lazy unmount: %v, want a *BusyError finding no mount", err)
	}
	t.Log(err)
	if err := DetachLazy(d.Path); err != nil {
		t.Fatal(err)
	}
	if n := attachedInSysfs(t, img); n != 1 {
		t.Fatalf("%d attached while the filesystem lives on, want 1", n)
	}
	open.Close() // the filesystem goes, and with it the device
	if !waitFor(func() bool { return attachedInSysfs(t, img) == 0 }) {
		t.Fatal("device still attached after the lazily unmounted filesystem was released")
	}
}

// A process that merely has the device open (udev's blkid, say) does not
// block the detach; the kernel finishes it when that process closes.
func TestDetachDeferred(t *testing.T) {
	requireRoot(t)
	defer func(old time.Duration) { releaseWait = old }(releaseWait)
	releaseWait = 200 * time.Millisecond

	file := tempFile(t, 1<<20)
	d := attach(t, file, Options{ReadOnly: true, Ref: testRef(t)})
	opener, err := os.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opener.Close() })

	err = Detach(d.Path)
	var be *BusyError
	if !errors.As(err, &be) || !be.Deferred || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Detach with another opener: %v, want a deferred *BusyError", err)
	}
	t.Log(err)
	if n := attachedInSysfs(t, file); n != 1 {
		t.Fatalf("%d attached while still open, want 1", n)
	}
	opener.Close()
	if !waitFor(func() bool { return attachedInSysfs(t, file) == 0 }) {
		t.Fatal("device still attached after its last opener closed")
	}
}

// The LOOP_SET_FD + LOOP_SET_STATUS64 path that kernels before 5.8 take,
// exercised on this kernel by skipping LOOP_CONFIGURE.
func TestLegacyAttach(t *testing.T) {
	requireRoot(t)
	legacyOnly.Store(true)
	defer legacyOnly.Store(false)

	file := tempFile(t, 1<<20)
	for _, opts := range []Options{
		{ReadOnly: true, Partscan: true, Ref: testRef(t)},
		{ReadOnly: false, Autoclear: true, Ref: testRef(t)},
		{ReadOnly: true, DirectIO: true},
	} {
		d := attach(t, file, opts)
		if d.ReadOnly != opts.ReadOnly || d.Partscan != opts.Partscan || d.Autoclear != opts.Autoclear || d.Ref != opts.Ref {
			t.Errorf("legacy attach with %+v gave %+v", opts, d)
		}
		if want := map[bool]string{true: "1", false: "0"}[opts.ReadOnly]; sysfsAttr(t, d, "ro") != want {
			t.Errorf("legacy attach with %+v: sysfs ro = %s", opts, sysfsAttr(t, d, "ro"))
		}
		if opts.DirectIO {
			t.Logf("legacy direct I/O granted: %v (sysfs dio %s)", d.DirectIO, sysfsAttr(t, d, "loop/dio"))
		}
	}
	if n := attachedInSysfs(t, file); n != 3 {
		t.Errorf("%d attached, want 3", n)
	}
}

func TestReadWriteAndDirectIO(t *testing.T) {
	requireRoot(t)
	file := tempFile(t, 1<<20)
	d := attach(t, file, Options{DirectIO: true})
	if d.ReadOnly || sysfsAttr(t, d, "ro") != "0" {
		t.Fatalf("read-write attach is read-only: %+v", d)
	}
	if got := map[bool]string{true: "1", false: "0"}[d.DirectIO]; got != sysfsAttr(t, d, "loop/dio") {
		t.Errorf("Device.DirectIO %v but sysfs dio %s", d.DirectIO, sysfsAttr(t, d, "loop/dio"))
	}
	t.Logf("direct I/O granted: %v", d.DirectIO)

	// Writes go through to the file.
	f, err := os.OpenFile(d.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("strata!\n"), 512)
	if _, err := f.WriteAt(block, 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got[4096:4096+len(block)], block) {
		t.Errorf("write through %s did not reach %s (%v)", d.Path, file, err)
	}
}

func TestErrors(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.img")
	_, err := Attach(missing, Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Attach of a missing file: %v", err)
	}
	if _, err := Attach(dir, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Attach of a directory: %v", err)
	}
	long := strings.Repeat("r", maxRef+1)
	if _, err := Attach(tempFile(t, 4096), Options{Ref: long}); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("Attach with a %d-byte ref: %v", len(long), err)
	}
	if _, err := FindRef(""); err == nil {
		t.Error("FindRef of the empty ref succeeded")
	}
	if _, err := Find(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Find of a missing file: %v", err)
	}
	notLoop := tempFile(t, 4096)
	if err := Detach(notLoop); err == nil || !strings.Contains(err.Error(), notLoop) {
		t.Errorf("Detach of a regular file: %v", err)
	}
	t.Logf("Detach of a regular file: %v", Detach(notLoop))
	t.Logf("Attach of a missing file: %v", err)

	// Detaching a Device twice is not an error: its attachment is gone.
	d, err := Attach(tempFile(t, 4096), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDetach(t, d)
	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(); err != nil {
		t.Errorf("second Device.Detach: %v", err)
	}
}

func TestMountPoints(t *testing.T) {
	const mountinfo = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
101 27 7:3 / /mnt/with\040space ro,relatime - squashfs /dev/loop3 ro
102 27 259:1 / /mnt/part ro,relatime - ext4 /dev/loop3p1 ro
103 27 7:30 / /mnt/other ro,relatime - squashfs /dev/loop30 ro
104 101 7:3 /sub /mnt/bind\134dir rw - squashfs /dev/loop3 ro
`
	got := mountPoints(strings.NewReader(mountinfo), map[string]bool{"7:3": true, "259:1": true})
	want := []string{"/mnt/with space", "/mnt/part", `/mnt/bind\dir`}
	if !slices.Equal(got, want) {
		t.Errorf("mountPoints = %q, want %q", got, want)
	}
}

func BenchmarkAttachDetach(b *testing.B) {
	requireRoot(b)
	for _, bc := range []struct {
		name   string
		legacy bool
	}{{"LOOP_CONFIGURE", false}, {"LOOP_SET_FD", true}} {
		b.Run(bc.name, func(b *testing.B) {
			legacyOnly.Store(bc.legacy)
			defer legacyOnly.Store(false)
			file := tempFile(b, 1<<20)
			for b.Loop() {
				d, err := Attach(file, Options{ReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Detach(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The cost of the idempotent path when the file is already attached: a
// sysfs scan plus one status query per bound device.
func BenchmarkAttachOrReuseHit(b *testing.B) {
	requireRoot(b)
	file := tempFile(b, 1<<20)
	opts := Options{ReadOnly: true, Ref: testRef(b)}
	attachOrReuse(b, file, opts)
	for b.Loop() {
		d, err := AttachOrReuse(file, opts)
		if err != nil || !d.Reused {
			b.Fatal(d, err)
		}
	}
}
