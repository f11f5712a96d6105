//go:build linux

package iscsi

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoginWithoutCHAP(t *testing.T) {
	f := newFakeNode(t)
	iface := IfaceName(ini)
	dev, err := f.m.Login(ctx(t), target(0), "")
	if err != nil {
		t.Fatal(err)
	}
	equalLines(t, "iscsiadm calls", f.argvs(0), []string{
		"-m iface -I " + iface + " -o new",
		"-m iface -I " + iface + " -o update -n iface.initiatorname -v " + ini,
		"-m discovery -t sendtargets -p 10.0.0.5:3260 -I " + iface,
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " -o update -n node.startup -v manual -n node.session.cmds_max -v 128 -n node.session.queue_depth -v 16 -n node.session.auth.authmethod -v None",
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " --login",
	})
	wantLink := filepath.Join(f.root, "dev", "disk", "by-path", "ip-10.0.0.5:3260-iscsi-"+tgt+"-lun-0")
	if dev.Name != "sdb" || dev.Path != filepath.Join(f.root, "dev", "sdb") || dev.ByPath != wantLink || dev.Reused || dev.Session != 1 || dev.Iface != iface || dev.Portal != "10.0.0.5:3260" {
		t.Errorf("device %+v", dev)
	}
	// The queue settings, as the exact bytes written.
	if got := readString(f.sys("block", "sdb", "device", "queue_depth")); got != "16" {
		t.Errorf("queue_depth = %q, want %q", got, "16")
	}
	if got := readString(f.sys("block", "sdb", "queue", "scheduler")); got != "mq-deadline" {
		t.Errorf("scheduler = %q, want %q", got, "mq-deadline")
	}
	// The other LUN of the session is left alone.
	if got := readString(f.sys("block", "sdc", "device", "queue_depth")); got != "32\n" {
		t.Errorf("LUN 1's queue_depth = %q, untouched", got)
	}
	rec := readString(f.record(iface, "10.0.0.5,3260,1"))
	for _, want := range []string{"node.startup = manual", "node.session.cmds_max = 128", "node.session.queue_depth = 16", "node.session.auth.authmethod = None"} {
		if !strings.Contains(rec, want+"\n") {
			t.Errorf("node record lacks %q:\n%s", want, rec)
		}
	}
	if strings.Contains(rec, "password") {
		t.Errorf("node record has a password without CHAP:\n%s", rec)
	}
	if got := readString(filepath.Join(f.root, "etc", "iscsi", "ifaces", iface)); !strings.Contains(got, "iface.initiatorname = "+ini+"\n") {
		t.Errorf("iface record:\n%s", got)
	}
	// Every run had /dev/null for stdin.
	for i, c := range f.calls() {
		if c.stdin != "" {
			t.Errorf("call %d read %q on stdin", i+1, c.stdin)
		}
	}
}

func TestLoginCHAPPasswordOnlyInRecord(t *testing.T) {
	f := newFakeNode(t)
	iface := IfaceName(ini)
	pw := randomPassword(t)
	tg := target(0)
	tg.CHAPUser = "node1"
	dev, err := f.m.Login(ctx(t), tg, pw)
	if err != nil {
		t.Fatal(err)
	}
	f.assertNoLeak(pw, err)
	equalLines(t, "iscsiadm calls", f.argvs(0), []string{
		"-m iface -I " + iface + " -o new",
		"-m iface -I " + iface + " -o update -n iface.initiatorname -v " + ini,
		"-m discovery -t sendtargets -p 10.0.0.5:3260 -I " + iface,
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " -o update -n node.startup -v manual -n node.session.cmds_max -v 128 -n node.session.queue_depth -v 16 -n node.session.auth.authmethod -v CHAP -n node.session.auth.username -v node1",
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " --login",
	})
	// The password is where iscsiadm reads it at login: the record, 0600,
	// inside the record, after the fields iscsiadm set.
	file := f.record(iface, "10.0.0.5,3260,1")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v, want 0600", fi.Mode().Perm())
	}
	rec := readString(file)
	if !strings.Contains(rec, "node.session.auth.username = node1\nnode.session.auth.password = "+pw+"\n# END RECORD\n") {
		t.Errorf("record:\n%s", rec)
	}
	if strings.Count(rec, "node.session.auth.password") != 1 {
		t.Errorf("password line not unique:\n%s", rec)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(f.m.LockDir, "lock.write")); !os.IsNotExist(err) {
		t.Errorf("iscsiadm's DB lock still held: %v", err)
	}
	if dev.Name != "sdb" {
		t.Errorf("device %+v", dev)
	}

	// Logout deletes the record, and the password with it.
	n := f.ncalls()
	if err := f.m.Logout(ctx(t), tg); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "logout calls", f.argvs(n), []string{
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " --logout",
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " -o delete",
	})
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("record still there after logout: %v", err)
	}
	if _, err := os.Stat(f.sys("class", "iscsi_session", "session1")); !os.IsNotExist(err) {
		t.Error("session still in sysfs")
	}
	f.assertNoLeak(pw, nil)
	f.assertNoPasswordOnDisk(pw)

	// A second login after a rediscovery (which resets the record) writes
	// the password again; the iface is already right.
	n = f.ncalls()
	if _, err := f.m.Login(ctx(t), tg, pw); err != nil {
		t.Fatal(err)
	}
	if got := f.argvs(n); len(got) != 3 || !strings.HasPrefix(got[0], "-m discovery") {
		t.Errorf("relogin calls: %q", got)
	}
	if !strings.Contains(readString(file), "node.session.auth.password = "+pw+"\n") {
		t.Error("password not rewritten after rediscovery")
	}
	f.assertNoLeak(pw, nil)
}

func TestLoginIPv6(t *testing.T) {
	for _, host := range []string{"fd00::5", "[fd00::5]", "FD00:0::5"} {
		t.Run(host, func(t *testing.T) {
			f := newFakeNode(t)
			f.control("targets", "[fd00::5]:3260,1 "+tgt+"\n")
			iface := IfaceName(ini)
			tg := target(0)
			tg.Host = host
			dev, err := f.m.Login(ctx(t), tg, "")
			if err != nil {
				t.Fatal(err)
			}
			got := f.argvs(0)
			if len(got) != 5 || got[2] != "-m discovery -t sendtargets -p [fd00::5]:3260 -I "+iface || got[4] != "-m node -T "+tgt+" -p [fd00::5]:3260 -I "+iface+" --login" {
				t.Errorf("calls:\n%s", strings.Join(got, "\n"))
			}
			if want := filepath.Join(f.root, "dev", "disk", "by-path", "ip-fd00::5:3260-iscsi-"+tgt+"-lun-0"); dev.ByPath != want || dev.Portal != "[fd00::5]:3260" {
				t.Errorf("device %+v", dev)
			}
			if err := f.m.Logout(ctx(t), tg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoginResolvesHostName(t *testing.T) {
	f := newFakeNode(t)
	f.control("targets", "10.0.0.7:3260,1 "+tgt+"\n")
	var asked []string
	f.m.Resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
		asked = append(asked, host)
		if host == "san.example" {
			return []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.7"), netip.MustParseAddr("10.0.0.8")}, nil
		}
		return nil, errors.New("no such host")
	}
	tg := target(0)
	tg.Host = "san.example"
	dev, err := f.m.Login(ctx(t), tg, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(asked, ",") != "san.example" {
		t.Errorf("resolver asked %q", asked)
	}
	for _, c := range f.argvs(0) {
		if strings.Contains(c, "san.example") {
			t.Errorf("host name given to iscsiadm: %s", c)
		}
	}
	if got := f.argvs(0)[2]; got != "-m discovery -t sendtargets -p 10.0.0.7:3260 -I "+IfaceName(ini) {
		t.Errorf("discovery: %s", got)
	}
	if !strings.HasSuffix(dev.ByPath, "ip-10.0.0.7:3260-iscsi-"+tgt+"-lun-0") {
		t.Errorf("device %+v", dev)
	}
	tg.Host = "nowhere.example"
	_, err = f.m.Login(ctx(t), tg, "")
	if err == nil || !strings.Contains(err.Error(), `cannot resolve portal host "nowhere.example"`) {
		t.Errorf("unresolvable host: %v", err)
	}
}

func TestLoginIdempotent(t *testing.T) {
	f := newFakeNode(t)
	first, err := f.m.Login(ctx(t), target(0), "")
	if err != nil {
		t.Fatal(err)
	}
	// Settings already in place are not written again (a write would drop
	// the newline).
	os.WriteFile(f.sys("block", "sdb", "device", "queue_depth"), []byte("16\n"), 0o644)
	os.WriteFile(f.sys("block", "sdb", "queue", "scheduler"), []byte("none [mq-deadline] kyber\n"), 0o644)
	n := f.ncalls()
	again, err := f.m.Login(ctx(t), target(0), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.argvs(n); len(got) != 0 {
		t.Errorf("a second login ran iscsiadm: %q", got)
	}
	if !again.Reused || again.Name != first.Name || again.ByPath != first.ByPath {
		t.Errorf("second login: %+v, first %+v", again, first)
	}
	if got := readString(f.sys("block", "sdb", "device", "queue_depth")); got != "16\n" {
		t.Errorf("queue_depth rewritten: %q", got)
	}
	if got := readString(f.sys("block", "sdb", "queue", "scheduler")); got != "none [mq-deadline] kyber\n" {
		t.Errorf("scheduler rewritten: %q", got)
	}
}

// A session that appears between the sysfs check and the login (another
// initiator tool, a race) makes iscsiadm exit 15: that is success.
func TestLoginSessionExistsIsSuccess(t *testing.T) {
	f := newFakeNode(t)
	f.m.Run = func(ctx context.Context, args []string) (Result, error) {
		r, err := ExecRunner(ctx, args)
		if err == nil && args[len(args)-1] == "--login" {
			return Result{Stderr: "iscsiadm: default: 1 session requested, but 1 already present.\n", Exit: 15}, nil
		}
		return r, err
	}
	dev, err := f.m.Login(ctx(t), target(0), "")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Name != "sdb" {
		t.Errorf("device %+v", dev)
	}
}

func TestLUNsShareTheSession(t *testing.T) {
	f := newFakeNode(t)
	iface := IfaceName(ini)
	d0, err := f.m.Login(ctx(t), target(0), "")
	if err != nil {
		t.Fatal(err)
	}
	n := f.ncalls()
	d1, err := f.m.Login(ctx(t), target(1), "")
	if err != nil {
		t.Fatal(err)
	}
	if d0.Name != "sdb" || d1.Name != "sdc" || !d1.Reused || f.ncalls() != n {
		t.Errorf("LUN 0 %+v, LUN 1 %+v, calls %q", d0, d1, f.argvs(n))
	}
	if got := readString(f.sys("block", "sdc", "device", "queue_depth")); got != "16" {
		t.Errorf("LUN 1 queue_depth %q", got)
	}
	// Releasing LUN 0 keeps the session for LUN 1.
	if err := f.m.Logout(ctx(t), target(0)); err != nil {
		t.Fatal(err)
	}
	if f.ncalls() != n {
		t.Errorf("logout of LUN 0 ran %q while LUN 1 uses the session", f.argvs(n))
	}
	if !strings.Contains(f.logText(), "the session stays for LUN 1") {
		t.Errorf("log:\n%s", f.logText())
	}
	if err := f.m.Logout(ctx(t), target(1)); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "last logout", f.argvs(n), []string{
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " --logout",
		"-m node -T " + tgt + " -p 10.0.0.5:3260 -I " + iface + " -o delete",
	})
	if refs := sortedGlob(filepath.Join(f.m.StateDir, "*.lun*")); len(refs) != 0 {
		t.Errorf("references left: %v", refs)
	}
}

// Two holders of one LUN (two attach units: one definition names the
// portal by its address, one by a host name that resolves to it, which the
// generator cannot know to be the same) hold a reference each: releasing
// one keeps the session for the other. One holder is one reference however
// the portal is spelt.
func TestTwoHoldersOfOneLUN(t *testing.T) {
	f := newFakeNode(t)
	f.m.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "san.example" {
			t.Errorf("resolved %q", host)
		}
		return []netip.Addr{netip.MustParseAddr("::ffff:" + addr)}, nil
	}
	byAddr, byName := target(0), target(0)
	byAddr.Host, byAddr.Holder = "[::FFFF:"+addr+"]", "/run/strata/dev/iscsi_a"
	byName.Host, byName.Holder = "san.example", "/run/strata/dev/iscsi_b"
	if _, err := f.m.Login(ctx(t), byAddr, ""); err != nil {
		t.Fatal(err)
	}
	if d, err := f.m.Login(ctx(t), byName, ""); err != nil || !d.Reused {
		t.Fatalf("second holder: %+v %v", d, err)
	}
	// The first holder again, spelt the plain way: still its one reference.
	byAddr.Host = addr
	if _, err := f.m.Login(ctx(t), byAddr, ""); err != nil {
		t.Fatal(err)
	}
	if refs := sortedGlob(filepath.Join(f.m.StateDir, "*.lun*")); len(refs) != 2 {
		t.Errorf("references %v, want one per holder", refs)
	}
	n := f.ncalls()
	if err := f.m.Logout(ctx(t), byAddr); err != nil {
		t.Fatal(err)
	}
	if f.ncalls() != n || !strings.Contains(f.logText(), "the session stays for LUN 0") {
		t.Errorf("released the first holder: ran %q; log:\n%s", f.argvs(n), f.logText())
	}
	if err := f.m.Logout(ctx(t), byName); err != nil {
		t.Fatal(err)
	}
	if got := f.argvs(n); len(got) != 2 || got[0] != "-m node -T "+tgt+" -p 10.0.0.5:3260 -I "+IfaceName(ini)+" --logout" {
		t.Errorf("last holder's logout ran %q", got)
	}
	if refs := sortedGlob(filepath.Join(f.m.StateDir, "*.lun*")); len(refs) != 0 {
		t.Errorf("references left: %v", refs)
	}
}

func TestLogoutWhenNotLoggedIn(t *testing.T) {
	f := newFakeNode(t)
	// No reference, no session: nothing to do, nothing run.
	if err := f.m.Logout(ctx(t), target(0)); err != nil {
		t.Fatal(err)
	}
	if n := f.ncalls(); n != 0 {
		t.Errorf("ran %q", f.argvs(0))
	}
	// A reference whose session is gone (iscsid logged out, a reboot of
	// the target): iscsiadm says 21, which is success.
	if _, err := f.m.Login(ctx(t), target(0), ""); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(f.root, "fake"))
	f.control("targets", addr+":3260,1 "+tgt+"\n")
	n := f.ncalls()
	if err := f.m.Logout(ctx(t), target(0)); err != nil {
		t.Fatal(err)
	}
	if got := f.argvs(n); len(got) != 2 || !strings.HasSuffix(got[0], "--logout") {
		t.Errorf("calls %q", got)
	}
	if !strings.Contains(f.logText(), "was not logged in") {
		t.Errorf("log:\n%s", f.logText())
	}
	// A session found in sysfs without a reference is logged out when it
	// runs through a Strata iface.
	if _, err := f.m.Login(ctx(t), target(0), ""); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(f.m.StateDir)
	n = f.ncalls()
	if err := f.m.Logout(ctx(t), target(0)); err != nil {
		t.Fatal(err)
	}
	if got := f.argvs(n); len(got) != 2 || got[0] != "-m node -T "+tgt+" -p 10.0.0.5:3260 -I "+IfaceName(ini)+" --logout" {
		t.Errorf("calls %q", got)
	}
}

func TestDeviceThroughSysfsWithoutUdev(t *testing.T) {
	f := newFakeNode(t)
	f.control("no-bypath", "")
	dev, err := f.m.Login(ctx(t), target(1), "")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Name != "sdc" || dev.ByPath != "" || dev.Path != filepath.Join(f.root, "dev", "sdc") {
		t.Errorf("device %+v", dev)
	}
	if !strings.Contains(f.logText(), "udev made no") {
		t.Errorf("log:\n%s", f.logText())
	}
	if got := readString(f.sys("block", "sdc", "queue", "scheduler")); got != "mq-deadline" {
		t.Errorf("scheduler %q", got)
	}
}

func TestRescanForNewLUN(t *testing.T) {
	f := newFakeNode(t)
	f.control("luns", "0")
	if _, err := f.m.Login(ctx(t), target(0), ""); err != nil {
		t.Fatal(err)
	}
	f.control("luns", "0 1")
	n := f.ncalls()
	dev, err := f.m.Login(ctx(t), target(1), "")
	if err != nil {
		t.Fatal(err)
	}
	equalLines(t, "calls", f.argvs(n), []string{"-m session -r 1 --rescan"})
	if dev.Name != "sdc" || !dev.Reused {
		t.Errorf("device %+v", dev)
	}
}

func TestMissingLUNLogsOutAgain(t *testing.T) {
	f := newFakeNode(t)
	f.control("luns", "0")
	f.m.DeviceTimeout = 300 * time.Millisecond
	pw := randomPassword(t)
	tg := target(3)
	tg.CHAPUser = "node1"
	_, err := f.m.Login(ctx(t), tg, pw)
	if err == nil || !strings.Contains(err.Error(), "session 1 has no LUN 3") || !strings.Contains(err.Error(), "exports LUN 3 to initiator "+ini) {
		t.Fatalf("error %v", err)
	}
	got := f.argvs(0)
	if len(got) != 7 || !strings.HasSuffix(got[5], "--logout") || !strings.HasSuffix(got[6], "-o delete") {
		t.Errorf("calls:\n%s", strings.Join(got, "\n"))
	}
	if refs := sortedGlob(filepath.Join(f.m.StateDir, "*.lun*")); len(refs) != 0 {
		t.Errorf("references left: %v", refs)
	}
	f.assertNoLeak(pw, err)
	f.assertNoPasswordOnDisk(pw)
}

func TestErrorsDecoded(t *testing.T) {
	for _, tc := range []struct {
		name, op, fail string
		chap           bool
		exit           int
		want           []string
	}{
		{"auth failure", "login", "24 Login failed due to authorization failure", true, 24, []string{"step login" /* replaced below */}},
		{"auth required", "login", "24 Login failed due to authorization failure", false, 24, []string{"the target requires authentication"}},
		{"time-out", "login", "8 connection1:0 timed out", false, 8, []string{"connecting to the portal timed out", "TCP 3260"}},
		{"fatal", "login", "19 Could not log into all portals", false, 19, []string{"rejected the login for good", "exports LUN 0"}},
		{"refused", "login", "5 Login failed", false, 5, []string{"refused the login", "admits " + ini}},
		{"no transport", "discovery", "12 iSCSI driver tcp is not loaded", false, 12, []string{"modprobe iscsi_tcp"}},
		{"no iscsid", "discovery", "20 can not connect to iSCSI daemon (111)!", false, 20, []string{"cannot reach iscsid", "iscsid.socket"}},
		{"unreachable", "discovery", "4 cannot make connection to 10.0.0.5: Connection refused", false, 4, []string{"cannot connect to the portal"}},
		{"database", "update", "6 Could not open record", false, 6, []string{"cannot read or write its database"}},
		{"no iface", "iface-update", "7 Cannot modify iface.initiatorname", false, 7, []string{"rejected an argument"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode(t)
			f.control("fail-"+tc.op, tc.fail+"\n")
			tg := target(0)
			pw := ""
			if tc.chap {
				tg.CHAPUser, pw = "node1", randomPassword(t)
			}
			_, err := f.m.Login(ctx(t), tg, pw)
			var e *Error
			if !errors.As(err, &e) || e.Exit != tc.exit || ExitCode(err) != tc.exit {
				t.Fatalf("error %#v", err)
			}
			msg := err.Error()
			want := tc.want
			if tc.name == "auth failure" {
				want = []string{"CHAP authentication failed", "check the CHAP user and password"}
			}
			_, detail, _ := strings.Cut(tc.fail, " ")
			want = append(want, "iscsi login LUN 0 of "+tgt+" at 10.0.0.5:3260", "iscsiadm exit", "iscsiadm: "+detail)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if refs := sortedGlob(filepath.Join(f.m.StateDir, "*.lun*")); len(refs) != 0 {
				t.Errorf("references left: %v", refs)
			}
			if pw != "" {
				f.assertNoLeak(pw, err)
				f.assertNoPasswordOnDisk(pw)
			}
		})
	}
}

func TestDiscoveryWithoutTheTarget(t *testing.T) {
	f := newFakeNode(t)
	f.control("targets", "10.0.0.9:3260,1 "+tgt+"\n"+addr+":3260,1 iqn.2003-01.org.linux-iscsi.server:other\n")
	_, err := f.m.Login(ctx(t), target(0), "")
	if err == nil || !strings.Contains(err.Error(), "does not offer "+tgt+" at this address (it offers: "+tgt+" at 10.0.0.9:3260, iqn.2003-01.org.linux-iscsi.server:other)") {
		t.Fatalf("error %v", err)
	}
	f.uncontrol("targets")
	_, err = f.m.Login(ctx(t), target(0), "")
	if ExitCode(err) != 21 || !strings.Contains(err.Error(), "the portal offered no targets") {
		t.Fatalf("error %v", err)
	}
}

func TestLogoutFailure(t *testing.T) {
	f := newFakeNode(t)
	if _, err := f.m.Login(ctx(t), target(0), ""); err != nil {
		t.Fatal(err)
	}
	f.control("fail-logout", "10 Could not logout of all requested sessions\n")
	err := f.m.Logout(ctx(t), target(0))
	if ExitCode(err) != 10 || !strings.Contains(err.Error(), "iscsi logout LUN 0 of "+tgt+" at 10.0.0.5:3260: logout: the logout failed") {
		t.Fatalf("error %v", err)
	}
}

func TestCHAPChecks(t *testing.T) {
	f := newFakeNode(t)
	pw := randomPassword(t)
	for _, tc := range []struct {
		user, pw, want string
	}{
		{"node1", "", `CHAP user "node1" has no password`},
		{"", pw, "a CHAP password is given but no CHAP user"},
		{"node1", pw + "\nnode.startup = automatic", "control character"},
		{"node1", " " + pw, "white space"},
		{"node1", strings.Repeat(pw, 13), "longer than open-iscsi's 255 bytes"},
		{"node 1\n", pw, "CHAP user"},
	} {
		tg := target(0)
		tg.CHAPUser = tc.user
		_, err := f.m.Login(ctx(t), tg, tc.pw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("user %q: error %v, want %q", tc.user, err, tc.want)
		}
		f.assertNoLeak(pw, err)
	}
	if n := f.ncalls(); n != 0 {
		t.Errorf("iscsiadm ran for invalid CHAP: %q", f.argvs(0))
	}
}

func TestTargetChecks(t *testing.T) {
	f := newFakeNode(t)
	for _, mod := range []func(*Target){
		func(t *Target) { t.Target = "../../etc" },
		func(t *Target) { t.Target = "iqn.x y" },
		func(t *Target) { t.Initiator = "" },
		func(t *Target) { t.Port = 70000 },
		func(t *Target) { t.Scheduler = "mq deadline" },
		func(t *Target) { t.Host = "" },
	} {
		tg := target(0)
		mod(&tg)
		if _, err := f.m.Login(ctx(t), tg, ""); err == nil {
			t.Errorf("%+v accepted", tg)
		}
	}
	if n := f.ncalls(); n != 0 {
		t.Errorf("iscsiadm ran: %q", f.argvs(0))
	}
}

func TestByPathName(t *testing.T) {
	for _, tc := range []struct {
		addr string
		lun  int
		want string
	}{
		{"10.0.0.5", 0, "ip-10.0.0.5:3260-iscsi-" + tgt + "-lun-0"},
		{"fd00::5", 255, "ip-fd00::5:3260-iscsi-" + tgt + "-lun-255"},
		{"10.0.0.5", 256, "ip-10.0.0.5:3260-iscsi-" + tgt + "-lun-0x0100000000000000"},
		{"10.0.0.5", 0x4001, "ip-10.0.0.5:3260-iscsi-" + tgt + "-lun-0x4001000000000000"},
	} {
		if got := ByPathName(tc.addr, 3260, tgt, tc.lun); got != tc.want {
			t.Errorf("ByPathName(%s, %d) = %s, want %s", tc.addr, tc.lun, got, tc.want)
		}
	}
}

func TestIfaceName(t *testing.T) {
	a, b := IfaceName(ini), IfaceName("iqn.2024-01.org.example:node2")
	if a == b || !strings.HasPrefix(a, "strata-") || len(a) != len("strata-")+12 || a != IfaceName(ini) {
		t.Errorf("%s %s", a, b)
	}
}

// Two initiators on one node get two ifaces; a login with the second does
// not touch the first's iface.
func TestTwoInitiators(t *testing.T) {
	f := newFakeNode(t)
	if _, err := f.m.Login(ctx(t), target(0), ""); err != nil {
		t.Fatal(err)
	}
	n := f.ncalls()
	other := "iqn.2024-01.org.example:node2"
	f.control("targets", addr+":3260,1 iqn.2003-01.org.linux-iscsi.server:other\n")
	tg := target(0)
	tg.Target, tg.Initiator = "iqn.2003-01.org.linux-iscsi.server:other", other
	if _, err := f.m.Login(ctx(t), tg, ""); err != nil {
		t.Fatal(err)
	}
	got := f.argvs(n)
	if got[0] != "-m iface -I "+IfaceName(other)+" -o new" || got[1] != "-m iface -I "+IfaceName(other)+" -o update -n iface.initiatorname -v "+other {
		t.Errorf("calls %q", got)
	}
	if s := readString(filepath.Join(f.root, "etc", "iscsi", "ifaces", IfaceName(ini))); !strings.Contains(s, ini) {
		t.Errorf("first iface changed:\n%s", s)
	}
}
