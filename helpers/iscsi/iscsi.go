//go:build linux

package iscsi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-project/strata/helpers/netid"
	"github.com/strata-project/strata/internal/layout"
)

// Target is one LUN of an iSCSI target behind a portal, with the settings
// to log in with.
type Target struct {
	Host        string // portal: an IP address (IPv6 with or without brackets) or a host name
	Port        int    // portal port; 0 means 3260
	Target      string // target IQN
	LUN         int
	Initiator   string // initiator IQN (required): set on the node's own iface
	MaxCommands int    // node.session.cmds_max; 0 keeps open-iscsi's default
	QueueDepth  int    // node.session.queue_depth and the LUN's queue_depth; 0 keeps them
	Scheduler   string // the LUN's I/O scheduler; "" keeps it
	CHAPUser    string // "" means no CHAP
	// Holder names who holds the LUN (Strata's attach unit, by its device
	// link): each holder has a reference of its own, and the session is
	// logged out when the last reference to it goes. "" is one holder.
	Holder string
}

func (t Target) port() int {
	if t.Port == 0 {
		return layout.DefaultISCSIPort
	}
	return t.Port
}

// String names the LUN for messages: "LUN 0 of iqn... at host:3260".
func (t Target) String() string {
	return fmt.Sprintf("LUN %d of %s at %s", t.LUN, t.Target, joinHostPort(strings.Trim(t.Host, "[]"), t.port()))
}

// Device is a logged-in LUN's block device.
type Device struct {
	Name    string // kernel name, e.g. "sdb"
	Path    string // DEVROOT/NAME
	ByPath  string // udev's DEVROOT/disk/by-path/ip-...-lun-N link, "" if udev made none in time
	Portal  string // ip:port as given to iscsiadm
	Iface   string // the iface the session runs through
	Session int    // sysfs session number
	// Reused is true when the session was already logged in and nothing was
	// run.
	Reused bool
}

// Result is what one iscsiadm run returned.
type Result struct {
	Stdout, Stderr string
	Exit           int // exit status; -1 when killed
}

// Runner runs iscsiadm with args. It returns an error only when iscsiadm
// could not be run at all (not installed); a non-zero exit is Result.Exit.
type Runner func(ctx context.Context, args []string) (Result, error)

// Resolver turns a host name into addresses.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// DefaultResolver uses Go's resolver (pure Go without cgo: /etc/hosts and
// DNS).
func DefaultResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Manager logs in and out. The zero value works on the real node; every
// field replaces one dependency.
type Manager struct {
	// Run runs iscsiadm; nil runs the iscsiadm on $PATH (or /usr/sbin,
	// /sbin) with stdin from /dev/null.
	Run Runner
	// Resolve resolves portal host names; nil is DefaultResolver.
	Resolve Resolver
	// SysfsRoot and DevRoot are where /sys and /dev are ("" means those).
	SysfsRoot, DevRoot string
	// ConfigRoot is open-iscsi's database directory ("" means /etc/iscsi,
	// Debian's build), holding ifaces/ and nodes/.
	ConfigRoot string
	// LockDir is iscsiadm's database lock directory ("" means
	// /run/lock/iscsi, Debian's build).
	LockDir string
	// StateDir holds Strata's per-LUN references and lock ("" means
	// /run/strata/iscsi).
	StateDir string
	// IsBlockDevice reports whether path (followed) is a block device; nil
	// uses stat(2).
	IsBlockDevice func(path string) (bool, error)
	// DeviceTimeout bounds the wait for the LUN's device after login
	// (default 30s; ctx can shorten it).
	DeviceTimeout time.Duration
	// LinkGrace is how long, once sysfs shows the device, Login still waits
	// for udev's by-path link (default 5s).
	LinkGrace time.Duration
	// LockTimeout bounds the wait for iscsiadm's database lock before
	// writing a record anyway, as iscsiadm does (default 30s).
	LockTimeout time.Duration
	// Logf receives progress (never the password); nil is silent.
	Logf func(format string, args ...any)

	// lockBusy, when set, is called each time lockDB finds the lock held:
	// a test waits on it instead of sleeping.
	lockBusy func()
}

func (m *Manager) sysfs() string { return or(m.SysfsRoot, "/sys") }
func (m *Manager) dev() string   { return or(m.DevRoot, "/dev") }
func (m *Manager) config() string {
	return or(m.ConfigRoot, "/etc/iscsi")
}
func (m *Manager) lockDir() string  { return or(m.LockDir, "/run/lock/iscsi") }
func (m *Manager) stateDir() string { return or(m.StateDir, layout.ISCSIDir) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (m *Manager) logf(format string, args ...any) {
	if m.Logf != nil {
		m.Logf(format, args...)
	}
}

// Login with the zero Manager; see Manager.Login.
func Login(ctx context.Context, t Target, chapPassword string) (Device, error) {
	return new(Manager).Login(ctx, t, chapPassword)
}

// Logout with the zero Manager; see Manager.Logout.
func Logout(ctx context.Context, t Target) error {
	return new(Manager).Logout(ctx, t)
}

// IfaceName is the open-iscsi iface Strata uses for an initiator name.
func IfaceName(initiator string) string {
	sum := sha256.Sum256([]byte(initiator))
	return "strata-" + hex.EncodeToString(sum[:6])
}

// Login logs in to t's target (or finds its session), waits for the LUN's
// block device and applies its queue settings.
//
// Without a session for the target and portal it runs, in order:
//
//	iscsiadm -m iface -I IFACE -o new                          (iface missing)
//	iscsiadm -m iface -I IFACE -o update -n iface.initiatorname -v INITIATOR (name differs)
//	iscsiadm -m discovery -t sendtargets -p PORTAL -I IFACE
//	iscsiadm -m node -T TARGET -p PORTAL -I IFACE -o update -n node.startup -v manual
//	         [-n node.session.cmds_max -v N] [-n node.session.queue_depth -v N]
//	         -n node.session.auth.authmethod -v CHAP|None [-n node.session.auth.username -v USER]
//	(CHAP: the password is written into the node record file)
//	iscsiadm -m node -T TARGET -p PORTAL -I IFACE --login
//
// chapPassword is used only with t.CHAPUser. Errors are *Error, with
// iscsiadm's exit code decoded; none holds the password.
func (m *Manager) Login(ctx context.Context, t Target, chapPassword string) (dev Device, err error) {
	red := newRedactor(chapPassword)
	defer func() {
		if err != nil {
			err = finish(err, "login", t, red)
		}
	}()
	if err := t.Validate(true); err != nil {
		return Device{}, &Error{Msg: err.Error()}
	}
	if err := checkCHAP(t.CHAPUser, chapPassword); err != nil {
		return Device{}, &Error{Msg: err.Error()}
	}
	if t.MaxCommands > 0 && (t.MaxCommands < 16 || t.MaxCommands > 4096 || t.MaxCommands&(t.MaxCommands-1) != 0) {
		m.logf("max_commands %d: the kernel (libiscsi) uses a power of two between 16 and 4096 and rounds anything else", t.MaxCommands)
	}
	addr, err := m.resolve(ctx, t.Host)
	if err != nil {
		return Device{}, err
	}
	p := portal{addr: addr, port: t.port()}
	iface := IfaceName(t.Initiator)

	unlock, err := m.lockState(ctx)
	if err != nil {
		return Device{}, err
	}
	defer unlock()

	ref := m.refFor(t, p)
	if err := ref.add(iface); err != nil {
		return Device{}, &Error{Msg: "cannot record the LUN's use of the session", Err: err}
	}
	configured, loggedIn := false, false
	defer func() {
		if err == nil {
			return
		}
		ref.remove()
		bg := context.WithoutCancel(ctx)
		switch {
		case loggedIn && len(ref.others()) == 0:
			m.logf("logging out again after the failure")
			m.logoutSession(bg, t, p, iface)
		case configured && !loggedIn:
			// No session through this record: drop it, and the CHAP
			// password in it.
			m.deleteRecord(bg, t, p, iface)
		}
	}()

	sess, found := m.findSession(t.Target, p)
	if found {
		m.logf("%s: session %d (iface %s) is already logged in; reusing it", t, sess.id, sess.iface)
		if sess.iface != iface {
			m.logf("session %d runs through iface %s, not %s: its initiator name, CHAP and max commands are those it was logged in with", sess.id, sess.iface, iface)
		}
	} else {
		if err := m.ensureIface(ctx, iface, t.Initiator); err != nil {
			return Device{}, err
		}
		if err := m.discover(ctx, t, p, iface); err != nil {
			return Device{}, err
		}
		configured = true
		if err := m.configureNode(ctx, t, p, iface); err != nil {
			return Device{}, err
		}
		if t.CHAPUser != "" {
			if err := m.writePassword(t.Target, p, iface, chapPassword); err != nil {
				return Device{}, err
			}
		}
		if err := m.login(ctx, t, p, iface); err != nil {
			return Device{}, err
		}
		loggedIn = true
	}

	dev, err = m.waitDevice(ctx, t, p, found)
	if err != nil {
		return Device{}, err
	}
	dev.Portal, dev.Reused = p.String(), found
	if dev.Iface == "" {
		dev.Iface = iface
	}
	if err := m.tune(dev.Name, t); err != nil {
		return dev, err
	}
	return dev, nil
}

// Logout releases t's LUN. When no other LUN attached through this package
// uses the session, it logs out (not logged in is success) and deletes the
// node record, and with it any CHAP password:
//
//	iscsiadm -m node -T TARGET -p PORTAL -I IFACE --logout
//	iscsiadm -m node -T TARGET -p PORTAL -I IFACE -o delete
//
// The iface is the one Login recorded, or else the session's in sysfs when
// it is one of Strata's.
func (m *Manager) Logout(ctx context.Context, t Target) (err error) {
	defer func() {
		if err != nil {
			err = finish(err, "logout", t, redactor{})
		}
	}()
	if err := t.Validate(false); err != nil {
		return &Error{Msg: err.Error()}
	}
	addr, err := m.resolve(ctx, t.Host)
	if err != nil {
		return err
	}
	p := portal{addr: addr, port: t.port()}
	unlock, err := m.lockState(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	ref := m.refFor(t, p)
	iface := ref.iface()
	ref.remove()
	if others := ref.others(); len(others) > 0 {
		m.logf("%s released; the session stays for LUN %s", t, strings.Join(others, ", "))
		return nil
	}
	if iface == "" {
		if s, ok := m.findSession(t.Target, p); ok && strings.HasPrefix(s.iface, "strata-") {
			iface = s.iface
		}
	}
	if iface == "" {
		m.logf("%s: no session of Strata's to log out", t)
		return nil
	}
	return m.logoutSession(ctx, t, p, iface)
}

func (m *Manager) logoutSession(ctx context.Context, t Target, p portal, iface string) error {
	node := nodeArgs(t.Target, p, iface)
	r, err := m.run(ctx, append(node, "--logout"))
	if err != nil {
		return &Error{Step: "logout", Msg: "cannot run iscsiadm", Err: err}
	}
	switch r.Exit {
	case 0:
		m.logf("logged out of %s at %s", t.Target, p)
	case exitSessNotFound, exitNoObjsFound:
		m.logf("%s at %s was not logged in", t.Target, p)
	default:
		return exitError("logout", r, t, false)
	}
	m.deleteRecord(ctx, t, p, iface)
	return nil
}

// deleteRecord deletes the node record of the target at p through iface
// (with any CHAP password in it). Only for a record with no session: iscsiadm
// logs a running session out before deleting its record.
func (m *Manager) deleteRecord(ctx context.Context, t Target, p portal, iface string) {
	r, err := m.run(ctx, append(nodeArgs(t.Target, p, iface), "-o", "delete"))
	if err == nil && r.Exit != 0 && r.Exit != exitNoObjsFound {
		m.logf("could not delete the node record of %s at %s (iscsiadm exit %d: %s); it stays under %s", t.Target, p, r.Exit, lastLines(r.Stderr), filepath.Join(m.config(), "nodes"))
	}
}

// Validate checks what ends up in iscsiadm arguments and database paths,
// for a login (initiator, queue settings too) or a logout. The generator
// applies it too, so validate refuses what the helper would.
func (t Target) Validate(login bool) error {
	if t.Host == "" {
		return errors.New("no portal host")
	}
	if t.Port < 0 || t.Port > 65535 {
		return fmt.Errorf("port %d is out of range", t.Port)
	}
	if t.LUN < 0 || t.LUN > 1<<32-1 {
		return fmt.Errorf("LUN %d is out of range", t.LUN)
	}
	if err := checkName("target name", t.Target); err != nil {
		return err
	}
	if !login {
		return nil
	}
	if err := checkName("initiator name", t.Initiator); err != nil {
		return err
	}
	if t.MaxCommands < 0 || t.QueueDepth < 0 {
		return errors.New("max commands and queue depth cannot be negative")
	}
	for _, r := range t.Scheduler {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("scheduler %q is not a scheduler name", t.Scheduler)
		}
	}
	return nil
}

// checkName accepts iSCSI names (iqn., eui., naa.) as far as they are safe
// in a path component and an argument.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("no %s", what)
	}
	if len(s) > 223 { // RFC 7143 4.2.7.1
		return fmt.Errorf("%s %q is longer than 223 bytes", what, s)
	}
	if s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
		return fmt.Errorf("%s %q is not an iSCSI name", what, s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%s %q holds a space or control character", what, s)
		}
	}
	return nil
}

// maxSecret is the longest password open-iscsi stores: its auth strings are
// AUTH_STR_MAX_LEN (256) bytes with the terminating NUL, and the record
// parser copies a value into a 256-byte buffer without a bound.
const maxSecret = 255

// checkCHAP checks the CHAP user and password fit a node record line. It
// never quotes the password.
func checkCHAP(user, password string) error {
	switch {
	case user == "" && password == "":
		return nil
	case user == "":
		return errors.New("a CHAP password is given but no CHAP user")
	case password == "":
		return fmt.Errorf("CHAP user %q has no password", user)
	}
	if err := recordValue(user); err != nil {
		return fmt.Errorf("CHAP user %q: %v", user, err)
	}
	if err := recordValue(password); err != nil {
		return fmt.Errorf("the CHAP password (%d bytes): %v", len(password), err)
	}
	return nil
}

// recordValue checks a value survives open-iscsi's record format: one line,
// surrounding white space stripped, at most 255 bytes.
func recordValue(s string) error {
	if len(s) > maxSecret {
		return fmt.Errorf("longer than open-iscsi's %d bytes", maxSecret)
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return errors.New("holds a control character (a line break, tab or NUL), which open-iscsi's node records cannot hold")
		}
	}
	if strings.TrimSpace(s) != s {
		return errors.New("starts or ends with white space, which open-iscsi's node records drop")
	}
	return nil
}

// portal is a resolved portal address.
type portal struct {
	addr netip.Addr
	port int
}

// String is the -p form: ip:port or [ip6]:port.
func (p portal) String() string { return joinHostPort(p.addr.String(), p.port) }

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func (m *Manager) resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(netid.Host(host)); err == nil {
		return a, nil
	}
	// A name is resolved as written (the trailing dot may matter to the
	// resolver's search list); the session is keyed by the address.
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	res := m.Resolve
	if res == nil {
		res = DefaultResolver
	}
	addrs, err := res(ctx, h)
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = errors.New("no addresses")
		}
		return netip.Addr{}, &Error{Step: "resolve", Msg: fmt.Sprintf("cannot resolve portal host %q: check /etc/hosts, DNS (/etc/resolv.conf) and the network at this point of boot, or give the portal's IP address", h), Err: err}
	}
	a := addrs[0].Unmap()
	if len(addrs) > 1 {
		m.logf("portal host %s has %d addresses; using %s", h, len(addrs), a)
	} else {
		m.logf("portal host %s is %s", h, a)
	}
	return a, nil
}

// ensureIface makes iface carry the initiator name. The iface record is read
// directly (ifaces/IFACE) to see whether anything needs doing.
func (m *Manager) ensureIface(ctx context.Context, iface, initiator string) error {
	file := filepath.Join(m.config(), "ifaces", iface)
	data, err := os.ReadFile(file)
	if err == nil && recordField(string(data), "iface.initiatorname") == initiator {
		return nil
	}
	if err != nil {
		r, err := m.run(ctx, []string{"-m", "iface", "-I", iface, "-o", "new"})
		if err != nil {
			return &Error{Step: "iface", Msg: "cannot run iscsiadm", Err: err}
		}
		if r.Exit != 0 {
			return exitError("iface", r, Target{}, false)
		}
	}
	r, err := m.run(ctx, []string{"-m", "iface", "-I", iface, "-o", "update", "-n", "iface.initiatorname", "-v", initiator})
	if err != nil {
		return &Error{Step: "iface", Msg: "cannot run iscsiadm", Err: err}
	}
	if r.Exit != 0 {
		return exitError("iface", r, Target{}, false)
	}
	m.logf("iface %s uses initiator name %s", iface, initiator)
	return nil
}

// discover runs SendTargets discovery through iface and checks the portal
// offers the target at this address.
func (m *Manager) discover(ctx context.Context, t Target, p portal, iface string) error {
	r, err := m.run(ctx, []string{"-m", "discovery", "-t", "sendtargets", "-p", p.String(), "-I", iface})
	if err != nil {
		return &Error{Step: "discovery", Msg: "cannot run iscsiadm", Err: err}
	}
	if r.Exit != 0 {
		return exitError("discovery", r, t, t.CHAPUser != "")
	}
	var offered []string
	at := false
	for _, line := range strings.Split(r.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		addr, name := f[0], f[1]
		if name != t.Target {
			if len(offered) < 8 {
				offered = append(offered, name)
			}
			continue
		}
		if i := strings.LastIndexByte(addr, ','); i >= 0 {
			addr = addr[:i]
		}
		if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Unmap() == p.addr && int(ap.Port()) == p.port {
			at = true
		} else {
			offered = append(offered, name+" at "+addr)
		}
	}
	if !at {
		what := "nothing"
		if len(offered) > 0 {
			what = strings.Join(offered, ", ")
		}
		return &Error{Step: "discovery", Msg: fmt.Sprintf("portal %s does not offer %s at this address (it offers: %s): check the target name, that the target's ACL admits initiator %s (targets hide themselves from others), and use the address the target advertises", p, t.Target, what, t.Initiator)}
	}
	return nil
}

func nodeArgs(target string, p portal, iface string) []string {
	return []string{"-m", "node", "-T", target, "-p", p.String(), "-I", iface}
}

// configureNode sets the node record's settings in one update.
func (m *Manager) configureNode(ctx context.Context, t Target, p portal, iface string) error {
	args := append(nodeArgs(t.Target, p, iface), "-o", "update", "-n", "node.startup", "-v", "manual")
	if t.MaxCommands > 0 {
		args = append(args, "-n", "node.session.cmds_max", "-v", strconv.Itoa(t.MaxCommands))
	}
	if t.QueueDepth > 0 {
		args = append(args, "-n", "node.session.queue_depth", "-v", strconv.Itoa(t.QueueDepth))
	}
	if t.CHAPUser != "" {
		args = append(args, "-n", "node.session.auth.authmethod", "-v", "CHAP", "-n", "node.session.auth.username", "-v", t.CHAPUser)
	} else {
		args = append(args, "-n", "node.session.auth.authmethod", "-v", "None")
	}
	r, err := m.run(ctx, args)
	if err != nil {
		return &Error{Step: "node settings", Msg: "cannot run iscsiadm", Err: err}
	}
	if r.Exit != 0 {
		return exitError("node settings", r, t, false)
	}
	return nil
}

func (m *Manager) login(ctx context.Context, t Target, p portal, iface string) error {
	r, err := m.run(ctx, append(nodeArgs(t.Target, p, iface), "--login"))
	if err != nil {
		return &Error{Step: "login", Msg: "cannot run iscsiadm", Err: err}
	}
	switch r.Exit {
	case 0:
		m.logf("logged in to %s at %s through iface %s", t.Target, p, iface)
		return nil
	case exitSessExists:
		m.logf("%s at %s: already logged in", t.Target, p)
		return nil
	}
	return exitError("login", r, t, t.CHAPUser != "")
}

// waitDevice waits for the LUN's block device: udev's by-path link first,
// sysfs as the fallback. A reused session whose LUN is not there yet is
// rescanned once (the LUN may have been added since the login).
func (m *Manager) waitDevice(ctx context.Context, t Target, p portal, reused bool) (Device, error) {
	timeout := m.DeviceTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	grace := m.LinkGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rescanned := !reused
	var seen time.Time
	pause := 10 * time.Millisecond
	for {
		sess, sok := m.findSession(t.Target, p)
		addrText := p.addr.String()
		if sok && sess.addr != "" {
			addrText = sess.addr
		}
		link := filepath.Join(m.dev(), "disk", "by-path", ByPathName(addrText, p.port, t.Target, t.LUN))
		if real, err := filepath.EvalSymlinks(link); err == nil {
			if ok, _ := m.isBlock(real); ok {
				d := Device{Name: filepath.Base(real), Path: filepath.Join(m.dev(), filepath.Base(real)), ByPath: link}
				if sok {
					d.Session, d.Iface = sess.id, sess.iface
				}
				return d, nil
			}
		}
		if sok {
			if name, ok := m.lunDevice(sess, t.LUN); ok {
				path := filepath.Join(m.dev(), name)
				if isBlk, _ := m.isBlock(path); isBlk {
					if seen.IsZero() {
						seen = time.Now()
					}
					if time.Since(seen) >= grace {
						m.logf("udev made no %s within %s of %s appearing: the layer's mount waits for that link; check systemd-udevd and its 60-persistent-storage rules", link, grace, path)
						return Device{Name: name, Path: path, Session: sess.id, Iface: sess.iface}, nil
					}
				}
			} else if !rescanned {
				rescanned = true
				m.logf("LUN %d is not in session %d yet; rescanning it", t.LUN, sess.id)
				if r, err := m.run(ctx, []string{"-m", "session", "-r", strconv.Itoa(sess.id), "--rescan"}); err == nil && r.Exit != 0 {
					m.logf("rescan of session %d failed (iscsiadm exit %d: %s)", sess.id, r.Exit, lastLines(r.Stderr))
				}
			}
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("logged in, but %s did not appear within %s", t, timeout)
			switch {
			case !sok:
				msg += ": no session for it in " + filepath.Join(m.sysfs(), "class", "iscsi_session") + " (did iscsid log in? journalctl -u iscsid)"
			case !seen.IsZero():
				msg += " (sysfs shows it, but not as a block device under " + m.dev() + ": is devtmpfs mounted?)"
			default:
				msg += fmt.Sprintf(": session %d has no LUN %d; check the target exports LUN %d to initiator %s (iscsiadm -m session -P 3 lists what it sees)", sess.id, t.LUN, t.LUN, t.Initiator)
			}
			return Device{}, &Error{Step: "device", Msg: msg}
		case <-time.After(pause):
		}
		if pause < 200*time.Millisecond {
			pause *= 2
		}
	}
}

// ByPathName is udev's by-path name of an iSCSI LUN (path_id's
// handle_scsi_iscsi and format_lun_number): the connection's persistent
// address as the kernel prints it, IPv6 without brackets.
func ByPathName(addr string, port int, target string, lun int) string {
	l := "lun-" + strconv.Itoa(lun)
	if lun >= 256 {
		l = fmt.Sprintf("lun-0x%04x%04x00000000", lun&0xffff, (lun>>16)&0xffff)
	}
	return fmt.Sprintf("ip-%s:%d-iscsi-%s-%s", addr, port, target, l)
}

func (m *Manager) isBlock(path string) (bool, error) {
	if m.IsBlockDevice != nil {
		return m.IsBlockDevice(path)
	}
	return isBlockDevice(path)
}

func (m *Manager) run(ctx context.Context, args []string) (Result, error) {
	m.logf("iscsiadm %s", strings.Join(args, " "))
	run := m.Run
	if run == nil {
		run = ExecRunner
	}
	return run(ctx, args)
}
