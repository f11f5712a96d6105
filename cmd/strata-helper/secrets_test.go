package main

// These tests run the real strata-helper binary, built here with
// CGO_ENABLED=0, for a full rbd-map/rbd-unmap and iscsi-login/iscsi-logout,
// with the secret read from each source (a field of the definition file, a
// keyring file, a credential directory). The kernel is played by the test
// (rbd) or by the fake iscsiadm (iSCSI) on a tree the helper is pointed at
// with STRATA_HELPER_TEST_ROOT. Every argv, every environment, the helper's
// output and the bytes written under the tree are searched for the secret
// and its fragments; one hit fails the test.

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-project/strata/helpers/contract"
	"golang.org/x/sys/unix"
)

var (
	buildOnce sync.Once
	helperBin string
	buildErr  error
)

// helper builds the static helper once per test run.
func helper(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-helper-bin")
		if err != nil {
			buildErr = err
			return
		}
		helperBin = filepath.Join(dir, "strata-helper")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", helperBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return helperBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if helperBin != "" {
		os.RemoveAll(filepath.Dir(helperBin))
	}
	os.Exit(code)
}

// The helper runs on diskless nodes at boot: no dynamic loader, no libc.
func TestHelperIsStatic(t *testing.T) {
	f, err := elf.Open(helper(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the helper has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the helper needs %v", libs)
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: block device nodes (mknod) and /proc of the helper")
	}
}

// cephxSecret is a random, well-formed cephx key (AES, 16 bytes).
func cephxSecret(t *testing.T) (string, []byte) {
	b := make([]byte, 12+16)
	binary.LittleEndian.PutUint16(b[0:], 1)
	if _, err := rand.Read(b[2:10]); err != nil { // creation time: random too
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[10:], 16)
	if _, err := rand.Read(b[12:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b), b[12:]
}

func chapSecret(t *testing.T) string {
	const abc = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var s strings.Builder
	for i := 0; i < 24; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(abc))))
		if err != nil {
			t.Fatal(err)
		}
		s.WriteByte(abc[n.Int64()])
	}
	return s.String()
}

// leakCheck holds the secret's needles: the whole and its fragments.
type leakCheck struct {
	t       *testing.T
	needles []string
}

func newLeakCheck(t *testing.T, secret string, window int, extra ...string) *leakCheck {
	l := &leakCheck{t: t, needles: append([]string{secret}, extra...)}
	for i := 0; i+window <= len(secret); i++ {
		l.needles = append(l.needles, secret[i:i+window])
	}
	return l
}

func (l *leakCheck) hit(text string) string {
	for _, n := range l.needles {
		if strings.Contains(text, n) {
			return n
		}
	}
	return ""
}

func (l *leakCheck) check(what, text string) {
	l.t.Helper()
	if n := l.hit(text); n != "" {
		l.t.Errorf("the secret (or the fragment %q) is in %s", n, what)
	}
}

// checkTree searches every regular file under dir, but the exempt ones
// (where the secret is meant to be).
func (l *leakCheck) checkTree(dir string, exempt ...string) {
	l.t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		for _, e := range exempt {
			if p == e {
				return nil
			}
		}
		b, _ := os.ReadFile(p)
		l.check(p, string(b))
		return nil
	})
}

// source is one place the secret comes from.
type source struct {
	name   string
	secret contract.Secret
	env    []string
	exempt string // the file holding it
}

// sources writes the secret where each source keeps it. field is the
// definition field path, id the keyring's client id.
func sources(t *testing.T, root, secretValue, field, id string) []source {
	t.Helper()
	def := filepath.Join(root, "etc", "strata", "test.json")
	os.MkdirAll(filepath.Dir(def), 0o755)
	// The field path names nested objects and one list index.
	var body string
	parts := strings.Split(field, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		v := strconv.Quote(secretValue)
		if i < len(parts)-1 {
			v = body
		}
		if k, idx, ok := strings.Cut(p, "["); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			items := strings.Repeat(`{},`, n) + v
			body = fmt.Sprintf(`{%q:[%s]}`, k, items)
		} else {
			body = fmt.Sprintf(`{%q:%s}`, p, v)
		}
	}
	if err := os.WriteFile(def, []byte(body+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(root, "etc", "ceph", "ceph.client."+id+".keyring")
	os.MkdirAll(filepath.Dir(keyring), 0o755)
	os.WriteFile(keyring, []byte("[client.other]\n\tkey = AQBgZGhkAAAAABAAexampleexampleexample0==\n[client."+id+"]\n\tkey = "+secretValue+"\n"), 0o600)
	creds := filepath.Join(root, "run", "credentials", "unit")
	os.MkdirAll(creds, 0o700)
	os.WriteFile(filepath.Join(creds, "strata-secret"), []byte(secretValue+"\n"), 0o400)
	return []source{
		{"definition", contract.Secret{DefinitionFile: def, DefinitionField: field}, nil, def},
		{"keyring", contract.Secret{Keyring: keyring}, nil, keyring},
		{"credential", contract.Secret{Credential: "strata-secret"}, []string{"CREDENTIALS_DIRECTORY=" + creds}, filepath.Join(creds, "strata-secret")},
	}
}

// pick returns the source named name, and the files of all sources (each
// test writes the secret to every source's file and uses one).
func pick(t *testing.T, all []source, name string) (source, []string) {
	t.Helper()
	var src source
	var exempt []string
	for _, s := range all {
		exempt = append(exempt, s.exempt)
		if s.name == name {
			src = s
		}
	}
	if src.name == "" {
		t.Fatalf("no source %q", name)
	}
	return src, exempt
}

// run is one helper run and what it left.
type run struct {
	argv           []string
	env            []string
	stdout, stderr string
	err            error
}

// helperEnv is the helper's whole environment.
func helperEnv(root, fakeLog string, extra []string) []string {
	bin := filepath.Join(root, "fakebin")
	return append([]string{
		"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin",
		testRootEnv + "=" + root,
		"FAKE_ISCSI_ROOT=" + root,
		"FAKE_ISCSI_LOG=" + fakeLog,
		"LANG=C",
	}, extra...)
}

func runHelper(t *testing.T, env []string, c contract.Command) run {
	t.Helper()
	argv := contract.Argv(c)
	argv[0] = helper(t)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return run{argv: argv, env: env, stdout: out.String(), stderr: errb.String(), err: err}
}

func (r run) check(l *leakCheck, what string) {
	l.t.Helper()
	l.check(what+" argv", strings.Join(r.argv, "\x00"))
	l.check(what+" environment", strings.Join(r.env, "\x00"))
	l.check(what+" stdout", r.stdout)
	l.check(what+" stderr (its log)", r.stderr)
}

// fakeUnit makes the helper believe it runs as UNIT generated from DEF.
func fakeUnit(t *testing.T, root, unit, def string) {
	os.MkdirAll(filepath.Join(root, "proc", "self"), 0o755)
	os.WriteFile(filepath.Join(root, "proc", "self", "cgroup"), []byte("0::/system.slice/"+unit+"\n"), 0o644)
	gen := filepath.Join(root, "run", "systemd", "generator")
	os.MkdirAll(gen, 0o755)
	os.WriteFile(filepath.Join(gen, unit), []byte("[Unit]\nSourcePath="+def+"\n"), 0o644)
}

// childCalls reads what the fake iscsiadm recorded: argv, environment and
// stdin of every run.
func childCalls(t *testing.T, log string) (calls [][]string, texts map[string]string) {
	texts = map[string]string{}
	n, _ := strconv.Atoi(strings.TrimSpace(readFile(filepath.Join(log, "count"))))
	for i := 1; i <= n; i++ {
		argv := readFile(filepath.Join(log, fmt.Sprintf("%d.argv", i)))
		calls = append(calls, strings.Split(strings.TrimSuffix(argv, "\x00"), "\x00"))
		texts[fmt.Sprintf("iscsiadm run %d argv", i)] = argv
		texts[fmt.Sprintf("iscsiadm run %d environment", i)] = readFile(filepath.Join(log, fmt.Sprintf("%d.env", i)))
		texts[fmt.Sprintf("iscsiadm run %d stdin", i)] = readFile(filepath.Join(log, fmt.Sprintf("%d.stdin", i)))
	}
	return calls, texts
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func TestISCSISecretNeverLeaks(t *testing.T) {
	needRoot(t)
	const (
		target = "iqn.2003-01.org.linux-iscsi.server:images"
		field  = "mount.overlay.lower[0].attach.attach.iscsi.chap.password"
	)
	for _, srcName := range []string{"definition", "keyring", "credential"} {
		t.Run(srcName, func(t *testing.T) {
			root, fakeLog := t.TempDir(), t.TempDir()
			pw := chapSecret(t)
			l := newLeakCheck(t, pw, 8)
			src, exempt := pick(t, sources(t, root, pw, field, "node1"), srcName)
			script, err := os.ReadFile(filepath.Join("..", "..", "helpers", "iscsi", "testdata", "iscsiadm"))
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(root, "fakebin"), 0o755)
			os.WriteFile(filepath.Join(root, "fakebin", "iscsiadm"), script, 0o755)
			os.MkdirAll(filepath.Join(root, "fake"), 0o755)
			os.WriteFile(filepath.Join(root, "fake", "targets"), []byte("10.0.0.5:3260,1 "+target+"\n"), 0o644)
			unit := "strata-attach@iscsi_lun0_33760b18b4.service"
			fakeUnit(t, root, unit, "/etc/strata/iscsi.json")
			env := helperEnv(root, fakeLog, src.env)

			iscsi := contract.ISCSI{Host: "10.0.0.5", Port: 3260, Target: target, LUN: 0}
			const link = "/run/strata/dev/iscsi_lun0_test"
			login := runHelper(t, env, contract.ISCSILogin{ISCSI: iscsi, Link: link, Initiator: "iqn.2024-01.org.example:node1", MaxCommands: 128, QueueDepth: 16, Scheduler: "mq-deadline", CHAPUser: "node1", CHAPSecret: src.secret})
			if login.err != nil {
				t.Fatalf("iscsi-login: %v\n%s", login.err, login.stderr)
			}
			// Positive control: the password did reach the node record, the
			// one place iscsiadm reads it from.
			recs, _ := filepath.Glob(filepath.Join(root, "etc", "iscsi", "nodes", target, "10.0.0.5,3260,1", "strata-*"))
			if len(recs) != 1 || !strings.Contains(readFile(recs[0]), "node.session.auth.password = "+pw+"\n") {
				t.Fatalf("node record %v:\n%s", recs, readFile(strings.Join(recs, "")))
			}
			if fi, _ := os.Stat(recs[0]); fi.Mode().Perm() != 0o600 {
				t.Errorf("node record mode %v", fi.Mode().Perm())
			}
			l.checkTree(root, append(exempt, recs[0])...)
			if got := readFile(filepath.Join(root, "sys", "block", "sdb", "device", "queue_depth")); got != "16" {
				t.Errorf("queue_depth %q", got)
			}
			if !strings.Contains(login.stderr, "strata-helper: logged in: LUN 0 of "+target+" at 10.0.0.5:3260 is "+filepath.Join(root, "dev", "sdb")) {
				t.Errorf("log:\n%s", login.stderr)
			}

			// The mount unit mounts the link, whatever udev named the LUN.
			if dst, err := os.Readlink(filepath.Join(root, link)); err != nil || dst != filepath.Join(root, "dev", "sdb") {
				t.Errorf("link %s -> %q, %v", link, dst, err)
			}

			logout := runHelper(t, env, contract.ISCSILogout{ISCSI: iscsi, Link: link})
			if logout.err != nil {
				t.Fatalf("iscsi-logout: %v\n%s", logout.err, logout.stderr)
			}
			if _, err := os.Lstat(filepath.Join(root, link)); !os.IsNotExist(err) {
				t.Errorf("link left after logout: %v", err)
			}
			if _, err := os.Stat(recs[0]); !os.IsNotExist(err) {
				t.Errorf("node record (with the password) left after logout: %v", err)
			}
			login.check(l, "iscsi-login")
			logout.check(l, "iscsi-logout")
			calls, texts := childCalls(t, fakeLog)
			if len(calls) != 7 {
				t.Errorf("iscsiadm ran %d times: %q", len(calls), calls)
			}
			for what, text := range texts {
				l.check(what, text)
			}
			l.checkTree(root, exempt...)
			l.checkTree(fakeLog)

			// A failing login: the failure line names the definition, the
			// unit and the layer, and still holds no secret.
			os.WriteFile(filepath.Join(root, "fake", "fail-login"), []byte("24 Login failed due to authorization failure\n"), 0o644)
			failed := runHelper(t, env, contract.ISCSILogin{ISCSI: iscsi, Link: link, Initiator: "iqn.2024-01.org.example:node1", CHAPUser: "node1", CHAPSecret: src.secret})
			if failed.err == nil {
				t.Fatal("login with a failing target succeeded")
			}
			want := "strata-helper: iscsi-login failed for iSCSI LUN 0 of " + target + " at 10.0.0.5:3260 (definition /etc/strata/iscsi.json, unit " + unit + "): iscsi login LUN 0 of " + target + " at 10.0.0.5:3260: login: CHAP authentication failed"
			if !strings.Contains(failed.stderr, want) {
				t.Errorf("failure line:\n%s\nwant it to contain:\n%s", failed.stderr, want)
			}
			if ee, ok := failed.err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("exit %v", failed.err)
			}
			failed.check(l, "failed iscsi-login")
			_, texts = childCalls(t, fakeLog)
			for what, text := range texts {
				l.check(what, text)
			}
			l.checkTree(root, exempt...)
		})
	}
}

func TestRBDSecretNeverLeaks(t *testing.T) {
	needRoot(t)
	const field = "mount.overlay.lower[0].attach.attach.rbd.options.secret"
	for _, srcName := range []string{"definition", "keyring", "credential"} {
		t.Run(srcName, func(t *testing.T) {
			root, fakeLog := t.TempDir(), t.TempDir()
			key, raw := cephxSecret(t)
			// The key's own 16 bytes start at base64 offset 16: fragments of
			// 12 from there, and the raw bytes.
			l := newLeakCheck(t, key, 12, string(raw))
			l.needles = append(l.needles[:2], filterFrom(l.needles[2:], key[16:])...)
			src, exempt := pick(t, sources(t, root, key, field, "node1"), srcName)
			os.MkdirAll(filepath.Join(root, "fakebin"), 0o755)
			unit := "strata-attach@rbd_image1_0123456789.service"
			fakeUnit(t, root, unit, "/etc/strata/test.json")
			env := helperEnv(root, fakeLog, src.env)
			k := newFakeRBD(t, root)

			rbd := contract.RBD{Pool: "rbd", Image: "image1"}
			mapped, line, inside := k.run(t, env, contract.RBDMap{RBD: rbd, Monitors: []string{"192.0.2.10"}, User: "node1", Options: []string{"ro", "queue_depth=128"}, Secret: src.secret})
			if mapped.err != nil {
				t.Fatalf("rbd-map: %v\n%s", mapped.err, mapped.stderr)
			}
			// What the kernel saw of the helper while it mapped.
			l.check("the helper's /proc cmdline", inside.cmdline)
			l.check("the helper's /proc environ", inside.environ)
			switch {
			case strings.Contains(line, "key=client.node1"):
				l.check("the line written to add_single_major", line)
			case strings.Contains(line, "secret="+key):
				// This kernel has no "ceph" key type (libceph not loaded), so
				// krbd fell back to secret=: krbd's own concern. The line
				// still proves the secret was read from the source.
				t.Logf("kernel keyring unusable here: the map line carries secret= (krbd's fallback)")
			default:
				t.Fatalf("map line %q has neither key= nor the secret", line)
			}
			if !strings.HasPrefix(line, "192.0.2.10:6789 name=node1,") || !strings.HasSuffix(line, " rbd image1 -") {
				t.Errorf("map line %q", line)
			}
			if !strings.Contains(mapped.stderr, "strata-helper: mapped rbd rbd/image1 as "+filepath.Join(root, "dev", "rbd0")) {
				t.Errorf("log:\n%s", mapped.stderr)
			}

			unmapped := runHelper(t, env, contract.RBDUnmap{RBD: rbd})
			if unmapped.err != nil {
				t.Fatalf("rbd-unmap: %v\n%s", unmapped.err, unmapped.stderr)
			}
			if got := readFile(filepath.Join(root, "sys", "bus", "rbd", "remove_single_major")); got != "0" {
				t.Errorf("remove_single_major got %q", got)
			}
			mapped.check(l, "rbd-map")
			unmapped.check(l, "rbd-unmap")
			calls, texts := childCalls(t, fakeLog)
			if len(calls) != 0 {
				t.Errorf("children ran: %q", calls)
			}
			for what, text := range texts {
				l.check(what, text)
			}
			l.checkTree(root, exempt...)
		})
	}
}

// filterFrom keeps the fragments that lie in tail (the key bytes' part of
// the base64 text; the header's part is mostly fixed and could match
// anything).
func filterFrom(frags []string, tail string) []string {
	var out []string
	for _, f := range frags {
		if strings.Contains(tail, f) {
			out = append(out, f)
		}
	}
	return out
}

// fakeRBD plays the kernel's rbd driver for the helper's map: add_single_major
// is a FIFO the test reads. The pipe is filled before the helper starts, so
// the helper's write(2) blocks until the test has created the device (sysfs
// entry, /dev node, udev's /dev/rbd link) and drains it: when the write
// returns, the device is there, as with the real driver.
type fakeRBD struct {
	root, add string
}

type procView struct{ cmdline, environ string }

func newFakeRBD(t *testing.T, root string) *fakeRBD {
	bus := filepath.Join(root, "sys", "bus", "rbd")
	os.MkdirAll(filepath.Join(bus, "devices"), 0o755)
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	k := &fakeRBD{root: root, add: filepath.Join(bus, "add_single_major")}
	if err := unix.Mkfifo(k.add, 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bus, "remove_single_major"), nil, 0o200)
	return k
}

func (k *fakeRBD) run(t *testing.T, env []string, c contract.RBDMap) (run, string, procView) {
	t.Helper()
	fd, err := unix.Open(k.add, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	filled := 0
	for _, chunk := range []int{4096, 1} {
		buf := make([]byte, chunk)
		for {
			n, err := unix.Write(fd, buf)
			if err != nil {
				break
			}
			filled += n
		}
	}

	argv := contract.Argv(c)
	argv[0] = helper(t)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := make(chan kernelResult, 1)
	exited := make(chan struct{})
	go func() {
		res <- k.kernel(cmd.Process.Pid, fd, filled, exited)
	}()
	err = cmd.Wait()
	close(exited)
	r := <-res
	if r.err != nil && err == nil {
		t.Fatalf("fake kernel: %v", r.err)
	}
	return run{argv: argv, env: env, stdout: out.String(), stderr: errb.String(), err: err}, r.line, r.view
}

type kernelResult struct {
	line string
	view procView
	err  error
}

func (k *fakeRBD) kernel(pid, fd, filled int, exited <-chan struct{}) (res kernelResult) {
	// Wait until the helper has add_single_major open: it has listed the
	// existing mappings and is about to write.
	deadline := time.Now().Add(20 * time.Second)
	for !fdOpen(pid, k.add) {
		select {
		case <-exited:
			res.err = fmt.Errorf("the helper exited before writing to %s", k.add)
			return
		default:
		}
		if time.Now().After(deadline) {
			res.err = fmt.Errorf("the helper never opened %s", k.add)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	res.view.cmdline = readFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	res.view.environ = readFile(fmt.Sprintf("/proc/%d/environ", pid))
	// The new device, as the driver and udev make it.
	dev := filepath.Join(k.root, "sys", "bus", "rbd", "devices", "0")
	os.MkdirAll(dev, 0o755)
	for name, v := range map[string]string{"pool": "rbd", "pool_ns": "", "name": "image1", "current_snap": "-", "major": "240", "minor": "0"} {
		os.WriteFile(filepath.Join(dev, name), []byte(v+"\n"), 0o444)
	}
	node := filepath.Join(k.root, "dev", "rbd0")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(240, 0))); err != nil {
		res.err = fmt.Errorf("mknod %s: %v", node, err)
		return
	}
	os.MkdirAll(filepath.Join(k.root, "dev", "rbd", "rbd"), 0o755)
	os.Symlink("../../rbd0", filepath.Join(k.root, "dev", "rbd", "rbd", "image1"))
	// Drain the filler, then take the helper's line.
	buf := make([]byte, 4096)
	for filled > 0 {
		n, err := unix.Read(fd, buf[:min(len(buf), filled)])
		if err != nil {
			res.err = fmt.Errorf("drain: %v", err)
			return
		}
		filled -= n
	}
	for time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			res.line = string(buf[:n])
			return
		}
		if err != nil && err != unix.EAGAIN {
			res.err = err
			return
		}
		time.Sleep(time.Millisecond)
	}
	res.err = fmt.Errorf("no line written to %s", k.add)
	return
}

// fdOpen reports whether process pid has path open.
func fdOpen(pid int, path string) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == path {
			return true
		}
	}
	return false
}
