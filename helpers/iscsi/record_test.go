//go:build linux

package iscsi

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSetRecordValue(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "default")
	os.WriteFile(file, []byte("# BEGIN RECORD 2.1.8\nnode.name = x\nnode.session.auth.password = old\nnode.session.auth.password = older\n# END RECORD\n"), 0o644)
	if err := setRecordValue(file, passwordKey, "p w#=x"); err != nil {
		t.Fatal(err)
	}
	got := readString(file)
	if got != "# BEGIN RECORD 2.1.8\nnode.name = x\nnode.session.auth.password = p w#=x\n# END RECORD\n" {
		t.Errorf("record:\n%s", got)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if recordField(got, passwordKey) != "p w#=x" {
		t.Errorf("field %q", recordField(got, passwordKey))
	}
	// A record without END gets the line appended.
	os.WriteFile(file, []byte("node.name = x\n"), 0o600)
	setRecordValue(file, passwordKey, "s")
	if got := readString(file); got != "node.name = x\nnode.session.auth.password = s\n" {
		t.Errorf("record:\n%s", got)
	}
}

func TestRecordFilesBothLayouts(t *testing.T) {
	m := &Manager{ConfigRoot: t.TempDir()}
	p := portal{addr: netip.MustParseAddr("fd00::5"), port: 3260}
	nodes := filepath.Join(m.ConfigRoot, "nodes", tgt)
	os.MkdirAll(filepath.Join(nodes, "fd00:0:0::5,3260,1"), 0o700)
	os.WriteFile(filepath.Join(nodes, "fd00:0:0::5,3260,1", "strata-x"), nil, 0o600)
	os.WriteFile(filepath.Join(nodes, "fd00:0:0::5,3260,1", "default"), nil, 0o600)
	os.MkdirAll(filepath.Join(nodes, "fd00::5,3261,1"), 0o700)
	os.WriteFile(filepath.Join(nodes, "fd00::5,3261,1", "strata-x"), nil, 0o600)
	got, err := m.recordFiles(tgt, p, "strata-x")
	if err != nil || len(got) != 1 || got[0] != filepath.Join(nodes, "fd00:0:0::5,3260,1", "strata-x") {
		t.Errorf("dir layout: %q %v", got, err)
	}
	// The old layout: ADDR,PORT is the record itself, for every iface.
	os.WriteFile(filepath.Join(nodes, "fd00::5,3260"), nil, 0o600)
	got, _ = m.recordFiles(tgt, p, "strata-y")
	if len(got) != 1 || got[0] != filepath.Join(nodes, "fd00::5,3260") {
		t.Errorf("file layout: %q", got)
	}
}

// lockDB waits for iscsiadm's lock.write link like iscsiadm, and goes ahead
// after the time-out.
func TestLockDB(t *testing.T) {
	var logs []string
	m := &Manager{LockDir: filepath.Join(t.TempDir(), "iscsi"), LockTimeout: 2 * time.Second, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
	unlock, err := m.lockDB()
	if err != nil {
		t.Fatal(err)
	}
	write := filepath.Join(m.LockDir, "lock.write")
	if _, err := os.Lstat(write); err != nil {
		t.Fatalf("lock.write: %v", err)
	}
	waiting := make(chan struct{})
	var once sync.Once
	m.lockBusy = func() { once.Do(func() { close(waiting) }) }
	got := make(chan time.Time, 1)
	go func() {
		u, _ := m.lockDB()
		at := time.Now()
		u() // before the send: the checks below must see it released
		got <- at
	}()
	<-waiting // the second lockDB found the lock held
	released := time.Now()
	unlock()
	if at := <-got; at.Before(released) {
		t.Error("second lock taken while the first was held")
	}
	if _, err := os.Lstat(write); !os.IsNotExist(err) {
		t.Errorf("lock.write left: %v", err)
	}
	// A stale lock.write (a dead iscsiadm): go ahead after LockTimeout.
	os.Link(filepath.Join(m.LockDir, "lock"), write)
	m.LockTimeout = 100 * time.Millisecond
	start := time.Now()
	u, err := m.lockDB()
	if err != nil || time.Since(start) < 100*time.Millisecond || !strings.Contains(strings.Join(logs, "\n"), "going ahead as iscsiadm does") {
		t.Errorf("stale lock: %v after %s, logs %q", err, time.Since(start), logs)
	}
	u()
}

// TestPasswordReadByRealIscsiadm is the evidence for writing the CHAP
// password into the node record: with Debian's real iscsiadm, a record it
// created gets the password from writePassword, iscsiadm reads it back
// (-S shows masked values), masks it otherwise, and keeps it when it
// rewrites the record for another update. It uses the real /etc/iscsi
// (iscsiadm's paths are compiled in) with a target name of its own, and
// removes the record afterwards. Needs root and open-iscsi; no iscsid, no
// kernel module (this machine has no iscsi_tcp, so discovery and login
// themselves are for the VM suite).
func TestPasswordReadByRealIscsiadm(t *testing.T) {
	bin, err := exec.LookPath("iscsiadm")
	if err != nil {
		bin = "/usr/sbin/iscsiadm"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("open-iscsi is not installed")
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (iscsiadm's database)")
	}
	target := fmt.Sprintf("iqn.2024-01.org.strata-project.test:record-%d", os.Getpid())
	p := "127.0.0.1:3260"
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("iscsiadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	node := []string{"-m", "node", "-T", target, "-p", p}
	run(append(node, "-o", "new")...)
	t.Cleanup(func() {
		exec.Command(bin, append(node, "-o", "delete")...).Run()
		os.RemoveAll(filepath.Join("/etc/iscsi/nodes", target))
	})
	run(append(node, "-o", "update", "-n", "node.session.auth.authmethod", "-v", "CHAP", "-n", "node.session.auth.username", "-v", "node1")...)

	pw := randomPassword(t) + " with #spaces= inside"
	m := &Manager{}
	addr := netip.MustParseAddr("127.0.0.1")
	if err := m.writePassword(target, portal{addr: addr, port: 3260}, "default", pw); err != nil {
		t.Fatal(err)
	}
	files, _ := m.recordFiles(target, portal{addr: addr, port: 3260}, "default")
	if len(files) != 1 {
		t.Fatalf("records %q", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v", fi.Mode().Perm())
	}
	shown := run(append(node, "-S")...)
	if !strings.Contains(shown, "node.session.auth.password = "+pw+"\n") {
		t.Errorf("iscsiadm -S does not read the password back:\n%s", grep(shown, "auth"))
	}
	masked := run(node...)
	if !strings.Contains(masked, "node.session.auth.password = ********\n") || strings.Contains(masked, pw) {
		t.Errorf("iscsiadm does not mask it:\n%s", grep(masked, "auth"))
	}
	// iscsiadm rewrites the whole record on an update: the password stays.
	run(append(node, "-o", "update", "-n", "node.session.cmds_max", "-v", "64")...)
	shown = run(append(node, "-S")...)
	if !strings.Contains(shown, "node.session.auth.password = "+pw+"\n") || !strings.Contains(shown, "node.session.cmds_max = 64\n") {
		t.Errorf("after an update:\n%s", grep(shown, "auth|cmds_max"))
	}
}

func grep(text, words string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, w := range strings.Split(words, "|") {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
