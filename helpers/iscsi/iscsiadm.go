//go:build linux

package iscsi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-project/strata/internal/netid"
)

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

func (m *Manager) run(ctx context.Context, args []string) (Result, error) {
	m.logf("iscsiadm %s", strings.Join(args, " "))
	run := m.Run
	if run == nil {
		run = ExecRunner
	}
	return run(ctx, args)
}
