package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// Netns is a private network namespace for one VM and its Ceph cluster:
// a bridge holding HostAddr and a tap device on it that qemu attaches to
// (-netdev tap). Nothing in it is routed anywhere: the VM reaches exactly the
// addresses that exist in this namespace.
//
// The namespace is held by a `sleep` process started with `unshare --net`
// (PR_SET_PDEATHSIG: it dies with the test process), not by a name under
// /run/netns: when its holder and the processes in it are gone, so is the
// namespace, and a crashed test leaves nothing behind.
type Netns struct {
	HostAddr  string // the bridge's address, e.g. 10.99.0.1: where Ceph listens
	GuestAddr string // the VM's eth0 address, e.g. 10.99.0.2
	PrefixLen int
	Bridge    string
	Tap       string

	holder *harness.Daemon
	path   string // /proc/PID/ns/net
	ident  string // "net:[INODE]": what /proc/*/ns/net of its processes read
}

// NewNetns creates the namespace with lo up, a bridge br0 with 10.99.0.1/24 and
// a tap device tap0 on it. The addresses exist only inside the namespace.
func NewNetns(ctx context.Context) (*Netns, error) {
	n := &Netns{HostAddr: "10.99.0.1", GuestAddr: "10.99.0.2", PrefixLen: 24, Bridge: "br0", Tap: "tap0"}
	cmd := exec.Command("unshare", "--net", "--", "sleep", "infinity")
	d, err := harness.Start(cmd, syscall.SIGKILL, "")
	if err != nil {
		return nil, fmt.Errorf("netns: unshare: %w", err)
	}
	n.holder = d
	n.path = "/proc/" + strconv.Itoa(d.PID()) + "/ns/net"
	own, _ := os.Readlink("/proc/self/ns/net")
	entered := func() bool {
		// unshare execs sleep once the namespace exists.
		l, err := os.Readlink(n.path)
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(d.PID()) + "/comm")
		if err == nil && l != own && string(comm) == "sleep\n" {
			n.ident = l
			return true
		}
		return false
	}
	if harness.Until(ctx, 10*time.Second, 5*time.Millisecond, d.Done(), func() error { return d.Err() }, entered) != nil {
		_ = n.Close()
		return nil, fmt.Errorf("netns: the holder did not enter a new network namespace")
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", n.Bridge, "type", "bridge"},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", n.HostAddr, n.PrefixLen), "dev", n.Bridge},
		{"ip", "link", "set", n.Bridge, "up"},
		{"ip", "tuntap", "add", "dev", n.Tap, "mode", "tap"},
		{"ip", "link", "set", n.Tap, "master", n.Bridge},
		{"ip", "link", "set", n.Tap, "up"},
	}
	for _, s := range steps {
		if out, err := n.Run(ctx, s...); err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("netns: %w: %s", err, out)
		}
	}
	return n, nil
}

// Path is the namespace's file (/proc/PID/ns/net) for nsenter --net=.
func (n *Netns) Path() string { return n.path }

// Command returns a command that runs inside the namespace (nsenter --net).
func (n *Netns) Command(ctx context.Context, args ...string) *exec.Cmd {
	a := append([]string{"--net=" + n.path, "--"}, args...)
	if ctx == nil {
		return exec.Command("nsenter", a...)
	}
	return exec.CommandContext(ctx, "nsenter", a...)
}

// Run runs a short command inside the namespace and returns its combined output.
func (n *Netns) Run(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "nsenter", append([]string{"--net=" + n.path, "--"}, args...)...)
}

// Processes lists the PIDs of the processes in the namespace.
func (n *Netns) Processes() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && l == n.ident {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Close kills the holder. The namespace disappears with the last process in it
// (qemu, Ceph): stop those first. Close reports any process still in it after a
// few seconds: something the test started was left behind.
func (n *Netns) Close() error {
	if n.holder != nil {
		n.holder.Stop(syscall.SIGKILL, time.Second)
	}
	if n.ident == "" {
		return nil
	}
	var left []int
	if harness.Poll(5*time.Second, 50*time.Millisecond, func() bool { left = n.Processes(); return len(left) == 0 }) == nil {
		return nil
	}
	var s []string
	for _, p := range left {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		s = append(s, fmt.Sprintf("%d: %s", p, strings.ReplaceAll(strings.TrimSpace(string(b)), "\x00", " ")))
	}
	return fmt.Errorf("netns %s: processes left in it: %s", n.ident, strings.Join(s, "; "))
}
