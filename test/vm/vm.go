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
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"syscall"
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

// prepare writes the configuration share (agent, init.sh, files) and returns qemu's
// arguments.
func (v *VM) prepare(ctx context.Context, root string) ([]string, error) {
	conf := filepath.Join(v.workDir, "conf")
	if err := os.MkdirAll(filepath.Join(conf, "files"), 0o755); err != nil {
		return nil, err
	}
	if _, err := buildAgent(ctx, conf); err != nil {
		return nil, err
	}

	type share struct{ tag, host string }
	shares := []share{{"conf", conf}}
	tagOf := map[string]string{}
	var hook strings.Builder
	hook.WriteString(`# Written by the Strata VM harness (test/vm): sourced by the initramfs.
C=$NEWROOT/run/strata-vm/9p/conf
S=/etc/systemd/system
# The agent: commands from the host over the virtio-serial port strata.agent.
mkdir -p "$NEWROOT/usr/local/sbin"
cp "$C/agent" "$NEWROOT/usr/local/sbin/testvm-agent"
cat >"$NEWROOT$S/testvm-agent.service" <<'UNIT'
[Unit]
Description=Strata VM test agent (test/vm)
DefaultDependencies=no

[Service]
ExecStart=/usr/local/sbin/testvm-agent
Restart=always
RestartSec=200ms
UNIT
mkdir -p "$NEWROOT$S/sysinit.target.wants"
ln -sf ../testvm-agent.service "$NEWROOT$S/sysinit.target.wants/testvm-agent.service"
bind() {
	if [ -d "$1" ]; then mkdir -p "$NEWROOT$2"; else mkdir -p "$(dirname "$NEWROOT$2")"; [ -e "$NEWROOT$2" ] || : >"$NEWROOT$2"; fi
	mount --bind "$1" "$NEWROOT$2" || fail "bind $1 $2"
}
put() {
	mkdir -p "$(dirname "$NEWROOT$2")"
	rm -f "$NEWROOT$2"
	cp "$C/files/$1" "$NEWROOT$2" && chmod "$3" "$NEWROOT$2" || fail "file $2"
}
link() {
	mkdir -p "$(dirname "$NEWROOT$2")"
	rm -rf "$NEWROOT$2"
	ln -s "$1" "$NEWROOT$2" || fail "symlink $2"
}
`)
	for _, b := range v.opts.Binds {
		if !filepath.IsAbs(b.Host) || !filepath.IsAbs(b.Guest) {
			return nil, fmt.Errorf("bind %s:%s: paths must be absolute", b.Host, b.Guest)
		}
		st, err := os.Stat(b.Host)
		if err != nil {
			return nil, fmt.Errorf("bind: %w", err)
		}
		dir, base := b.Host, ""
		if !st.IsDir() {
			dir, base = filepath.Dir(b.Host), filepath.Base(b.Host)
		}
		tag, ok := tagOf[dir]
		if !ok {
			tag = fmt.Sprintf("s%d", len(tagOf))
			tagOf[dir] = tag
			shares = append(shares, share{tag, dir})
		}
		src := "$NEWROOT/run/strata-vm/9p/" + tag
		if base != "" {
			src += "/" + shellQuote(base)
		}
		fmt.Fprintf(&hook, "bind %s %s\n", src, shellQuote(b.Guest))
	}
	for i, f := range v.opts.Files {
		if !filepath.IsAbs(f.Path) {
			return nil, fmt.Errorf("file %s: path must be absolute", f.Path)
		}
		if f.Symlink != "" {
			fmt.Fprintf(&hook, "link %s %s\n", shellQuote(f.Symlink), shellQuote(f.Path))
			continue
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		name := fmt.Sprintf("f%d", i)
		if err := os.WriteFile(filepath.Join(conf, "files", name), f.Data, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(&hook, "put %s %s %o\n", name, shellQuote(f.Path), mode)
	}
	if v.opts.Hook != "" {
		hook.WriteString(v.opts.Hook)
		hook.WriteString("\n")
	}
	hook.WriteString("true\n")
	if err := os.WriteFile(filepath.Join(conf, "init.sh"), []byte(hook.String()), 0o644); err != nil {
		return nil, err
	}

	var tags []string
	for _, s := range shares {
		tags = append(tags, s.tag)
	}
	cmdline := []string{"console=ttyS0", "panic=-1", "net.ifnames=0", "mitigations=off", "systemd.log_color=0",
		"strata.root=vda", "strata.modules=vdb", "strata.hook=conf", "strata.9p=" + strings.Join(tags, ",")}
	if n := v.opts.Netns; n != nil && !v.opts.NetworkByRoot {
		cmdline = append(cmdline, fmt.Sprintf("strata.ip=%s/%d", n.GuestAddr, n.PrefixLen))
	}
	if v.opts.Append != "" {
		cmdline = append(cmdline, v.opts.Append)
	}
	args := []string{
		"-name", v.name,
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", fmt.Sprint(v.opts.CPUs), "-m", fmt.Sprint(v.opts.Memory),
		"-nographic", "-no-reboot", "-nodefaults", "-monitor", "none",
		"-serial", "file:" + v.console,
		"-kernel", filepath.Join(v.kernel, "vmlinuz"),
		"-initrd", filepath.Join(v.kernel, "initrd.img"),
		"-append", strings.Join(cmdline, " "),
		// vda: the root, vdb: the modules (PCI slots in this order).
		"-drive", "if=none,id=root,format=raw,readonly=on,file=" + root,
		"-device", "virtio-blk-pci,drive=root,serial=strata-root",
		"-drive", "if=none,id=modules,format=raw,readonly=on,file=" + filepath.Join(v.kernel, "modules.sqfs"),
		"-device", "virtio-blk-pci,drive=modules,serial=strata-modules",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=" + filepath.Join(v.workDir, "agent.sock") + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" + proto.PortName,
	}
	for _, s := range shares {
		args = append(args, "-virtfs", fmt.Sprintf("local,path=%s,mount_tag=%s,security_model=none,readonly=on", s.host, s.tag))
	}
	if n := v.opts.Netns; n != nil {
		args = append(args,
			"-netdev", "tap,id=net0,ifname="+n.Tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:99:02")
	}
	return args, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (v *VM) start(ctx context.Context, args []string) error {
	logf, err := os.Create(v.qemuLog)
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	if v.opts.Netns != nil {
		cmd = v.opts.Netns.Command(nil, append([]string{"qemu-system-x86_64"}, args...)...)
	} else {
		cmd = exec.Command("qemu-system-x86_64", args...)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	fmt.Fprintf(logf, "# %s\n", strings.Join(cmd.Args, " "))
	t0 := time.Now()
	d, err := harness.Start(cmd, syscall.SIGKILL, "")
	logf.Close()
	if err != nil {
		return fmt.Errorf("starting qemu: %w", err)
	}
	v.qemu = d

	deadline := t0.Add(v.opts.BootTimeout)
	bctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	// Connect to the agent's socket (qemu is the server).
	sock := filepath.Join(v.workDir, "agent.sock")
	var dialErr, bootErr error
	connected := func() bool {
		if v.conn, dialErr = net.Dial("unix", sock); dialErr == nil {
			return true
		}
		bootErr = v.bootProblem()
		return bootErr != nil
	}
	if err := harness.Until(bctx, 0, 20*time.Millisecond, nil, nil, connected); err != nil || bootErr != nil {
		if bootErr != nil {
			return bootErr
		}
		return fmt.Errorf("qemu's agent socket did not appear within %s: %v", v.opts.BootTimeout, dialErr)
	}
	go v.readLoop()

	// Ping until the agent answers.
	for {
		id := v.nextID.Add(1)
		ch := v.register(id)
		if err := v.send(proto.Request{ID: id, Op: proto.OpPing}); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		var got *proto.Response
		select {
		case r := <-ch:
			got = &r
		case <-time.After(time.Second):
		case <-v.qemu.Done():
		case <-v.connDone:
		}
		v.unregister(id)
		if got != nil {
			v.bootID = got.Pong
			break
		}
		if err := v.bootProblem(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent did not answer within %s", v.opts.BootTimeout)
		}
	}
	v.timing.Agent = time.Since(t0)

	res, err := v.Exec(bctx, Command{Args: []string{"systemctl", "is-system-running", "--wait"}})
	if err != nil {
		return fmt.Errorf("waiting for systemd: %w", err)
	}
	state := strings.TrimSpace(res.Stdout)
	v.timing.Running = time.Since(t0)
	switch {
	case state == "running":
	case state == "degraded" && v.opts.AllowDegraded:
		v.t.Logf("vm %s: degraded boot:\n%s", v.name, v.failedUnits())
	default:
		return fmt.Errorf("systemd is %q, not running:\n%s", state, v.failedUnits())
	}
	v.t.Logf("vm %s: booted (agent after %s, running after %s; prepare %s)", v.name,
		v.timing.Agent.Round(time.Millisecond), v.timing.Running.Round(time.Millisecond), v.timing.Prepare.Round(time.Millisecond))
	return nil
}

// bootProblem says whether the boot has failed for good.
func (v *VM) bootProblem() error {
	if v.qemu.Exited() {
		return fmt.Errorf("qemu exited during boot (%v): %s", v.qemu.Err(), harness.Tail(v.qemuLog, 10))
	}
	b, _ := os.ReadFile(v.console)
	for _, marker := range []string{"STRATA-VM-INIT-FAILED", "Kernel panic", "end Kernel panic"} {
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			line := b[i:]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			return fmt.Errorf("the guest failed to boot: %s", strings.TrimSpace(string(line)))
		}
	}
	return nil
}

func (v *VM) failedUnits() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	for _, a := range [][]string{
		{"systemctl", "--failed", "--no-legend", "--plain"},
		{"journalctl", "-b", "-p", "warning", "--no-pager", "-n", "40"},
	} {
		if r, err := v.Exec(ctx, Command{Args: a}); err == nil {
			fmt.Fprintf(&b, "$ %s\n%s%s", strings.Join(a, " "), r.Stdout, r.Stderr)
		}
	}
	return b.String()
}

func (v *VM) diagnose() string {
	return fmt.Sprintf("console log (%s), last lines:\n%s", v.console, harness.Tail(v.console, 60))
}

func (v *VM) register(id uint64) chan proto.Response {
	ch := make(chan proto.Response, 1)
	v.mu.Lock()
	v.pending[id] = ch
	v.mu.Unlock()
	return ch
}

func (v *VM) unregister(id uint64) {
	v.mu.Lock()
	delete(v.pending, id)
	v.mu.Unlock()
}

func (v *VM) send(req proto.Request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	v.wmu.Lock()
	defer v.wmu.Unlock()
	_ = v.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err = v.conn.Write(b)
	return err
}

func (v *VM) readLoop() {
	defer close(v.connDone)
	r := bufio.NewReaderSize(v.conn, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			var resp proto.Response
			if jerr := json.Unmarshal(line, &resp); jerr == nil {
				v.mu.Lock()
				ch := v.pending[resp.ID]
				delete(v.pending, resp.ID)
				v.mu.Unlock()
				if ch != nil {
					ch <- resp
				}
			}
		}
		if err != nil {
			return
		}
	}
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

// Exec runs a command inside the VM and waits for it. A non-zero exit is not an error;
// a canceled context kills the command (its session) inside and returns ctx.Err().
func (v *VM) Exec(ctx context.Context, c Command) (*Result, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("vm: no command")
	}
	id := v.nextID.Add(1)
	ch := v.register(id)
	t0 := time.Now()
	if err := v.send(proto.Request{ID: id, Op: proto.OpExec, Args: c.Args, Env: c.Env, Dir: c.Dir, Stdin: c.Stdin}); err != nil {
		v.unregister(id)
		return nil, fmt.Errorf("vm %s: %q: %w", v.name, c.Args, err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return nil, fmt.Errorf("vm %s: %q: %s", v.name, c.Args, r.Error)
		}
		return &Result{Stdout: string(r.Stdout), Stderr: string(r.Stderr), ExitCode: r.ExitCode,
			Duration: time.Since(t0), InGuest: time.Duration(r.DurationNS)}, nil
	case <-ctx.Done():
		v.unregister(id)
		_ = v.send(proto.Request{ID: v.nextID.Add(1), Op: proto.OpCancel, Target: id})
		return nil, fmt.Errorf("vm %s: %q: %w", v.name, c.Args, ctx.Err())
	case <-v.qemu.Done():
		v.unregister(id)
		return nil, fmt.Errorf("vm %s: %q: qemu exited (%v)\n%s", v.name, c.Args, v.qemu.Err(), v.diagnose())
	case <-v.connDone:
		v.unregister(id)
		return nil, fmt.Errorf("vm %s: %q: the agent connection closed", v.name, c.Args)
	}
}

// Run runs args inside the VM.
func (v *VM) Run(ctx context.Context, args ...string) (*Result, error) {
	return v.Exec(ctx, Command{Args: args})
}

// MustRun runs args (bounded by 5 minutes), fails t unless they exit 0, and returns the
// trimmed stdout.
func (v *VM) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := v.Run(ctx, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("vm %s: %q: %s", v.name, args, r)
	}
	return strings.TrimSpace(r.Stdout)
}

// WriteFile writes a file inside the VM (creating its directory) with mode perm.
func (v *VM) WriteFile(guest string, data []byte, perm os.FileMode) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.Exec(ctx, Command{Args: []string{"sh", "-c",
		`set -e; mkdir -p "$(dirname "$1")"; umask 077; cat >"$1.strata-tmp"; chmod "$2" "$1.strata-tmp"; mv -f "$1.strata-tmp" "$1"`,
		"sh", guest, fmt.Sprintf("%o", perm)}, Stdin: data})
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		return fmt.Errorf("vm %s: write %s: %s", v.name, guest, r)
	}
	return nil
}

// ReadFile reads a file inside the VM.
func (v *VM) ReadFile(guest string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := v.Exec(ctx, Command{Args: []string{"cat", "--", guest}})
	if err != nil {
		return nil, err
	}
	if r.ExitCode != 0 {
		return nil, fmt.Errorf("vm %s: read %s: %s", v.name, guest, strings.TrimSpace(r.Stderr))
	}
	return []byte(r.Stdout), nil
}

// Close powers the VM off (systemctl poweroff inside, bounded by ShutdownTimeout), then
// kills qemu if it is still there and removes the work directory. Safe to call twice.
func (v *VM) Close() error {
	v.closeOnce.Do(func() { v.closeErr = v.close() })
	return v.closeErr
}

func (v *VM) close() error {
	var problems []string
	if v.qemu != nil && !v.qemu.Exited() {
		t0 := time.Now()
		if v.bootID != "" {
			// The agent answered: a clean power-off through systemd.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := v.Run(ctx, "systemctl", "--no-block", "poweroff")
			cancel()
			if err == nil || v.qemu.Exited() {
				select {
				case <-v.qemu.Done():
				case <-time.After(v.opts.ShutdownTimeout):
				}
			}
			if v.qemu.Exited() {
				v.t.Logf("vm %s: powered off in %s", v.name, time.Since(t0).Round(time.Millisecond))
			} else {
				problems = append(problems, fmt.Sprintf("no clean power-off within %s: qemu killed", v.opts.ShutdownTimeout))
			}
		}
		// A boot that failed before the agent answered has been reported already.
		v.qemu.Stop(syscall.SIGTERM, 5*time.Second)
	}
	if v.conn != nil {
		v.conn.Close()
	}
	if v.qemu != nil && !v.qemu.Exited() {
		problems = append(problems, fmt.Sprintf("qemu (pid %d) still running after SIGKILL", v.qemu.PID()))
	}
	if v.t.Failed() && v.workDir != "" {
		v.t.Logf("vm %s: console log tail:\n%s", v.name, harness.Tail(v.console, 80))
	}
	if v.workDir != "" && os.Getenv("STRATA_VM_KEEP") != "1" {
		if err := os.RemoveAll(v.workDir); err != nil {
			problems = append(problems, err.Error())
		}
	} else if v.workDir != "" {
		v.t.Logf("vm %s: kept %s", v.name, v.workDir)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
