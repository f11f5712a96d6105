//go:build linux

package iscsi

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNode runs Manager against testdata/iscsiadm (put first on $PATH) and
// a fake tree: sys/, dev/, etc/iscsi/, run/.
type fakeNode struct {
	t    *testing.T
	root string // FAKE_ISCSI_ROOT
	log  string // FAKE_ISCSI_LOG
	m    *Manager

	mu   sync.Mutex
	logs []string
}

const (
	tgt  = "iqn.2003-01.org.linux-iscsi.server:images"
	ini  = "iqn.2024-01.org.example:node1"
	addr = "10.0.0.5"
)

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{t: t, root: t.TempDir(), log: t.TempDir()}
	bin := t.TempDir()
	script, err := os.ReadFile(filepath.Join("testdata", "iscsiadm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "iscsiadm"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAKE_ISCSI_ROOT", f.root)
	t.Setenv("FAKE_ISCSI_LOG", f.log)
	f.m = &Manager{
		SysfsRoot:  filepath.Join(f.root, "sys"),
		DevRoot:    filepath.Join(f.root, "dev"),
		ConfigRoot: filepath.Join(f.root, "etc", "iscsi"),
		LockDir:    filepath.Join(f.root, "run", "lock", "iscsi"),
		StateDir:   filepath.Join(f.root, "run", "strata", "iscsi"),
		// The fake makes a real block node when it may, else a regular file.
		IsBlockDevice: func(p string) (bool, error) {
			fi, err := os.Stat(p)
			if err != nil {
				return false, err
			}
			return fi.Mode()&os.ModeDevice != 0 || fi.Mode().IsRegular(), nil
		},
		DeviceTimeout: 3 * time.Second,
		LinkGrace:     100 * time.Millisecond,
		Logf: func(format string, args ...any) {
			f.mu.Lock()
			f.logs = append(f.logs, fmt.Sprintf(format, args...))
			f.mu.Unlock()
		},
	}
	f.control("targets", addr+":3260,1 "+tgt+"\n"+addr+":3260,1 iqn.2003-01.org.linux-iscsi.server:other\n")
	return f
}

// control writes one of the fake's control files (fake/NAME).
func (f *fakeNode) control(name, content string) {
	f.t.Helper()
	dir := filepath.Join(f.root, "fake")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeNode) uncontrol(name string) { os.Remove(filepath.Join(f.root, "fake", name)) }

// call is one recorded iscsiadm run.
type call struct {
	argv  []string
	env   []string
	stdin string
}

func (f *fakeNode) calls() []call {
	f.t.Helper()
	n, _ := strconv.Atoi(strings.TrimSpace(readString(filepath.Join(f.log, "count"))))
	var out []call
	for i := 1; i <= n; i++ {
		c := call{
			argv:  splitNUL(readString(filepath.Join(f.log, fmt.Sprintf("%d.argv", i)))),
			env:   splitNUL(readString(filepath.Join(f.log, fmt.Sprintf("%d.env", i)))),
			stdin: readString(filepath.Join(f.log, fmt.Sprintf("%d.stdin", i))),
		}
		out = append(out, c)
	}
	return out
}

// argvs are the calls' argument lists joined by spaces, from call from on.
func (f *fakeNode) argvs(from int) []string {
	var out []string
	for i, c := range f.calls() {
		if i >= from {
			out = append(out, strings.Join(c.argv, " "))
		}
	}
	return out
}

func (f *fakeNode) ncalls() int { return len(f.calls()) }

func (f *fakeNode) logText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.logs, "\n")
}

func (f *fakeNode) sys(parts ...string) string {
	return filepath.Join(append([]string{f.root, "sys"}, parts...)...)
}

func (f *fakeNode) record(iface, tpgtDir string) string {
	return filepath.Join(f.root, "etc", "iscsi", "nodes", tgt, tpgtDir, iface)
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func splitNUL(s string) []string {
	s = strings.TrimSuffix(s, "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

func target(lun int) Target {
	return Target{Host: addr, Port: 3260, Target: tgt, LUN: lun, Initiator: ini, MaxCommands: 128, QueueDepth: 16, Scheduler: "mq-deadline"}
}

// randomPassword is a CHAP secret no fixture could contain by chance.
func randomPassword(t *testing.T) string {
	const abc = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var b strings.Builder
	for i := 0; i < 20; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(abc))))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteByte(abc[n.Int64()])
	}
	return b.String()
}

// needles are the password and every 8-byte piece of it.
func needles(secret string) []string {
	out := []string{secret}
	for i := 0; i+8 <= len(secret); i++ {
		out = append(out, secret[i:i+8])
	}
	return out
}

func leaks(text, secret string) bool {
	for _, n := range needles(secret) {
		if strings.Contains(text, n) {
			return true
		}
	}
	return false
}

// assertNoLeak checks argv, environment and stdin of every iscsiadm run,
// the Manager's log and err for the password.
func (f *fakeNode) assertNoLeak(secret string, err error) {
	f.t.Helper()
	for i, c := range f.calls() {
		for what, text := range map[string]string{"argv": strings.Join(c.argv, "\x00"), "environment": strings.Join(c.env, "\x00"), "stdin": c.stdin} {
			if leaks(text, secret) {
				f.t.Errorf("iscsiadm call %d: the CHAP password is in its %s", i+1, what)
			}
		}
	}
	if leaks(f.logText(), secret) {
		f.t.Errorf("the CHAP password is in the log:\n%s", f.logText())
	}
	if err != nil && leaks(err.Error(), secret) {
		f.t.Errorf("the CHAP password is in the error: %v", err)
	}
}

// assertNoPasswordOnDisk checks no file of the fake tree holds the password
// (after a logout, or a failed login, the node record is gone).
func (f *fakeNode) assertNoPasswordOnDisk(secret string) {
	f.t.Helper()
	filepath.WalkDir(f.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && leaks(readString(p), secret) {
			f.t.Errorf("the CHAP password is in %s", p)
		}
		return nil
	})
}

func sortedGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	sort.Strings(m)
	return m
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
