// Package vm boots a QEMU virtual machine (TCG) running Debian's stock kernel with
// systemd as PID 1, for the tests that need a real kernel: krbd (the rbd module,
// /sys/bus/rbd), udev and .device units. This host's own kernel has no rbd driver and
// cannot load modules; see test/vm/README.md.
//
// The VM boots a squashfs root (the testbed's, by default) read-only under a tmpfs
// overlay, with the kernel's modules from a second disk (build-kernel.sh). Host files
// come in through read-only 9p shares; commands run inside through a small agent
// (test/vm/agent, a systemd service) that talks JSON lines over a virtio-serial port.
// With Options.Netns the VM gets one network interface, a tap device inside a network
// namespace the test created (see NewNetns), and nothing else.
package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
	"github.com/strata-project/strata/test/testbed"
	"github.com/strata-project/strata/test/vm/internal/proto"
)

// DefaultKernelDir is where build-kernel.sh puts the kernel, its modules and the
// initramfs unless $STRATA_VM_KERNEL says otherwise.
const DefaultKernelDir = "/var/lib/strata-vm/kernel"

// Bind makes a host file or directory visible (read-only, 9p) at Guest inside the VM.
// The bind is made before systemd starts, so generators and udev rules see it.
type Bind struct {
	Host  string // absolute host path; must exist
	Guest string // absolute path in the VM; created when missing
}

// File is written into the VM's root (its tmpfs overlay) before systemd starts.
type File struct {
	Path    string // absolute guest path
	Data    []byte
	Mode    os.FileMode // default 0644
	Symlink string      // when set: Path becomes a symlink to it (Data ignored)
}

// Options configure Boot.
type Options struct {
	// Name of the VM (qemu -name, work directory). Default: from the test name.
	Name string
	// KernelDir holds vmlinuz, initrd.img and modules.sqfs. Empty: $STRATA_VM_KERNEL or
	// DefaultKernelDir, and Boot runs setup-host.sh and build-kernel.sh first (fast when
	// there is nothing to do).
	KernelDir string
	// RootImage is the squashfs root. Empty: the testbed's root.sqfs next to its root
	// (built by test/testbed/build-root.sh --squashfs when missing or out of date).
	RootImage string
	// Binds bring host paths in through read-only 9p shares (one share per directory).
	Binds []Bind
	// Files are written into the root before systemd starts.
	Files []File
	// Hook is extra busybox sh run by the initramfs right before systemd starts, with
	// $NEWROOT the future root (e.g. to mask or remove files).
	Hook string
	// Netns, when set, gives the VM one virtio NIC on Netns.Tap with Netns.GuestAddr
	// (configured by the initramfs as eth0), and qemu runs inside that namespace.
	// Without it the VM has no network device at all.
	Netns *Netns
	// NetworkByRoot leaves eth0 to the root's own configuration (e.g.
	// systemd-networkd and a .network file in Files): the initramfs only
	// loads the driver and sets no address.
	NetworkByRoot bool
	// Memory in MiB (default 1024) and CPUs (default 2).
	Memory, CPUs int
	// Append is added to the kernel command line.
	Append string
	// AllowDegraded accepts a boot that ends "degraded" (failed units are logged).
	AllowDegraded bool
	// BootTimeout bounds Boot (default 5 minutes: TCG is slow, and slower on a loaded
	// machine). ShutdownTimeout bounds the clean power-off in Close (default 90 s).
	BootTimeout, ShutdownTimeout time.Duration
	// WorkDir is the parent of the VM's work directory (console log, sockets, shares).
	// Default os.TempDir(). Removed by Close unless $STRATA_VM_KEEP=1.
	WorkDir string
}

// BootTiming records how long the phases of Boot took.
type BootTiming struct {
	Prepare time.Duration // kernel/root checks, agent build, work directory
	Agent   time.Duration // qemu started until the agent answered
	Running time.Duration // qemu started until systemd said running
}

// Command is a command to run inside the VM.
type Command struct {
	Args  []string
	Stdin []byte
	Env   []string // added to PATH, HOME=/root, LANG=C.UTF-8, SYSTEMD_PAGER=cat, ...
	Dir   string   // default /
}

// Result is what a command did.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int           // 128+N when killed by signal N
	Duration time.Duration // measured by the host (round trip)
	InGuest  time.Duration // measured by the agent inside the VM
}

func (r *Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Stdout, r.Stderr)
}

// VM is a running (or stopped) virtual machine.
type VM struct {
	t       testing.TB
	opts    Options
	name    string
	workDir string
	console string
	qemuLog string
	kernel  string
	qemu    *harness.Daemon
	timing  BootTiming
	bootID  string

	conn     net.Conn
	connDone chan struct{}
	wmu      sync.Mutex
	mu       sync.Mutex
	pending  map[uint64]chan proto.Response
	nextID   atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

var (
	ensureMu     sync.Mutex
	ensuredKern  = map[string]bool{}
	ensuredRoots = map[string]bool{}
)

// ScriptsDir is the directory of setup-host.sh and build-kernel.sh ($STRATA_VM_SCRIPTS
// or this source file's directory).
func ScriptsDir() string {
	if v := os.Getenv("STRATA_VM_SCRIPTS"); v != "" {
		return v
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "test/vm"
	}
	return filepath.Dir(file)
}

// DefaultKernel returns $STRATA_VM_KERNEL or DefaultKernelDir.
func DefaultKernel() string {
	if v := os.Getenv("STRATA_VM_KERNEL"); v != "" {
		return v
	}
	// The second stock kernel (build-kernel.sh reads the suite too).
	if s := os.Getenv("STRATA_VM_KERNEL_SUITE"); s != "" && s != "bookworm" {
		return DefaultKernelDir + "-" + s
	}
	return DefaultKernelDir
}

// DefaultRootImage is the testbed's squashfs (test/testbed/build-root.sh --squashfs).
func DefaultRootImage() string {
	return testbed.DefaultRootDir() + ".sqfs"
}

// EnsureKernel runs setup-host.sh and build-kernel.sh DIR (once per process).
func EnsureKernel(ctx context.Context, dir string) error {
	ensureMu.Lock()
	defer ensureMu.Unlock()
	if ensuredKern[dir] {
		return nil
	}
	sd := ScriptsDir()
	if out, err := run(ctx, "/bin/bash", filepath.Join(sd, "setup-host.sh")); err != nil {
		return fmt.Errorf("setup-host.sh: %w\n%s", err, out)
	}
	if out, err := run(ctx, "/bin/bash", filepath.Join(sd, "build-kernel.sh"), dir); err != nil {
		return fmt.Errorf("build-kernel.sh %s: %w\n%s", dir, err, out)
	}
	ensuredKern[dir] = true
	return nil
}

// EnsureRootImage builds the testbed root and its squashfs when needed (once per
// process) and returns the squashfs path.
func EnsureRootImage(ctx context.Context) (string, error) {
	img := DefaultRootImage()
	ensureMu.Lock()
	done := ensuredRoots[img]
	ensureMu.Unlock()
	if done {
		return img, nil
	}
	if err := testbed.EnsureSquashfs(ctx, testbed.DefaultRootDir(), img); err != nil {
		return "", err
	}
	ensureMu.Lock()
	ensuredRoots[img] = true
	ensureMu.Unlock()
	return img, nil
}

// buildAgent builds the agent (static) into dir.
func buildAgent(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join(ScriptsDir(), "agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the agent: %w\n%s", err, b)
	}
	return out, nil
}

func vmName(t testing.TB) string {
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
	if len(base) > 32 {
		base = strings.Trim(base[:32], "-")
	}
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	return "vm-" + base + "-" + hex.EncodeToString(rnd)
}

// Boot starts a VM and waits until its systemd is running. The VM is powered off and
// removed by t.Cleanup (or an earlier Close). A failed Boot cleans up after itself; its
// error names the step and carries the tail of the console log.
func Boot(t testing.TB, opts Options) (*VM, error) {
	t.Helper()
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 5 * time.Minute
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 90 * time.Second
	}
	if opts.Memory <= 0 {
		opts.Memory = 1024
	}
	if opts.CPUs <= 0 {
		opts.CPUs = 2
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("vm: must run as root (qemu with tap devices, network namespaces)")
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), opts.BootTimeout+10*time.Minute)
	defer cancel()

	v := &VM{t: t, opts: opts, pending: map[uint64]chan proto.Response{}, connDone: make(chan struct{})}
	v.name = opts.Name
	if v.name == "" {
		v.name = vmName(t)
	}
	v.kernel = opts.KernelDir
	if v.kernel == "" {
		v.kernel = DefaultKernel()
		if err := EnsureKernel(ctx, v.kernel); err != nil {
			return nil, fmt.Errorf("vm %s: %w", v.name, err)
		}
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "modules.sqfs"} {
		if !harness.FileExists(filepath.Join(v.kernel, f)) {
			return nil, fmt.Errorf("vm %s: %s missing (run test/vm/build-kernel.sh %s)", v.name, filepath.Join(v.kernel, f), v.kernel)
		}
	}
	root := opts.RootImage
	if root == "" {
		var err error
		if root, err = EnsureRootImage(ctx); err != nil {
			return nil, fmt.Errorf("vm %s: root image: %w", v.name, err)
		}
	}
	if !harness.FileExists(root) {
		return nil, fmt.Errorf("vm %s: root image %s missing", v.name, root)
	}

	wd, err := os.MkdirTemp(opts.WorkDir, "strata-"+v.name+"-")
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", v.name, err)
	}
	v.workDir = wd
	v.console = filepath.Join(wd, "console.log")
	v.qemuLog = filepath.Join(wd, "qemu.log")
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("vm %s: close: %v", v.name, err)
		}
	})

	args, err := v.prepare(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", v.name, err)
	}
	v.timing.Prepare = time.Since(t0)
	if err := v.start(ctx, args); err != nil {
		return nil, fmt.Errorf("vm %s: %w\n%s", v.name, err, v.diagnose())
	}
	return v, nil
}

// Name is the VM's name.
func (v *VM) Name() string { return v.name }

// WorkDir is the VM's host work directory.
func (v *VM) WorkDir() string { return v.workDir }

// ConsoleLog is the path of the serial console's log.
func (v *VM) ConsoleLog() string { return v.console }

// Timing returns the boot's phases.
func (v *VM) Timing() BootTiming { return v.timing }

// BootID is the guest kernel's boot ID.
func (v *VM) BootID() string { return v.bootID }
