//go:build linux

package iscsi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

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
