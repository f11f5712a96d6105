package vm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// Cluster is a throwaway single-node Ceph cluster (one mon, one memstore OSD)
// started by test/ceph/cluster.sh inside a Netns, bound to Netns.HostAddr: the VM
// reaches it over its tap device, nothing outside the namespace can.
//
// cluster.sh binds 127.0.0.1. When it honours $CEPH_BIND_ADDR (the change this suite
// asks for, see README.md) it is run as it is; until then a copy with 127.0.0.1
// replaced by the namespace's address is run from the cluster's directory.
type Cluster struct {
	Dir   string
	Netns *Netns
	Env   map[string]string // what cluster.sh start printed (CEPH_CONF, CEPH_MON_V1, ...)

	script string
}

// ClusterScript is test/ceph/cluster.sh ($STRATA_CEPH_CLUSTER_SH overrides).
func ClusterScript() string {
	if v := os.Getenv("STRATA_CEPH_CLUSTER_SH"); v != "" {
		return v
	}
	return filepath.Join(ScriptsDir(), "..", "ceph", "cluster.sh")
}

// StartCluster starts a cluster in dir (which must not hold one yet) inside ns and waits
// until it is ready (OSD up, pool rbd initialised, PGs active+clean).
func StartCluster(ctx context.Context, ns *Netns, dir string) (*Cluster, error) {
	src := ClusterScript()
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("ceph cluster: %w (test/ceph/cluster.sh is needed)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Netns: ns, script: src}
	if !strings.Contains(string(b), "CEPH_BIND_ADDR") {
		// Stopgap: the script's only address is 127.0.0.1.
		c.script = filepath.Join(dir, "cluster-netns.sh")
		patched := strings.ReplaceAll(string(b), "127.0.0.1", ns.HostAddr)
		if err := os.WriteFile(c.script, []byte(patched), 0o755); err != nil {
			return nil, err
		}
	}
	out, err := c.scriptCmd(ctx, "start", filepath.Join(dir, "c"), "--owner", strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ceph cluster: %s start: %w\n%s", c.script, err, out)
	}
	c.Env = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "CEPH_") {
			c.Env[k] = v
		}
	}
	if c.Env["CEPH_CONF"] == "" || !strings.HasPrefix(c.Env["CEPH_MON_V1"], ns.HostAddr+":") {
		c.Stop(context.Background())
		return nil, fmt.Errorf("ceph cluster: unexpected output of cluster.sh start (mon not on %s?):\n%s", ns.HostAddr, out)
	}
	return c, nil
}

// scriptCmd runs cluster.sh (or its patched copy) inside the namespace, with
// CEPH_BIND_ADDR set to the namespace's address.
func (c *Cluster) scriptCmd(ctx context.Context, args ...string) *exec.Cmd {
	return c.Netns.Command(ctx, append([]string{"env", "CEPH_BIND_ADDR=" + c.Netns.HostAddr, c.script}, args...)...)
}

// MonV1 is the mon's msgr v1 address (ip:port): what the kernel client uses by default.
func (c *Cluster) MonV1() string { return c.Env["CEPH_MON_V1"] }

// Keyring is the keyring file of a user (admin, strata-node, strata-build).
func (c *Cluster) Keyring(user string) string {
	return filepath.Join(c.Dir, "c", "client."+user+".keyring")
}

// Key returns the cephx secret (base64) of a user from its keyring.
func (c *Cluster) Key(user string) (string, error) {
	b, err := os.ReadFile(c.Keyring(user))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && strings.TrimSpace(k) == "key" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no key in %s", c.Keyring(user))
}

// Ceph runs the ceph CLI as client.admin inside the namespace.
func (c *Cluster) Ceph(ctx context.Context, args ...string) (string, error) {
	return c.Netns.Run(ctx, append([]string{"ceph", "-c", c.Env["CEPH_CONF"], "-n", "client.admin",
		"--keyring", c.Keyring("admin"), "--connect-timeout", "15"}, args...)...)
}

// RBD runs the rbd CLI as client.admin inside the namespace.
func (c *Cluster) RBD(ctx context.Context, args ...string) (string, error) {
	return c.Netns.Run(ctx, append([]string{"rbd", "-c", c.Env["CEPH_CONF"], "-n", "client.admin",
		"--keyring", c.Keyring("admin")}, args...)...)
}

// Stop stops the daemons (cluster.sh stop) and checks that none is left.
func (c *Cluster) Stop(ctx context.Context) error {
	b, err := c.scriptCmd(ctx, "stop", filepath.Join(c.Dir, "c")).CombinedOutput()
	out := strings.TrimSpace(string(b))
	if err != nil {
		return fmt.Errorf("ceph cluster: stop: %w: %s", err, out)
	}
	if left := c.processes(); len(left) > 0 {
		return fmt.Errorf("ceph cluster: still running after stop: %s", strings.Join(left, "; "))
	}
	return nil
}

// Start starts the daemons of a stopped cluster again (cluster.sh start on its
// directory). Memstore keeps no data across a restart: images are gone.
func (c *Cluster) Start(ctx context.Context) error {
	out, err := c.scriptCmd(ctx, "start", filepath.Join(c.Dir, "c"), "--owner", strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ceph cluster: restart: %w\n%s", err, out)
	}
	return nil
}

// processes lists the processes whose command line names this cluster's directory.
func (c *Cluster) processes() []string {
	var left []string
	ents, _ := os.ReadDir("/proc")
	dir := filepath.Join(c.Dir, "c")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cl, dir+"/") || strings.Contains(cl, dir+" ") {
			left = append(left, e.Name()+": "+strings.TrimSpace(cl))
		}
	}
	return left
}

// waitGone waits until no process of the cluster is left.
func (c *Cluster) waitGone(timeout time.Duration) []string {
	var left []string
	_ = harness.Poll(timeout, 50*time.Millisecond, func() bool { left = c.processes(); return len(left) == 0 })
	return left
}
