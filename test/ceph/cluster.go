// Package ceph starts a throwaway single-node Ceph cluster for tests: one
// mon, one memstore OSD (and optionally a mgr) on 127.0.0.1 with cephx on,
// made by cluster.sh beside this file. Start installs what is missing
// (setup-host.sh), starts the cluster, waits until pool "rbd" is ready and
// registers a cleanup that stops it by PID and checks that its processes
// are gone, even when the test fails. A cluster that cannot start fails the
// test with the reason: it never skips.
//
// It needs root (the daemons, apt-get). It does not import go-ceph: tests
// that talk to the cluster through librbd do that themselves.
package ceph

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// User is a cephx user of the cluster.
type User struct {
	ID      string // without "client.": "admin", "strata-build", "strata-node"
	Keyring string // a keyring file holding only this user's key
	Key     string // the key itself (base64)
}

// Name is "client." + ID.
func (u User) Name() string { return "client." + u.ID }

// Cluster is a running throwaway cluster.
type Cluster struct {
	Dir  string // holds everything: conf, keyrings, daemon data, logs, PIDs
	Conf string // ceph.conf; its keyring setting finds each user's keyring
	// MonHost is the conf's mon_host: [v2:127.0.0.1:P2,v1:127.0.0.1:P1].
	MonHost string
	// MonV1 and MonV2 are the monitor's addresses, ip:port (v1 is what the
	// kernel client speaks by default).
	MonV1, MonV2 string
	// Monitors are the addresses to give clients: MonHost as one entry.
	Monitors []string
	FSID     string
	Pool     string // "rbd", ready for images
	// Admin may do anything; Build has osd 'profile rbd pool=rbd' (makes
	// images); Node has osd 'profile rbd-read-only pool=rbd' (what a node
	// needs to map images read-only). All have mon 'profile rbd' or more.
	Admin, Build, Node User

	env  map[string]string
	pids map[string]int
}

// Options change how Start makes the cluster.
type Options struct {
	Mgr           bool  // also run a mgr (~300 MiB more, ~1-2 s slower)
	MemstoreBytes int64 // the OSD's memstore (its data is in RAM); 1 GiB when 0
}

// ScriptDir is the directory holding cluster.sh and setup-host.sh.
func ScriptDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("test/ceph: cannot find its own source")
	}
	return filepath.Dir(file)
}

// Setup runs setup-host.sh: installs the Debian packages the cluster and
// the image tools need when they are missing.
func Setup(t testing.TB) {
	t.Helper()
	out, err := exec.Command(filepath.Join(ScriptDir(), "setup-host.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("test/ceph/setup-host.sh failed: %v\n%s", err, out)
	}
}

// Start starts a cluster for the test, with default Options.
func Start(t testing.TB) *Cluster { return StartWith(t, Options{}) }

// StartWith starts a cluster for the test. It fails the test (never skips)
// when the cluster cannot start, with cluster.sh's reason and the end of
// the daemons' logs.
func StartWith(t testing.TB, o Options) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("test/ceph: a Ceph test cluster needs root")
	}
	Setup(t)
	// Short: admin sockets live inside and a unix socket path has 107 bytes.
	dir, err := os.MkdirTemp("", "strata-ceph-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir}
	// Registered before starting: a half-started cluster is stopped too.
	t.Cleanup(func() { c.cleanup(t) })

	args := []string{"start", dir, "--owner", strconv.Itoa(os.Getpid())}
	if o.Mgr {
		args = append(args, "--mgr")
	}
	cmd := exec.Command(filepath.Join(ScriptDir(), "cluster.sh"), args...)
	cmd.Env = os.Environ()
	if o.MemstoreBytes > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("CEPH_MEMSTORE_BYTES=%d", o.MemstoreBytes))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("test/ceph: the cluster did not start (%v): %s\n%s", err, strings.TrimSpace(stderr.String()), c.logTails())
	}
	t.Logf("test/ceph: cluster ready in %s (%s)", time.Since(start).Round(time.Millisecond), dir)
	if err := c.load(stdout.Bytes()); err != nil {
		t.Fatalf("test/ceph: %v\n%s", err, stdout.String())
	}
	return c
}

func (c *Cluster) load(out []byte) error {
	c.env = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.HasPrefix(k, "CEPH_") {
			c.env[k] = v
		}
	}
	need := func(k string) string {
		v, ok := c.env[k]
		if !ok || v == "" {
			panic(fmt.Sprintf("cluster.sh printed no %s", k))
		}
		return v
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		c.Conf = need("CEPH_CONF")
		c.MonHost = need("CEPH_MON_HOST")
		c.MonV1 = need("CEPH_MON_V1")
		c.MonV2 = need("CEPH_MON_V2")
		c.Monitors = []string{c.MonHost}
		c.FSID = need("CEPH_FSID")
		c.Pool = need("CEPH_POOL")
		c.Admin = User{ID: need("CEPH_ADMIN_USER"), Keyring: need("CEPH_ADMIN_KEYRING")}
		c.Build = User{ID: need("CEPH_BUILD_USER"), Keyring: need("CEPH_BUILD_KEYRING")}
		c.Node = User{ID: need("CEPH_NODE_USER"), Keyring: need("CEPH_NODE_KEYRING")}
	}()
	if err != nil {
		return err
	}
	for _, u := range []*User{&c.Admin, &c.Build, &c.Node} {
		if u.Key, err = KeyringKey(u.Keyring); err != nil {
			return err
		}
	}
	c.pids = c.readPIDs()
	return nil
}

// KeyringKey reads the first "key = ..." of a keyring file.
func KeyringKey(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == "key" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s: no key", path)
}

// Env is the environment for Ceph's command-line tools to act as the
// admin on this cluster (CEPH_CONF set), on top of the test's own.
func (c *Cluster) Env() []string {
	return append(os.Environ(), "CEPH_CONF="+c.Conf)
}

// Command is a Ceph tool (ceph, rbd, rados, rbd-fuse, ...) run as
// client.admin on this cluster.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = c.Env()
	return cmd
}

// Run runs a Ceph tool as client.admin and fails the test when it fails.
func (c *Cluster) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := c.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// PIDs are the daemons' (and the watcher's) process ids, by name
// ("mon.a", "osd.0", "mgr.x", "watcher").
func (c *Cluster) PIDs() map[string]int {
	m := map[string]int{}
	for k, v := range c.pids {
		m[k] = v
	}
	return m
}

func (c *Cluster) readPIDs() map[string]int {
	m := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "run", "*.pid"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			m[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	return m
}

// Stop stops the cluster (OSD and mgr first, mon last) and checks that
// every process it started is gone. Cleanup calls it; calling it earlier
// is fine.
func (c *Cluster) Stop() error {
	if c.Dir == "" {
		return nil
	}
	pids := c.readPIDs()
	for k, v := range c.pids {
		if _, ok := pids[k]; !ok {
			pids[k] = v
		}
	}
	out, err := exec.Command(filepath.Join(ScriptDir(), "cluster.sh"), "stop", c.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster.sh stop: %v: %s", err, out)
	}
	var left []string
	for name, pid := range pids {
		if c.alive(pid) {
			left = append(left, fmt.Sprintf("%s (pid %d)", name, pid))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("still running after cluster.sh stop (killed now): %s", strings.Join(left, ", "))
	}
	return nil
}

// alive: pid runs and is one of this cluster's processes (its command
// line names the cluster's directory), not a PID reused since.
func (c *Cluster) alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(data) == 0 {
		return false // gone, or a zombie (being reaped)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return bytes.Contains(data, []byte(c.Dir))
}

func (c *Cluster) cleanup(t testing.TB) {
	if err := c.Stop(); err != nil {
		t.Errorf("test/ceph: stopping the cluster: %v", err)
	}
	if t.Failed() {
		t.Logf("test/ceph: the cluster's logs (kept in %s):\n%s", c.Dir, c.logTails())
		return
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("test/ceph: %v", err)
	}
}

// logTails is the end of each daemon's log, for failure messages.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, name := range []string{"mon.a", "osd.0", "mgr.x"} {
		for _, suffix := range []string{".out", ".log"} {
			data, err := os.ReadFile(filepath.Join(c.Dir, "log", name+suffix))
			if err != nil || len(bytes.TrimSpace(data)) == 0 {
				continue
			}
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			if len(lines) > 10 {
				lines = lines[len(lines)-10:]
			}
			fmt.Fprintf(&b, "--- %s%s:\n%s\n", name, suffix, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}
