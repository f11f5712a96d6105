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
	"strconv"
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

// Path returns the host path of a path inside the running container
// (/proc/LEADER/root/...). Valid until the next Reboot or Close. Beware: an absolute
// symbolic link met on the way resolves against the host's root, not the container's
// (e.g. /etc/systemd/system/default.target): to write files, use WriteFile, which
// writes from inside the container.
func (tb *Testbed) Path(guest string) string {
	return fmt.Sprintf("/proc/%d/root%s", tb.Leader(), filepath.Clean("/"+guest))
}

// WriteFile writes a file inside the running container (creating parent directories),
// from inside it, so that symbolic links resolve as the container sees them.
func (tb *Testbed) WriteFile(guest string, data []byte, perm os.FileMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := tb.Exec(ctx, Command{
		Args: []string{"/bin/sh", "-c", `mkdir -p -- "$(dirname -- "$1")" && cat >"$1" && chmod "$2" "$1"`,
			"sh", filepath.Clean("/" + guest), fmt.Sprintf("%04o", perm.Perm())},
		Stdin: bytes.NewReader(data),
	})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("testbed %s: writing %s: %s", tb.name, guest, strings.TrimSpace(res.Stderr))
	}
	return nil
}

// ReadFile reads a file inside the running container (from inside it).
func (tb *Testbed) ReadFile(guest string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := tb.Exec(ctx, Command{Args: []string{"cat", "--", filepath.Clean("/" + guest)}})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("testbed %s: reading %s: %s", tb.name, guest, strings.TrimSpace(res.Stderr))
	}
	return []byte(res.Stdout), nil
}

// Run runs args inside the testbed. A non-zero exit is not an error: see ExitCode.
func (tb *Testbed) Run(ctx context.Context, args ...string) (*Result, error) {
	return tb.Exec(ctx, Command{Args: args})
}

// MustRun runs args inside the testbed (2 minute timeout) and fails t (the calling
// test or subtest) unless the command exits 0. It returns stdout with surrounding white
// space trimmed.
func (tb *Testbed) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := tb.Run(ctx, args...)
	if err != nil {
		t.Fatalf("testbed %s: %q: %v", tb.name, args, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("testbed %s: %q: %s", tb.name, args, res)
	}
	return strings.TrimSpace(res.Stdout)
}

// Exec runs a command inside the testbed with `nsenter -t LEADER -a -r -w`: in all the
// container's namespaces, with its root and working directory. On a cgroup2 host
// hierarchy the process is started in the testbed's own cgroup (testbed/NAME/exec), so
// Close kills whatever it left running. A non-zero exit is not an error; a cancelled ctx
// kills the command's process group and returns ctx's error with the partial result.
func (tb *Testbed) Exec(ctx context.Context, c Command) (*Result, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("testbed: Exec: no command")
	}
	tb.mu.Lock()
	if !tb.running || tb.leader == 0 {
		tb.mu.Unlock()
		return nil, fmt.Errorf("testbed %s: not running", tb.name)
	}
	leader := tb.leader
	var cgfd int = -1
	if tb.execCG != nil && !tb.noCGFD {
		cgfd = int(tb.execCG.Fd())
	}
	tb.mu.Unlock()

	args := []string{"-t", strconv.Itoa(leader), "-a", "-r", "-w", "--"}
	if c.Dir != "" {
		args = append(args, "/bin/sh", "-c", `cd -- "$0" && exec "$@"`, c.Dir)
	}
	args = append(args, c.Args...)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	exited := make(chan struct{})
	defer close(exited)
	run := func(useCG bool) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		cmd.Env = append([]string{
			"PATH=" + guestPath, "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
			"SYSTEMD_PAGER=cat", "PAGER=cat", "SYSTEMD_COLORS=0",
		}, c.Env...)
		cmd.Stdin = c.Stdin
		cmd.Stdout = teeWriter(&stdout, c.Stdout)
		cmd.Stderr = teeWriter(&stderr, c.Stderr)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if useCG {
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = cgfd
		}
		cmd.Cancel = func() error {
			// Kill the command, not nsenter: nsenter forks to enter the PID namespace,
			// and if it died first its child would be re-parented to the host's init,
			// outside the container. A zombie the container's PID 1 cannot reap makes
			// systemd-shutdown wait its full 10 s timeout at the next shutdown.
			go killGroupButLeader(cmd.Process.Pid, exited)
			return nil
		}
		// If the command is still there after this, os/exec kills nsenter itself.
		cmd.WaitDelay = 10 * time.Second
		return cmd, cmd.Start()
	}
	cmd, err := run(cgfd >= 0)
	if err != nil && cgfd >= 0 && ctx.Err() == nil {
		// No clone3 into a cgroup (old kernel, seccomp): run it in the caller's cgroup.
		tb.mu.Lock()
		tb.noCGFD = true
		tb.mu.Unlock()
		tb.t.Logf("testbed %s: starting in the exec cgroup failed (%v); running without", tb.name, err)
		cmd, err = run(false)
	}
	if err != nil {
		return nil, fmt.Errorf("testbed %s: %q: %w", tb.name, c.Args, err)
	}
	werr := cmd.Wait()
	res := &Result{Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case st.Exited():
			res.ExitCode = st.ExitStatus()
		case st.Signaled():
			res.ExitCode = 128 + int(st.Signal())
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("testbed %s: %q: %w", tb.name, c.Args, ctx.Err())
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return res, fmt.Errorf("testbed %s: %q: %w", tb.name, c.Args, werr)
	}
	return res, nil
}

// killGroupButLeader SIGKILLs every process in process group pgid except its leader
// (nsenter), every 50 ms until exited is closed: nsenter then reaps its child and exits.
func killGroupButLeader(pgid int, exited <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, pid := range processGroup(pgid) {
			if pid != pgid {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-exited:
			return
		case <-tick.C:
		}
	}
}

func teeWriter(buf *bytes.Buffer, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

// cgroupDirs returns testbed/NAME in each hierarchy.
func (tb *Testbed) cgroupDirs() []string {
	var out []string
	for _, h := range tb.hier {
		out = append(out, filepath.Join(h.Mount, cgroupParent, tb.name))
	}
	return out
}

func (tb *Testbed) nspawnArgs() []string {
	a := []string{
		"--register=no", // no machined on the host
		"--keep-unit",   // no host systemd to create a scope
		"--boot",
		"-M", tb.name,
		"--private-network", // off every network
		"--console=read-only",
	}
	if tb.opts.Persistent {
		a = append(a, "-D", filepath.Join(tb.workDir, "state", "merged"))
	} else {
		a = append(a, "-D", tb.root, "--volatile=overlay")
	}
	if len(tb.loops) > 0 {
		a = append(a, "--bind=/dev/loop-control")
		for _, d := range tb.loops {
			a = append(a, "--bind="+d.Path)
		}
	}
	for _, b := range tb.opts.Binds {
		flag := "--bind="
		if b.ReadOnly {
			flag = "--bind-ro="
		}
		a = append(a, flag+b.Host+":"+b.Guest)
	}
	return append(a, tb.opts.ExtraArgs...)
}

// wrapperScript runs as the first process inside the private mount namespace (unshare
// execs it, it execs nspawn: one PID throughout). It mounts a fresh /run (the host's /run
// is on disk and nspawn leaves /run/systemd/nspawn/* behind), mounts the persistent
// overlay when asked, moves itself into the testbed's cgroups (so nspawn's payload/ and
// supervisor/ go there, not to the hierarchy root) and execs nspawn.
const wrapperScript = `set -e
mount -t tmpfs -o mode=0755,size=64m strata-testbed-run /run
if [ -n "$TB_OVERLAY_OPTS" ]; then
	mount -t overlay strata-testbed-root -o "$TB_OVERLAY_OPTS" "$TB_OVERLAY_DIR"
fi
IFS=:
for f in $TB_CGROUP_PROCS; do echo $$ >"$f"; done
unset IFS TB_OVERLAY_OPTS TB_OVERLAY_DIR TB_CGROUP_PROCS
exec systemd-nspawn "$@"
`

func (tb *Testbed) start(ctx context.Context) (err error) {
	tb.mu.Lock()
	if tb.running {
		tb.mu.Unlock()
		return fmt.Errorf("testbed %s: already running", tb.name)
	}
	tb.boots++
	boot := tb.boots
	tb.mu.Unlock()

	// Own cgroups, plus a leaf for Exec'd processes in the cgroup2 hierarchy.
	var procs []string
	var execCG *os.File
	for _, h := range tb.hier {
		dir := filepath.Join(h.Mount, cgroupParent, tb.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("testbed %s: cgroup: %w", tb.name, err)
		}
		procs = append(procs, filepath.Join(dir, "cgroup.procs"))
		if h.Unified && execCG == nil {
			if err := os.Mkdir(filepath.Join(dir, "exec"), 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("testbed %s: cgroup: %w", tb.name, err)
			}
			if execCG, err = os.Open(filepath.Join(dir, "exec")); err != nil {
				return fmt.Errorf("testbed %s: cgroup: %w", tb.name, err)
			}
		}
	}
	defer func() {
		if err != nil && execCG != nil {
			// stop() closes it once the testbed was marked running.
			tb.mu.Lock()
			if tb.execCG != execCG {
				execCG.Close()
			}
			tb.mu.Unlock()
		}
	}()

	logPath := filepath.Join(tb.workDir, fmt.Sprintf("console-%d.log", boot))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testbed %s: %w", tb.name, err)
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=" + map[bool]string{false: "1", true: "0"}[tb.opts.CgroupV1],
		// No image lock file (.#ROOT.lck beside the root: nspawn cannot remove it while
		// another testbed holds it shared, so it stays on the host). The root is guarded by
		// ROOT.lock and is only ever a read-only lower layer.
		"SYSTEMD_NSPAWN_LOCK=0",
		"TB_CGROUP_PROCS=" + strings.Join(procs, ":"),
	}
	if tb.opts.Persistent {
		st := filepath.Join(tb.workDir, "state")
		env = append(env,
			fmt.Sprintf("TB_OVERLAY_OPTS=lowerdir=%s,upperdir=%s,workdir=%s", tb.root, filepath.Join(st, "upper"), filepath.Join(st, "work")),
			"TB_OVERLAY_DIR="+filepath.Join(st, "merged"))
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", wrapperScript, "strata-testbed"}, tb.nspawnArgs()...)...)
	cmd.Env = env
	fmt.Fprintf(logFile, "# testbed %s boot %d: %s\n", tb.name, boot, strings.Join(cmd.Args[:5], " ")+" ... "+strings.Join(tb.nspawnArgs(), " "))
	logFile.Close()
	// SIGTERM (nspawn: shut the container down) if the test process dies without
	// tearing down.
	nspawn, err := harness.Start(cmd, syscall.SIGTERM, logPath)
	if err != nil {
		return fmt.Errorf("testbed %s: starting nspawn: %w", tb.name, err)
	}
	t0 := time.Now()
	tb.mu.Lock()
	tb.running = true
	tb.nspawn = nspawn
	tb.leader = 0
	tb.execCG = execCG
	tb.logPath = logPath
	tb.timing = BootTiming{}
	tb.mu.Unlock()

	fail := func(stage string, err error) error {
		msg := fmt.Sprintf("testbed %s: boot %d: %s: %v", tb.name, boot, stage, err)
		if extra := tb.diagnose(); extra != "" {
			msg += "\n" + extra
		}
		msg += "\nconsole log (" + logPath + ", last lines):\n" + harness.Tail(logPath, 60)
		return errors.New(msg)
	}
	// 1. The container's PID 1: the child of nspawn that is PID 1 in its PID namespace
	//    and has exec'd systemd.
	leader, err := waitNspawn(ctx, nspawn, func() (int, bool) {
		for _, c := range childrenOf(cmd.Process.Pid) {
			if comm := procComm(c); (comm == "systemd" || comm == "init") && procNSPidIsOne(c) {
				return c, true
			}
		}
		return 0, false
	})
	if err != nil {
		return fail("waiting for the container's PID 1", err)
	}
	tLeader := time.Since(t0)
	tb.mu.Lock()
	tb.leader = leader
	tb.mu.Unlock()
	// 2. The manager's private socket (systemctl's transport).
	_, err = waitNspawn(ctx, nspawn, func() (int, bool) {
		return 0, harness.FileExists(fmt.Sprintf("/proc/%d/root/run/systemd/private", leader))
	})
	if err != nil {
		return fail("waiting for /run/systemd/private", err)
	}
	tManager := time.Since(t0)
	// 3. Boot finished.
	res, err := tb.Run(ctx, "systemctl", "is-system-running", "--wait")
	if err != nil {
		return fail("systemctl is-system-running --wait", err)
	}
	state := strings.TrimSpace(res.Stdout)
	tRunning := time.Since(t0)
	tb.mu.Lock()
	tb.timing = BootTiming{Leader: tLeader, Manager: tManager, Running: tRunning}
	tb.mu.Unlock()
	switch {
	case state == "running":
	case state == "degraded" && tb.opts.AllowDegraded:
		tb.t.Logf("testbed %s: boot %d ended degraded:\n%s", tb.name, boot, tb.diagnose())
	default:
		return fail("system state", fmt.Errorf("%q (want running)%s", state, strings.TrimSpace("\n"+res.Stderr)))
	}
	// 4. D-Bus: the system bus must be up (tests talk to systemd and machined through it).
	res, err = tb.Run(ctx, "systemctl", "is-active", "dbus.service")
	if err != nil || strings.TrimSpace(res.Stdout) != "active" {
		if err == nil {
			err = fmt.Errorf("dbus.service is %q", strings.TrimSpace(res.Stdout))
		}
		return fail("D-Bus", err)
	}
	if !harness.FileExists(tb.Path("/run/dbus/system_bus_socket")) {
		return fail("D-Bus", errors.New("no /run/dbus/system_bus_socket"))
	}
	tb.t.Logf("testbed %s: boot %d: running after %v (PID 1 after %v, manager socket after %v)",
		tb.name, boot, tRunning.Round(time.Millisecond), tLeader.Round(time.Millisecond), tManager.Round(time.Millisecond))
	return nil
}

// waitNspawn polls check every 10 ms until it succeeds, nspawn exits or ctx ends.
func waitNspawn(ctx context.Context, nspawn *harness.Daemon, check func() (int, bool)) (int, error) {
	var v int
	err := harness.Until(ctx, 0, 10*time.Millisecond, nspawn.Done(), func() error {
		return fmt.Errorf("systemd-nspawn exited (%v)", nspawn.Err())
	}, func() bool {
		var ok bool
		v, ok = check()
		return ok
	})
	return v, err
}

// diagnose collects failed units and the tail of the journal, when the manager answers.
func (tb *Testbed) diagnose() string {
	tb.mu.Lock()
	ok := tb.running && tb.leader != 0 && harness.FileExists(fmt.Sprintf("/proc/%d/root/run/systemd/private", tb.leader))
	tb.mu.Unlock()
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	if res, err := tb.Run(ctx, "systemctl", "list-units", "--failed", "--no-legend", "--plain"); err == nil {
		fmt.Fprintf(&b, "failed units:\n%s", res.Stdout)
	}
	if res, err := tb.Run(ctx, "journalctl", "-b", "-p", "warning", "--no-pager", "-n", "40"); err == nil {
		fmt.Fprintf(&b, "journal (warnings and worse, last 40):\n%s", res.Stdout)
	}
	return b.String()
}

// Reboot restarts the container as a real reboot would (`systemctl reboot` inside,
// then nspawn is started again) and waits until systemd is running again. What
// survives: the Binds, and with Options.Persistent every change to the root file
// system; with the default --volatile=overlay, changes to the root are lost. The
// leader's PID, Path and SystemBusAddress change.
func (tb *Testbed) Reboot(ctx context.Context) error {
	if err := tb.stop(ctx, true); err != nil {
		return err
	}
	if leaked := tb.checkLoops(); len(leaked) > 0 {
		return fmt.Errorf("testbed %s: after shutdown: %s", tb.name, strings.Join(leaked, "; "))
	}
	bctx, cancel := context.WithTimeout(ctx, tb.opts.BootTimeout)
	defer cancel()
	return tb.start(bctx)
}

// stop shuts the container down (reboot: through `systemctl reboot`, else SIGTERM to
// nspawn, which halts the container), kills what is left in its cgroups and removes
// them.
func (tb *Testbed) stop(ctx context.Context, reboot bool) error {
	tb.mu.Lock()
	running, nspawn, execCG := tb.running, tb.nspawn, tb.execCG
	tb.mu.Unlock()
	var errs []error
	if running {
		pid, done := nspawn.PID(), nspawn.Done()
		t0 := time.Now()
		select {
		case <-done:
		default:
			// Which loop devices are the container's, while its mount table can be read:
			// after shutdown, those still attached were leaked.
			if leader := tb.Leader(); leader != 0 {
				own, ambiguous := loopsOfContainer(leader)
				tb.mu.Lock()
				tb.ownLoops = append(tb.ownLoops, own...)
				tb.sharedLoops = append(tb.sharedLoops, ambiguous...)
				tb.mu.Unlock()
			}
			if reboot {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				// The command may be killed as the container goes down: ignore its result.
				_, _ = tb.Run(rctx, "systemctl", "--no-block", "reboot")
				cancel()
			} else {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		timer := time.NewTimer(tb.opts.ShutdownTimeout)
		select {
		case <-done:
		case <-timer.C:
			errs = append(errs, fmt.Errorf("container did not shut down within %v; killed it", tb.opts.ShutdownTimeout))
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for _, d := range tb.cgroupDirs() {
				killCgroup(d, 5*time.Second)
			}
			<-done
		}
		timer.Stop()
		werr := nspawn.Err()
		tb.mu.Lock()
		tb.running = false
		tb.leader = 0
		tb.execCG = nil
		tb.mu.Unlock()
		if execCG != nil {
			execCG.Close()
		}
		want := 0
		if reboot {
			want = 133 // nspawn's exit status when the container asked for a reboot
		}
		var ee *exec.ExitError
		switch {
		case werr == nil && want == 0:
		case errors.As(werr, &ee) && ee.ExitCode() == want:
		default:
			tb.t.Logf("testbed %s: systemd-nspawn exited with %v (expected status %d)", tb.name, werr, want)
		}
		tb.t.Logf("testbed %s: %s took %v", tb.name, map[bool]string{true: "reboot shutdown", false: "shutdown"}[reboot], time.Since(t0).Round(time.Millisecond))
	}
	// Leftovers: processes still in the testbed's cgroups (e.g. started by Exec).
	for _, d := range tb.cgroupDirs() {
		if pids := cgroupPIDs(d); len(pids) > 0 {
			var desc []string
			for _, p := range pids {
				desc = append(desc, fmt.Sprintf("%d(%s)", p, procComm(p)))
			}
			tb.t.Logf("testbed %s: killing leftover processes in %s: %s", tb.name, d, strings.Join(desc, " "))
		}
		if left := killCgroup(d, 10*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("processes survive SIGKILL in %s: %v", d, left))
		}
		if err := removeCgroup(d, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("testbed %s: stop: %w", tb.name, errors.Join(errs...))
	}
	return nil
}

// checkLoops waits briefly for the loop devices the container had attached when it was
// stopped to be released (autoclear devices go when their last user does), then
// detaches those still bound to the same file and describes them: the container leaked
// them. Loop devices of the host or of other testbeds are never touched.
func (tb *Testbed) checkLoops() []string {
	tb.mu.Lock()
	own, shared := tb.ownLoops, tb.sharedLoops
	tb.ownLoops, tb.sharedLoops = nil, nil
	tb.mu.Unlock()
	attached := func(autoclearOnly bool) []loopFile {
		var out []loopFile
		for _, lf := range own {
			if (lf.autoclear() || !autoclearOnly) && lf.stillAttached() {
				out = append(out, lf)
			}
		}
		return out
	}
	_ = harness.Poll(2*time.Second, 20*time.Millisecond, func() bool { return len(attached(true)) == 0 })
	for _, lf := range shared {
		if lf.stillAttached() {
			tb.t.Logf("testbed %s: /dev/loop%d is still attached to %s, a file that other containers or the host see too: it may be this testbed's leak, or theirs; left alone",
				tb.name, lf.Index, lf.Backing)
		}
	}
	var out []string
	for _, lf := range attached(false) {
		msg := fmt.Sprintf("loop device /dev/loop%d was left attached to %s", lf.Index, lf.Backing)
		if err := detachLoop(lf.Index); err != nil {
			msg += fmt.Sprintf(" (detach failed: %v)", err)
		} else {
			msg += " (detached it)"
			tb.mu.Lock()
			tb.detached = append(tb.detached, lf)
			tb.mu.Unlock()
		}
		out = append(out, msg)
	}
	return out
}

// Close shuts the testbed down and cleans up the host: powers the container off and
// waits, kills leftovers by cgroup and removes the cgroups, detaches loop devices it had
// bound in that are still attached and removes the ones it created, removes its work
// directory, then checks that nothing it owned is left on the host (mounts, loop devices,
// cgroups, processes). Every problem is reported with t.Errorf and returned. Boot
// registers Close with t.Cleanup; calling it earlier is fine, later calls do nothing.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	if tb.closed {
		tb.mu.Unlock()
		return tb.closeErr
	}
	tb.closed = true
	tb.mu.Unlock()

	t0 := time.Now()
	var problems []string
	ctx, cancel := context.WithTimeout(context.Background(), tb.opts.ShutdownTimeout+30*time.Second)
	defer cancel()
	logPath := tb.ConsoleLog()
	if err := tb.stop(ctx, false); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, tb.checkLoops()...)
	for _, err := range releaseLoops(tb.loops) {
		problems = append(problems, err.Error())
	}
	if tb.t.Failed() && logPath != "" {
		tb.t.Logf("testbed %s: console log (last lines of %s):\n%s", tb.name, logPath, harness.Tail(logPath, 40))
	}
	if os.Getenv("STRATA_TESTBED_KEEP") == "1" {
		tb.t.Logf("testbed %s: keeping %s", tb.name, tb.workDir)
	} else if err := os.RemoveAll(tb.workDir); err != nil {
		problems = append(problems, fmt.Sprintf("removing %s: %v", tb.workDir, err))
	}
	problems = append(problems, tb.leaks(tb.before)...)
	for _, h := range tb.hier {
		removeIfEmptyParent(filepath.Join(h.Mount, cgroupParent))
	}
	if tb.rootLock != nil {
		tb.rootLock.Close() // drops the flock
	}
	for _, p := range problems {
		tb.t.Errorf("testbed %s: %s", tb.name, p)
	}
	var err error
	if len(problems) > 0 {
		err = fmt.Errorf("testbed %s: teardown: %s", tb.name, strings.Join(problems, "; "))
	}
	tb.t.Logf("testbed %s: teardown took %v", tb.name, time.Since(t0).Round(time.Millisecond))
	tb.mu.Lock()
	tb.closeErr = err
	tb.mu.Unlock()
	return err
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
