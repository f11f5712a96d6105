// Package testbed boots a Debian root with a real systemd as PID 1 under systemd-nspawn,
// for Strata's integration tests: the units that Strata's generator writes can be run
// (daemon-reload, start, stop, reboot) against a real service manager, with loop devices,
// squashfs and overlayfs, and without touching the host's own services.
//
// The recipe follows test/testbed/README.md (which cites the facts in the project's
// testbed reference): nspawn runs inside `unshare --mount --propagation private` with a
// fresh tmpfs on /run, in its own cgroup (testbed/NAME in every cgroup hierarchy the
// harness uses), with --register=no --keep-unit --boot --volatile=overlay (or a
// persistent overlay, see Options.Persistent) --private-network --console=read-only and
// SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1. Commands run inside with
// `nsenter -t LEADER -a -r -w`.
//
// Boot needs root and the host tools installed by setup-host.sh; the root file system is
// built by build-root.sh (Boot runs both, idempotently, when Options.Root is empty).
//
// The package only uses the standard library.
package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// DefaultRoot is where build-root.sh puts the root when neither Options.Root nor
// $STRATA_TESTBED_ROOT says otherwise.
const DefaultRoot = "/var/lib/strata-testbed/root"

// guestPath is the PATH commands run with inside the testbed.
const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Bind makes a host directory or file visible inside the testbed.
type Bind struct {
	Host     string // absolute host path; must exist
	Guest    string // absolute path in the container; created when missing
	ReadOnly bool
}

// Options configure Boot. The zero value boots the default root with no binds and no
// loop devices.
type Options struct {
	// Root is the debootstrap root (build-root.sh). It is never modified: the container
	// writes to an overlay. Empty: $STRATA_TESTBED_ROOT or DefaultRoot, and Boot runs
	// setup-host.sh and build-root.sh first (both are fast when there is nothing to do).
	Root string
	// Name is the machine name (also the cgroup name). Empty: derived from the test name
	// plus a random suffix. At most 64 characters of [A-Za-z0-9-].
	Name string
	// Binds are host paths bound into the container (--bind / --bind-ro).
	Binds []Bind
	// LoopDevices is how many free loop devices the testbed needs. Boot makes sure at
	// least that many are free on the host (creating devices with LOOP_CTL_ADD) and binds
	// /dev/loop-control and every host loop node in, so that LOOP_CTL_GET_FREE inside
	// (losetup -f, mount -o loop) always finds its node, whatever the host does
	// meanwhile. 0: no loop device access.
	LoopDevices int
	// Persistent keeps the container's changes to its root across Reboot: instead of
	// --volatile=overlay (a tmpfs upper that dies with the container), the harness mounts
	// an overlay of Root with an upper directory on the host, inside the private mount
	// namespace, and boots that. The upper lives in the testbed's work directory and is
	// deleted by Close. Without it, only Binds survive a Reboot.
	Persistent bool
	// CgroupV1 gives the container systemd's legacy cgroup hierarchy (v1 only, as EL8
	// nodes boot by default) instead of a pure cgroup2 tree. The host must have v1
	// controllers mounted (this machine's hybrid layout does).
	CgroupV1 bool
	// AllowDegraded accepts a boot that ends "degraded" (failed units are logged).
	AllowDegraded bool
	// BootTimeout bounds Boot and each boot of Reboot. Default 2 minutes.
	BootTimeout time.Duration
	// ShutdownTimeout bounds a clean shutdown before the harness kills the container.
	// Default 1 minute.
	ShutdownTimeout time.Duration
	// ExtraArgs are appended to systemd-nspawn's arguments. Network options are refused:
	// the testbed stays off every network (--private-network).
	ExtraArgs []string
	// WorkDir is the parent of the per-testbed work directory (console logs, persistent
	// state). Default: os.TempDir(). The per-testbed directory is removed by Close, unless
	// $STRATA_TESTBED_KEEP=1.
	WorkDir string
}

// BootTiming records how long the phases of the last boot took.
type BootTiming struct {
	Leader  time.Duration // nspawn started until the container's PID 1 existed
	Manager time.Duration // ... until /run/systemd/private existed
	Running time.Duration // ... until `systemctl is-system-running --wait` returned
}

// Testbed is a running (or stopped) container with systemd as PID 1.
type Testbed struct {
	t       testing.TB
	opts    Options
	name    string
	root    string // the debootstrap root (lower layer, never written)
	workDir string // per-testbed host directory: logs, persistent upper
	hier    []cgroupHierarchy
	loops   []LoopDevice
	before  hostSnapshot
	// rootLock is ROOT.lock, held shared (flock) from Boot to the end of Close.
	rootLock *os.File

	mu       sync.Mutex
	running  bool
	nspawn   *harness.Daemon // systemd-nspawn (same process as unshare and the wrapper shell)
	leader   int             // the container's PID 1, as seen from the host
	execCG   *os.File        // cgroup2 directory fd for processes started by Exec
	ownLoops []loopFile      // loop devices the container had attached when it was stopped
	detached []loopFile      // ... that the harness had to detach (checked again by leaks)
	// sharedLoops are loop devices on files other roots see too: maybe the container's.
	sharedLoops []loopFile
	noCGFD      bool // clone3 into a cgroup failed once: do not try again
	boots       int
	timing      BootTiming
	logPath     string
	closed      bool
	closeErr    error
}

// Command is a command to run inside the testbed.
type Command struct {
	Args  []string
	Stdin io.Reader
	// Env is added to the default environment (PATH, HOME=/root, LANG=C.UTF-8,
	// SYSTEMD_PAGER=cat, SYSTEMD_COLORS=0); the host's environment is not passed.
	Env []string
	// Dir is the working directory inside the container. Default /.
	Dir string
	// Stdout and Stderr, when set, also receive the output as it comes.
	Stdout, Stderr io.Writer
}

// Result is what a command run inside the testbed did.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int // 128+N when killed by signal N
	Duration time.Duration
}

// String summarises the result for test failure messages.
func (r *Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
}

// DefaultRootDir returns $STRATA_TESTBED_ROOT, or DefaultRoot for the
// Debian release $STRATA_TESTBED_SUITE names (build-root.sh reads it too):
// bookworm's is DefaultRoot, another's DefaultRoot-SUITE (the version
// matrix: each release's root is cached beside the others).
func DefaultRootDir() string {
	if v := os.Getenv("STRATA_TESTBED_ROOT"); v != "" {
		return v
	}
	if s := os.Getenv("STRATA_TESTBED_SUITE"); s != "" && s != "bookworm" {
		return DefaultRoot + "-" + s
	}
	return DefaultRoot
}

// ScriptsDir returns the directory holding setup-host.sh and build-root.sh:
// $STRATA_TESTBED_SCRIPTS, or the directory of this source file.
func ScriptsDir() string {
	if v := os.Getenv("STRATA_TESTBED_SCRIPTS"); v != "" {
		return v
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "test/testbed"
	}
	return filepath.Dir(file)
}

var ensureMu sync.Mutex

// EnsureRoot runs setup-host.sh and then build-root.sh ROOT. Both are idempotent and
// take well under a second when there is nothing to do; a cold build takes ~40 s.
func EnsureRoot(ctx context.Context, root string) error {
	ensureMu.Lock()
	defer ensureMu.Unlock()
	dir := ScriptsDir()
	if out, err := runScript(ctx, filepath.Join(dir, "setup-host.sh")); err != nil {
		return fmt.Errorf("setup-host.sh: %w\n%s", err, out)
	}
	if out, err := runScript(ctx, filepath.Join(dir, "build-root.sh"), root); err != nil {
		return fmt.Errorf("build-root.sh %s: %w\n%s", root, err, out)
	}
	return nil
}

// EnsureSquashfs builds ROOT (as EnsureRoot) and a squashfs image of it at out
// (build-root.sh --squashfs), rebuilt only when the root changed.
func EnsureSquashfs(ctx context.Context, root, out string) error {
	if err := EnsureRoot(ctx, root); err != nil {
		return err
	}
	ensureMu.Lock()
	defer ensureMu.Unlock()
	if o, err := runScript(ctx, filepath.Join(ScriptsDir(), "build-root.sh"), "--squashfs", out, root); err != nil {
		return fmt.Errorf("build-root.sh --squashfs %s %s: %w\n%s", out, root, err, o)
	}
	return nil
}

func runScript(ctx context.Context, script string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "/bin/bash", append([]string{script}, args...)...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.String(), err
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

func machineName(t testing.TB) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	return "tb-" + base + "-" + hex.EncodeToString(rnd)
}

// Boot starts a testbed and waits until its systemd is running (and D-Bus is up). The
// testbed is torn down by t.Cleanup (or an earlier Close), which also reports anything
// it left behind on the host. A failed Boot has already cleaned up after itself by the
// time the test ends; the error says which step failed and shows the console log.
func Boot(t testing.TB, opts Options) (*Testbed, error) {
	t.Helper()
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 2 * time.Minute
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.BootTimeout+3*time.Minute)
	defer cancel()

	if os.Geteuid() != 0 {
		return nil, errors.New("testbed: must run as root (systemd-nspawn, cgroups, loop devices)")
	}
	root := opts.Root
	if root == "" {
		root = DefaultRootDir()
		if err := EnsureRoot(ctx, root); err != nil {
			return nil, fmt.Errorf("testbed: preparing the root: %w", err)
		}
	}
	for _, tool := range []string{"systemd-nspawn", "unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("testbed: %s not found (run test/testbed/setup-host.sh): %w", tool, err)
		}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if !harness.FileExists(filepath.Join(root, "usr/lib/systemd/systemd")) && !harness.FileExists(filepath.Join(root, "lib/systemd/systemd")) {
		return nil, fmt.Errorf("testbed: %s has no systemd: build it with test/testbed/build-root.sh %s", root, root)
	}
	if strings.ContainsAny(root, ",:") {
		return nil, fmt.Errorf("testbed: root path %q must not contain ',' or ':'", root)
	}
	for _, b := range opts.Binds {
		if !filepath.IsAbs(b.Host) || !filepath.IsAbs(b.Guest) {
			return nil, fmt.Errorf("testbed: bind %+v: paths must be absolute", b)
		}
		if strings.Contains(b.Host, ":") || strings.Contains(b.Guest, ":") {
			return nil, fmt.Errorf("testbed: bind %+v: paths must not contain ':'", b)
		}
		if _, err := os.Stat(b.Host); err != nil {
			return nil, fmt.Errorf("testbed: bind %+v: %w", b, err)
		}
		// nspawn binds recursively, and in its mount namespace the container's root and
		// API file systems are mounted on the root directory: a bind of a directory that
		// contains the root would carry the container's own mounts in (they propagate, and
		// keep loop devices busy after a umount).
		if h := filepath.Clean(b.Host); h == "/" || root == h || strings.HasPrefix(root, h+"/") {
			return nil, fmt.Errorf("testbed: bind %+v: must not contain the root %s (bind the files you need instead)", b, root)
		}
	}
	for _, a := range opts.ExtraArgs {
		if strings.HasPrefix(a, "--network") || strings.HasPrefix(a, "--port") || a == "-n" || strings.HasPrefix(a, "-p") {
			return nil, fmt.Errorf("testbed: extra nspawn argument %q refused: the testbed stays off every network", a)
		}
	}
	name := opts.Name
	if name == "" {
		name = machineName(t)
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("testbed: invalid machine name %q", name)
	}
	hier, err := cgroupHierarchies()
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	workDir, err := os.MkdirTemp(opts.WorkDir, "strata-testbed-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	tb := &Testbed{t: t, opts: opts, name: name, root: root, workDir: workDir, hier: hier}
	tb.before = takeHostSnapshot()
	t.Cleanup(func() { _ = tb.Close() })
	// Hold ROOT.lock shared while the testbed exists: build-root.sh rebuilds (replaces)
	// the root only with the lock held exclusively.
	if tb.rootLock, err = lockShared(ctx, root+".lock"); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}

	if tb.loops, err = prepareLoops(opts.LoopDevices); err != nil {
		return nil, fmt.Errorf("testbed: loop devices: %w", err)
	}
	if opts.Persistent {
		for _, d := range []string{"upper", "work", "merged"} {
			if err := os.MkdirAll(filepath.Join(workDir, "state", d), 0o755); err != nil {
				return nil, fmt.Errorf("testbed: %w", err)
			}
		}
	}
	bootCtx, bootCancel := context.WithTimeout(context.Background(), opts.BootTimeout)
	defer bootCancel()
	if err := tb.start(bootCtx); err != nil {
		return nil, err
	}
	return tb, nil
}

// Name returns the machine name.
func (tb *Testbed) Name() string { return tb.name }

// Root returns the debootstrap root the testbed boots from.
func (tb *Testbed) Root() string { return tb.root }

// WorkDir returns the per-testbed host directory (console logs; with Persistent, the
// overlay upper in state/upper).
func (tb *Testbed) WorkDir() string { return tb.workDir }

// Leader returns the host PID of the container's PID 1 (0 when not running).
func (tb *Testbed) Leader() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.leader
}

// NspawnPID returns the host PID of systemd-nspawn (0 when not running).
func (tb *Testbed) NspawnPID() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if !tb.running {
		return 0
	}
	return tb.nspawn.PID()
}

// Timing returns the phases of the last boot.
func (tb *Testbed) Timing() BootTiming {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.timing
}

// ConsoleLog returns the path of the current boot's console log (nspawn's output).
func (tb *Testbed) ConsoleLog() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.logPath
}

// LoopDevices returns the loop devices bound into the testbed.
func (tb *Testbed) LoopDevices() []LoopDevice { return append([]LoopDevice(nil), tb.loops...) }

// SystemBusAddress returns the D-Bus address of the container's system bus, usable from
// the host (DBUS_SYSTEM_BUS_ADDRESS, busctl --address, go-systemd's dbus package).
// It changes with every boot (the leader's PID is part of it).
func (tb *Testbed) SystemBusAddress() string {
	return "unix:path=" + tb.Path("/run/dbus/system_bus_socket")
}

// cgroupDirs returns testbed/NAME in each hierarchy.
func (tb *Testbed) cgroupDirs() []string {
	var out []string
	for _, h := range tb.hier {
		out = append(out, filepath.Join(h.Mount, cgroupParent, tb.name))
	}
	return out
}

// lockShared opens path (creating it) and takes a shared flock on it, waiting while a
// rebuild holds it exclusively. A root directory whose parent is not writable gets no
// lock (a root not built by build-root.sh).
func lockShared(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, nil
		}
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (the root is being rebuilt): %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
