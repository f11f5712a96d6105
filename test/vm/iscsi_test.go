//go:build vm

package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-project/strata/test/harness"
)

// The iSCSI end-to-end test: tgt (userspace target: tgtd + tgtadm) runs on the host
// inside the suite's network namespace, bound to 10.99.0.1:3260 only, and exports a
// copy of the testbed root's squashfs as a read-only LUN 1 (LUN 0 is tgt's controller),
// restricted to one initiator name and guarded by CHAP. The VM (root variant with
// open-iscsi, roots_test.go) runs a definition whose overlay's lower layer is an
// attach of kind iscsi; strata-helper iscsi-login/iscsi-logout do the rest.

const (
	iscsiTarget    = "iqn.2026-01.test.strata:images"
	iscsiInitiator = "iqn.2026-01.test.strata:node1"
	iscsiChapUser  = "node1"
	iscsiChapPass  = "chap-secret-0123456"
	iscsiQueue     = 8 // the definition's queue_depth (the default is 16)
	iscsiCredFile  = "/etc/credstore/iscsi-chap"
)

// ensureISCSIRoot builds the VM root variant with open-iscsi.
func ensureISCSIRoot(t *testing.T) string {
	return ensureRootVariant(t, "STRATA_VM_ISCSI_ROOT", "/var/lib/strata-vm/root-iscsi", "open-iscsi")
}

// tgtTarget is a tgtd in the namespace with its own management port.
type tgtTarget struct {
	d    *harness.Daemon
	port string // tgtd -C: /var/run/tgtd/socket.PORT
	log  string
}

func (g *tgtTarget) adm(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "tgtadm", append([]string{"-C", g.port, "--lld", "iscsi"}, args...)...)
}

// startTgt starts tgtd inside ns bound to ns.HostAddr:3260 and exports lunFile as a
// read-only LUN 1 of iscsiTarget, for iscsiInitiator only, with CHAP (iscsiChapUser).
func startTgt(t *testing.T, ns *Netns, lunFile string) *tgtTarget {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	if err := os.MkdirAll("/var/run/tgtd", 0o755); err != nil {
		t.Fatal(err)
	}
	g := &tgtTarget{port: strconv.Itoa(1000 + os.Getpid()%30000) /* tgtd -C: 1..32767 */, log: filepath.Join(t.TempDir(), "tgtd.log")}
	logf, err := os.Create(g.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(nil, "tgtd", "-f", "-C", g.port, "--iscsi", "portal="+ns.HostAddr+":3260")
	cmd.Stdout, cmd.Stderr = logf, logf
	d, err := harness.Start(cmd, syscall.SIGKILL, "")
	logf.Close()
	if err != nil {
		t.Fatalf("tgtd: %v", err)
	}
	g.d = d
	t.Cleanup(func() {
		// After the VM is gone (cleanups run last-in first-out). tgtd ignores SIGTERM
		// and 1.0.85's `tgtadm --op delete --mode system` answers "invalid request";
		// it keeps no state worth a clean shutdown (the LUN is read-only).
		g.d.Stop(syscall.SIGKILL, 5*time.Second)
		if g.d.Exited() {
			os.Remove("/var/run/tgtd/socket." + g.port)
			os.Remove("/var/run/tgtd/socket." + g.port + ".lock")
		}
	})
	answers := func() bool {
		_, err := g.adm(ctx, "--mode", "target", "--op", "show")
		return err == nil
	}
	if harness.Until(ctx, 15*time.Second, 50*time.Millisecond, d.Done(), d.Err, answers) != nil {
		t.Fatalf("tgtd did not answer on control port %s:\n%s", g.port, harness.Tail(g.log, 20))
	}
	steps := [][]string{
		{"--mode", "target", "--op", "new", "--tid", "1", "--targetname", iscsiTarget},
		{"--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1", "--backing-store", lunFile},
		{"--mode", "logicalunit", "--op", "update", "--tid", "1", "--lun", "1", "--params", "readonly=1"},
		{"--mode", "target", "--op", "bind", "--tid", "1", "--initiator-name", iscsiInitiator},
		{"--mode", "account", "--op", "new", "--user", iscsiChapUser, "--password", iscsiChapPass},
		{"--mode", "account", "--op", "bind", "--tid", "1", "--user", iscsiChapUser},
	}
	for _, s := range steps {
		if out, err := g.adm(ctx, s...); err != nil {
			t.Fatalf("tgtadm %v: %v: %s", s, err, out)
		}
	}
	show, _ := g.adm(ctx, "--mode", "target", "--op", "show")
	if !strings.Contains(show, "Readonly: Yes") || !strings.Contains(show, lunFile) {
		t.Fatalf("LUN 1 is not the read-only %s:\n%s", lunFile, show)
	}
	// Listening on the namespace's address only.
	tcp, err := ns.Run(ctx, "cat", "/proc/net/tcp")
	if err != nil || !strings.Contains(tcp, "0100630A:0CBC") {
		t.Fatalf("tgtd does not listen on %s:3260: %v\n%s", ns.HostAddr, err, tcp)
	}
	return g
}

// iscsiDefinition: an overlay over an attach of kind iscsi (LUN 1 of the tgt target).
func iscsiDefinition(name, host string, chap map[string]any) string {
	def := map[string]any{
		"name":    name,
		"command": "/usr/lib/systemd/systemd",
		"mount": map[string]any{
			"kind": "overlay",
			"overlay": map[string]any{
				"lower": []any{map[string]any{
					"kind": "attach",
					"attach": map[string]any{
						"fs_type":       "squashfs",
						"mount_options": []string{"ro"},
						"attach": map[string]any{
							"kind": "iscsi",
							"iscsi": map[string]any{
								"initiator":   iscsiInitiator,
								"target":      iscsiTarget,
								"host":        host,
								"lun":         1,
								"queue_depth": iscsiQueue,
								"chap":        chap,
							},
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

// iscsiSessions is `iscsiadm -m session` ("" when there is none: exit 21).
func (e *rbdEnv) iscsiSessions() string {
	e.t.Helper()
	out, code, _ := e.try(time.Minute, "iscsiadm", "-m", "session")
	if code == 21 || strings.Contains(out, "No active sessions") {
		return ""
	}
	if code != 0 {
		e.t.Fatalf("iscsiadm -m session: exit %d: %s", code, out)
	}
	return out
}

// checkISCSIReleased: no session, no link, no SCSI disk, nothing mounted from one.
func (e *rbdEnv) checkISCSIReleased() {
	e.t.Helper()
	e.waitReleased(2 * time.Minute)
	var s string
	if harness.Poll(30*time.Second, 200*time.Millisecond, func() bool { s = e.iscsiSessions(); return s == "" }) != nil {
		e.t.Errorf("iSCSI session left after stop:\n%s", s)
	}
	if out := e.must("sh", "-c", "find /run/strata/dev -mindepth 1 2>/dev/null || true"); out != "" {
		e.t.Errorf("/run/strata/dev after stop:\n%s", out)
	}
	if out := e.must("sh", "-c", "ls /sys/block | grep '^sd' || true"); out != "" {
		e.t.Errorf("SCSI disks left after stop: %s", out)
	}
	if out := e.must("sh", "-c", "grep -E ' /dev/sd| /run/strata/' /proc/self/mountinfo || true"); out != "" {
		e.t.Errorf("still mounted after stop:\n%s", out)
	}
}

// TestISCSI: a container whose root's lower layer is a read-only iSCSI LUN served by tgt
// in the namespace, logged in by strata-helper with CHAP from a systemd credential.
func TestISCSI(t *testing.T) {
	t0 := time.Now()
	rootImg := ensureISCSIRoot(t)
	t.Logf("open-iscsi root ready in %s", time.Since(t0).Round(time.Millisecond))

	ctx := ctxFor(t, 10*time.Minute)
	ns, err := NewNetns(ctx)
	if err != nil {
		t.Fatalf("network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	// The LUN's backing file: a copy of the testbed root's squashfs (the image tgt
	// could write to if the LUN were not read-only is never the shared one).
	lun := filepath.Join(t.TempDir(), "lun1.sqfs")
	copyFile(t, rootSqfs, lun)
	t1 := time.Now()
	tgt := startTgt(t, ns, lun)
	t.Logf("tgtd on %s:3260 (control port %s) exporting %s as read-only LUN 1: %s", ns.HostAddr, tgt.port, rootSqfs, time.Since(t1).Round(time.Millisecond))

	vm, err := Boot(t, Options{RootImage: rootImg, Netns: ns, Binds: strataBinds()})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	t.Logf("boot: %+v", vm.Timing())
	e := &rbdEnv{t: t, ns: ns, vm: vm}
	e.must("timeout", "10", "bash", "-c", "exec 3<>/dev/tcp/"+ns.HostAddr+"/3260")
	e.must("modprobe", "iscsi_tcp")
	e.must("systemctl", "start", "iscsid.socket")
	e.must("install", "-d", "-m", "0700", "/etc/credstore")
	if err := vm.WriteFile(iscsiCredFile, []byte(iscsiChapPass), 0o600); err != nil {
		t.Fatal(err)
	}
	initiatorFile := e.must("cat", "/etc/iscsi/initiatorname.iscsi")

	t.Run("Credential", func(t *testing.T) {
		e.t = t
		e.define(map[string]string{"isc": iscsiDefinition("isc", ns.HostAddr,
			map[string]any{"username": iscsiChapUser, "credential": iscsiCredFile})})
		d := e.startContainer("isc")
		t.Logf("start (discovery, CHAP login, mounts, nested boot): %s", d.Round(time.Millisecond))

		sess := e.iscsiSessions()
		if !strings.Contains(sess, iscsiTarget) || !strings.Contains(sess, ns.HostAddr+":3260") || strings.Count(sess, "\n") > 0 {
			t.Errorf("iscsiadm -m session: %q, want one session to %s at %s:3260", sess, iscsiTarget, ns.HostAddr)
		}
		links := trimLines(e.must("sh", "-c", "ls /run/strata/dev"))
		if len(links) != 1 || !strings.HasPrefix(links[0], "iscsi_lun1_") {
			t.Fatalf("/run/strata/dev: %v, want one iscsi_lun1_* link", links)
		}
		link := "/run/strata/dev/" + links[0]
		dev := e.must("readlink", "-f", link)
		if !strings.HasPrefix(dev, "/dev/sd") {
			t.Fatalf("%s -> %q, not a SCSI disk", link, dev)
		}
		blk := filepath.Base(dev)
		t.Logf("%s -> %s", link, dev)
		if qd := e.must("cat", "/sys/block/"+blk+"/device/queue_depth"); qd != strconv.Itoa(iscsiQueue) {
			t.Errorf("queue_depth of %s = %s, want %d (the definition's)", blk, qd, iscsiQueue)
		}
		if ro := e.must("cat", "/sys/block/"+blk+"/ro"); ro != "1" {
			t.Errorf("%s is not read-only (ro=%s): the target's readonly LUN", blk, ro)
		}
		sched := e.must("cat", "/sys/block/"+blk+"/queue/scheduler")
		if !strings.Contains(sched, "[mq-deadline]") {
			t.Errorf("scheduler of %s: %q, want [mq-deadline]", blk, sched)
		}
		// The LUN is the image: same size as the exported file.
		size := e.must("blockdev", "--getsize64", dev)
		if st, err := os.Stat(lun); err != nil || size != strconv.FormatInt(st.Size(), 10) {
			t.Errorf("%s has %s bytes, the LUN file %v", dev, size, st.Size())
		}
		lower := e.must("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-S", dev)
		if !strings.Contains(lower, "squashfs") || !strings.Contains(lower, "ro") {
			t.Errorf("%s is mounted as: %q", dev, lower)
		}
		layer := e.must("findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", "/var/lib/machines/isc")
		if !strings.HasPrefix(layer, "overlay overlay") {
			t.Errorf("/var/lib/machines/isc: %s", layer)
		}
		e.checkMachineRunning("isc")
		// The target saw the definition's initiator name (the helper's own iface), not
		// /etc/iscsi/initiatorname.iscsi's, and the ACL only admits that one.
		show, _ := tgt.adm(ctx, "--mode", "target", "--op", "show")
		if !strings.Contains(show, "Initiator: "+iscsiInitiator) {
			t.Errorf("tgt's I_T nexus does not show %s:\n%s", iscsiInitiator, show)
		}
		if after := e.must("cat", "/etc/iscsi/initiatorname.iscsi"); after != initiatorFile {
			t.Errorf("/etc/iscsi/initiatorname.iscsi changed:\n%s\n->\n%s", initiatorFile, after)
		}
		// The CHAP password stays out of the journal and the command lines.
		if j := e.journal(); strings.Contains(j, iscsiChapPass) {
			t.Errorf("the CHAP password appears in the journal")
		}
		if u := e.must("sh", "-c", "systemctl cat 'strata-attach@*'"); strings.Contains(u, iscsiChapPass) {
			t.Errorf("the CHAP password appears in the attach unit")
		}
		if j := e.journal("strata-attach@*"); !strings.Contains(j, "is "+dev) {
			t.Errorf("the attach unit's journal does not show the helper's login to %s:\n%s", dev, j)
		}

		_, code, d := e.try(3*time.Minute, "systemctl", "stop", "systemd-nspawn@isc.service")
		if code != 0 {
			t.Fatalf("stop failed:\n%s", e.journal())
		}
		t.Logf("stop: %s", d.Round(time.Millisecond))
		e.checkISCSIReleased()
		if j := e.journal("strata-attach@*"); !strings.Contains(j, "logged out of "+iscsiTarget) {
			t.Errorf("the attach unit's journal does not show the helper's logout:\n%s", j)
		}
		if show, _ := tgt.adm(ctx, "--mode", "target", "--op", "show"); strings.Contains(show, "Initiator: ") {
			t.Errorf("tgt still has a nexus after stop:\n%s", show)
		}
		if out := e.must("sh", "-c", "find /etc/iscsi/nodes /var/lib/iscsi/nodes -type f 2>/dev/null || true"); out != "" {
			t.Logf("node records left after logout (the helper deletes them):\n%s", out)
			t.Errorf("node records left after logout")
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		e.t = t
		// The inline password form, with a password the target does not accept.
		e.define(map[string]string{"bad": iscsiDefinition("bad", ns.HostAddr,
			map[string]any{"username": iscsiChapUser, "password": "not-the-chap-secret"})})
		out, code, d := e.try(4*time.Minute, "systemctl", "start", "systemd-nspawn@bad.service")
		t.Logf("systemctl start failed after %s (exit %d): %s", d.Round(time.Millisecond), code, out)
		if code == 0 {
			t.Fatalf("start with a wrong CHAP password succeeded")
		}
		ast, _, _ := e.try(time.Minute, "systemctl", "status", "--no-pager", "-l", "--lines=20", "strata-attach@*")
		t.Logf("attach unit status:\n%s", ast)
		if !strings.Contains(ast, "CHAP authentication failed") {
			t.Errorf("the attach unit's status does not name the CHAP failure:\n%s", ast)
		}
		if strings.Contains(ast, "not-the-chap-secret") {
			t.Errorf("the password appears in the status")
		}
		e.checkISCSIReleased()
		e.must("systemctl", "reset-failed")
	})
	t.Logf("TestISCSI: %s", time.Since(t0).Round(time.Second))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(fmt.Errorf("copy %s: %w", from, err))
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
