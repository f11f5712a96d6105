//go:build linux

package krbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Monitor ports. The kernel's ceph_parse_ips (net/ceph/messenger.c) fills
// in CEPH_MON_PORT (6789) for an address without a port whatever ms_mode
// says, and build_initial_monmap (net/ceph/mon_client.c) then marks every
// initial monitor address MSGR2 or LEGACY from ms_mode alone. So a msgr2
// mode with a bare IP would speak msgr2 to the v1 port: every address we
// write therefore carries an explicit port matching the mode.
const (
	monPortV1 = 6789 // CEPH_MON_PORT_LEGACY
	monPortV2 = 3300 // CEPH_MON_PORT_IANA

	// maxMonitors is CEPH_MAX_MON: ceph_parse_ips fails with EINVAL past it.
	maxMonitors = 31
)

// Resolver turns a monitor host name into IP addresses. The kernel only
// takes IP addresses (its own DNS upcall needs a userspace helper a diskless
// node does not have), so host names are resolved before the line is
// rendered.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// DefaultResolver uses Go's resolver (pure Go in a cgo-free build: it reads
// /etc/hosts and /etc/resolv.conf).
func DefaultResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

type addrType int

const (
	typeAny addrType = iota // written without v1:/v2:
	typeV1                  // "v1:" legacy msgr1
	typeV2                  // "v2:" msgr2
)

// monAddr is one address as the admin wrote it.
type monAddr struct {
	typ  addrType
	host string     // host name, when not a literal
	ip   netip.Addr // literal address, when valid
	port uint16     // 0: not given
}

// monEntry is one monitor: a single address, or a Ceph addrvec
// "[v2:ip:3300,v1:ip:6789]" whose entries are alternatives for one monitor.
type monEntry struct {
	text  string
	addrs []monAddr
}

// parseMonitors accepts the forms admins write in ceph.conf's mon_host:
// "1.2.3.4", "1.2.3.4:6789", "[::1]:3300", "::1", "v2:1.2.3.4:3300",
// "mon.example.com[:port]", "[v2:1.2.3.4:3300,v1:1.2.3.4:6789]". An item may
// itself hold several monitors separated by ',', ';' or spaces, so a mon_host
// value can be pasted as one item.
func parseMonitors(items []string) ([]monEntry, error) {
	var out []monEntry
	var errs []error
	for _, item := range items {
		toks, err := splitMonitorList(item)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, tok := range toks {
			e, err := parseMonEntry(tok)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no monitors given")
	}
	return out, nil
}

// splitMonitorList splits on ',', ';' and whitespace outside brackets.
func splitMonitorList(s string) ([]string, error) {
	var toks []string
	depth, start := 0, 0
	flush := func(end int) {
		if t := s[start:end]; t != "" {
			toks = append(toks, t)
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '[':
			depth++
		case c == ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("monitor %q: unbalanced ']'", s)
			}
		case depth == 0 && (c == ',' || c == ';' || isLineSeparator(rune(c))):
			flush(i)
			start = i + 1
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("monitor %q: unbalanced '['", s)
	}
	flush(len(s))
	return toks, nil
}

func parseMonEntry(tok string) (monEntry, error) {
	// An addrvec starts with "[v": an IPv6 literal never starts with 'v'.
	if strings.HasPrefix(tok, "[v") {
		if !strings.HasSuffix(tok, "]") {
			return monEntry{}, fmt.Errorf("monitor %q: an address vector must end with ']'", tok)
		}
		e := monEntry{text: tok}
		for _, part := range strings.Split(tok[1:len(tok)-1], ",") {
			a, err := parseMonAddr(part)
			if err != nil {
				return monEntry{}, fmt.Errorf("monitor %q: %w", tok, err)
			}
			if a.typ == typeAny {
				return monEntry{}, fmt.Errorf("monitor %q: each address in a vector needs a v1: or v2: prefix", tok)
			}
			e.addrs = append(e.addrs, a)
		}
		return e, nil
	}
	a, err := parseMonAddr(tok)
	if err != nil {
		return monEntry{}, fmt.Errorf("monitor %q: %w", tok, err)
	}
	return monEntry{text: tok, addrs: []monAddr{a}}, nil
}

func parseMonAddr(s string) (monAddr, error) {
	var a monAddr
	switch {
	case strings.HasPrefix(s, "v1:"):
		a.typ, s = typeV1, s[3:]
	case strings.HasPrefix(s, "v2:"):
		a.typ, s = typeV2, s[3:]
	}
	if s == "" {
		return a, errors.New("empty address")
	}
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		return a, errors.New("contains a control character")
	}
	var host, port string
	switch {
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return a, errors.New("missing ']'")
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return a, errors.New("unexpected text after ']'")
			}
			port = port[1:]
			if port == "" {
				return a, errors.New("empty port")
			}
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return a, fmt.Errorf("%q in brackets is not an IPv6 address", host)
		}
	case strings.Count(s, ":") >= 2:
		// A bare IPv6 address; it cannot carry a port without brackets.
		host = s
	default:
		var hasPort bool
		host, port, hasPort = strings.Cut(s, ":")
		if hasPort && port == "" {
			return a, errors.New("empty port")
		}
	}
	if port != "" {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 || port[0] == '+' {
			return a, fmt.Errorf("port %q is not 1..65535", port)
		}
		a.port = uint16(p)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return a, fmt.Errorf("%q has a zone, which the kernel cannot parse", host)
		}
		a.ip = ip.Unmap()
		return a, nil
	}
	if err := checkHostName(host); err != nil {
		return a, err
	}
	a.host = host
	return a, nil
}

// checkHostName refuses anything that is neither an IP nor a DNS name, so a
// mistyped IPv4 address ("10.0.0.300") is reported instead of being sent to
// the resolver.
func checkHostName(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("host name %q is too long", h)
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not an IP address or a host name", h)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not an IP address or a host name", h)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%q is not a valid IPv4 address", h)
	}
	return nil
}

// pick decides which address of an entry is usable in the selected mode and
// with which port, following Ceph's MonMap::_add_ambiguous_addr (which rbd's
// own krbd.cc then filters by ms_mode):
//
//	v1:addr[:p]       legacy only, default port 6789
//	v2:addr[:p]       msgr2 only, default port 3300
//	addr              both: 3300 for msgr2, 6789 for legacy
//	addr:6789         legacy only (the legacy port implies msgr1)
//	addr:3300         msgr2 only (the IANA port implies msgr2)
//	addr:other        both, on that port
//	[v2:..,v1:..]     the element of the matching type
//
// It returns the usable addresses, or a reason the entry is not usable.
func (e monEntry) pick(useMsgr2 bool, mode string) ([]monAddr, string) {
	var out []monAddr
	for _, a := range e.addrs {
		switch a.typ {
		case typeV1:
			if useMsgr2 {
				continue
			}
			if a.port == 0 {
				a.port = monPortV1
			}
		case typeV2:
			if !useMsgr2 {
				continue
			}
			if a.port == 0 {
				a.port = monPortV2
			}
		default:
			switch {
			case a.port == 0 && useMsgr2:
				a.port = monPortV2
			case a.port == 0:
				a.port = monPortV1
			case a.port == monPortV1 && useMsgr2, a.port == monPortV2 && !useMsgr2:
				continue
			}
		}
		out = append(out, a)
	}
	if len(out) > 0 {
		return out, ""
	}
	if useMsgr2 {
		return nil, fmt.Sprintf("%s is a v1 (msgr1) address, but ms_mode=%s speaks msgr2: give its v2 address (v2:IP or IP:3300) or no port", e.text, mode)
	}
	return nil, fmt.Sprintf("%s is a v2 (msgr2) address, but without ms_mode (or with ms_mode=legacy) the kernel speaks msgr1: add ms_mode=prefer-crc (or crc, secure, prefer-secure), or give the v1 address (IP:6789)", e.text)
}

// monitorAddrs renders the monitor list for the line: the usable address
// of every monitor for the selected mode, host names resolved, duplicates
// dropped, in the order given. dropped lists monitors not usable in this
// mode (as Ceph's own rbd tool silently skips them); it is an error only if
// nothing is left.
func monitorAddrs(ctx context.Context, monitors []string, opts []string, resolve Resolver) (addrs []string, dropped []string, err error) {
	entries, err := parseMonitors(monitors)
	if err != nil {
		return nil, nil, err
	}
	useMsgr2, mode := msgr2(opts)
	if resolve == nil {
		resolve = DefaultResolver
	}
	seen := map[netip.AddrPort]bool{}
	var errs []error
	for _, e := range entries {
		picked, why := e.pick(useMsgr2, mode)
		if why != "" {
			dropped = append(dropped, why)
			continue
		}
		for _, a := range picked {
			ips := []netip.Addr{a.ip}
			if a.host != "" {
				ips, err = resolveHost(ctx, resolve, a.host)
				if err != nil {
					errs = append(errs, err)
					continue
				}
			}
			for _, ip := range ips {
				ap := netip.AddrPortFrom(ip, a.port)
				if seen[ap] {
					continue
				}
				seen[ap] = true
				// AddrPort.String brackets IPv6 ("[::1]:3300"), the form
				// ceph_parse_ips needs when a port follows.
				addrs = append(addrs, ap.String())
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, dropped, err
	}
	if len(addrs) == 0 {
		return nil, dropped, fmt.Errorf("no monitor address is usable with ms_mode=%s: %s", mode, strings.Join(dropped, "; "))
	}
	if len(addrs) > maxMonitors {
		return nil, dropped, fmt.Errorf("%d monitor addresses, the kernel accepts at most %d", len(addrs), maxMonitors)
	}
	return addrs, dropped, nil
}

func resolveHost(ctx context.Context, resolve Resolver, host string) ([]netip.Addr, error) {
	ips, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve monitor host %q: %w", host, err)
	}
	var out []netip.Addr
	for _, ip := range ips {
		// The kernel cannot take a zone (link-local scope); skip such
		// answers rather than fail if other addresses remain.
		if !ip.IsValid() || ip.Zone() != "" {
			continue
		}
		out = append(out, ip.Unmap())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve monitor host %q: no usable IP address", host)
	}
	return out, nil
}
