package definition

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/strata-project/strata/internal/layout"
)

// Syntax checks for the names and addresses a definition holds. Each returns
// "" when the value is fine, else what is wrong and what would be right.

// MachineNameProblem checks a container name as systemd checks machine
// names (hostname_is_valid): labels of 1-63 letters, digits and '-', not
// starting or ending with '-', joined by single dots, at most 64 bytes. The
// name also becomes part of unit names, which systemd caps at 255 bytes.
// The problem reads after the name: "NAME is not a container name: %s".
func MachineNameProblem(name string) string {
	const right = "a machine name is 1-64 characters: labels of letters, digits and '-' (not first or last in a label) joined by '.' (systemd-nspawn's rule)"
	switch {
	case name == "":
		return "is empty; " + right
	case len(name) > 64:
		return fmt.Sprintf("is %d characters long; %s", len(name), right)
	case name[0] == '-':
		// Checked first: no command could address it, systemctl and
		// machinectl included.
		return "starts with '-', which every command would take for an option; " + right
	}
	for _, label := range strings.Split(name, ".") {
		if msg := machineLabelProblem(label, right); msg != "" {
			return msg
		}
	}
	if n := len(unit.UnitNamePathEscape(name)); n > maxEscapedName {
		return fmt.Sprintf("is %d bytes once escaped for unit names (each '-' is \\x2d), which makes var-lib-machines-NAME.mount longer than systemd's 255 bytes: use a name with fewer '-' (at most %d bytes escaped)", n, maxEscapedName)
	}
	return ""
}

// maxEscapedName keeps the longest unit names a machine name leads to
// (var-lib-machines-NAME.mount, run-strata-upper-NAME.mount, with NAME
// path-escaped) within systemd's 255 bytes (UNIT_NAME_MAX).
const maxEscapedName = 255 - len(layout.MachinesMountPrefix) - len(".mount")

func machineLabelProblem(label, right string) string {
	switch {
	case label == "":
		return "has an empty label (a '.' first, last or doubled); " + right
	case len(label) > 63:
		return fmt.Sprintf("has a label of %d characters (at most 63); %s", len(label), right)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Sprintf("has a label starting or ending with '-' (%q); %s", label, right)
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			if c == '_' {
				return fmt.Sprintf("contains %q; use '-' instead of '_': %s", c, right)
			}
			return fmt.Sprintf("contains %q; %s", c, right)
		}
	}
	return ""
}

var cephName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]*$`)

// CephNameProblem checks a pool, namespace, image or snapshot name. Ceph
// itself allows more, but '/', '@' and ':' are separators in device paths
// and map lines, and spaces break the kernel's map line.
func CephNameProblem(what, name string) string {
	if name == "" {
		return fmt.Sprintf("%s name is empty", what)
	}
	if len(name) > 250 || !cephName.MatchString(name) {
		return fmt.Sprintf("%s name %q is not usable: use letters, digits, '_', '.', '+' and '-' (not first), at most 250 characters", what, name)
	}
	return ""
}

var cephxID = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// CephxIDProblem checks a cephx user id such as "admin" (without "client.").
func CephxIDProblem(id string) string {
	if strings.HasPrefix(id, "client.") {
		return fmt.Sprintf("cephx user %q includes the \"client.\" prefix: write %q", id, strings.TrimPrefix(id, "client."))
	}
	if !cephxID.MatchString(id) {
		return fmt.Sprintf("cephx user %q is not valid: use letters, digits, '_', '.' and '-'", id)
	}
	return ""
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// HostProblem checks a host name or IP address (IPv6 without brackets).
func HostProblem(host string) string {
	if host == "" {
		return "host is empty"
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return ZoneProblem(a)
	}
	if len(host) > 253 {
		return fmt.Sprintf("host name is %d characters long (at most 253)", len(host))
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		// No host name ends in a number (RFC 3696: top-level domains are
		// not all-numeric), and inet_aton, which mount.nfs, iscsiadm and
		// others may use, reads "010.0.0.5" as 8.0.0.5 and "10.5" as
		// 10.0.0.5: one text, two addresses. The helper's krbd refuses
		// such monitors alike.
		return fmt.Sprintf("%q looks like an IPv4 address but is not one in the usual form: write four decimal numbers 0-255 without leading zeros (e.g. 10.0.0.5)", host)
	}
	for _, l := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if !hostLabel.MatchString(l) {
			return fmt.Sprintf("%q is neither an IP address nor a valid host name", host)
		}
	}
	return ""
}

// ZoneProblem refuses an IPv6 address with a zone ("fe80::1%eth0"). netip
// accepts any text after '%', and neither the kernel's Ceph client, mount.nfs
// nor iscsiadm take a zone the same way; servers of images have routable
// addresses.
func ZoneProblem(a netip.Addr) string {
	if a.Zone() == "" {
		return ""
	}
	return fmt.Sprintf("%q has an IPv6 zone (the text after '%%'): Strata does not take zones; give a global or unique local address (e.g. fd00::1)", a.String())
}

// MonitorProblem checks a Ceph monitor address as an admin writes it:
// "1.2.3.4", "1.2.3.4:6789", "[::1]", "[::1]:3300", "mon1.example.com",
// "mon1:6789", each optionally prefixed "v1:" or "v2:" (messenger version).
func MonitorProblem(mon string) string {
	const right = "write IPv4, [IPv6] or a host name, with an optional :port and v1:/v2: prefix, e.g. 192.168.3.253, [fd00::1]:3300, v2:mon1.example.com:3300"
	addr := mon
	for _, p := range []string{"v1:", "v2:"} {
		addr = strings.TrimPrefix(addr, p)
	}
	if addr == "" {
		return "monitor address is empty; " + right
	}
	host, port := addr, ""
	if strings.HasPrefix(addr, "[") {
		end := strings.Index(addr, "]")
		if end < 0 {
			return fmt.Sprintf("monitor %q has no closing ']'; %s", mon, right)
		}
		host, port = addr[1:end], strings.TrimPrefix(addr[end+1:], ":")
		if rest := addr[end+1:]; rest != "" && !strings.HasPrefix(rest, ":") {
			return fmt.Sprintf("monitor %q has text after ']'; %s", mon, right)
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return fmt.Sprintf("monitor %q: %q is not an IPv6 address; %s", mon, host, right)
		}
		if p := ZoneProblem(a); p != "" {
			return fmt.Sprintf("monitor %q: %s", mon, p)
		}
	} else {
		if strings.Count(addr, ":") > 1 {
			return fmt.Sprintf("monitor %q looks like an IPv6 address without brackets; %s", mon, right)
		}
		if i := strings.Index(addr, ":"); i >= 0 {
			host, port = addr[:i], addr[i+1:]
			if port == "" {
				return fmt.Sprintf("monitor %q has an empty port; %s", mon, right)
			}
		}
		if p := HostProblem(host); p != "" {
			return fmt.Sprintf("monitor %q: %s; %s", mon, p, right)
		}
	}
	if port != "" {
		if p := PortProblem(port); p != "" {
			return fmt.Sprintf("monitor %q: %s", mon, p)
		}
	}
	return ""
}

// PortProblem checks a TCP port number written as text.
func PortProblem(port string) string {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return ""
}

// iscsiName follows RFC 3720's iSCSI names: after the iqn. date, letters,
// digits, '.', '-' and ':' ('_' too, which some targets use); nothing that
// quoting in iscsiadm's records or a unit would have to care about.
var iscsiName = regexp.MustCompile(`^(iqn\.\d{4}-\d{2}\.[A-Za-z0-9.:_-]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?)$`)

// ISCSINameProblem checks an iSCSI qualified name (iqn., eui. or naa.).
func ISCSINameProblem(what, name string) string {
	if !iscsiName.MatchString(name) {
		return fmt.Sprintf("%s %q is not an iSCSI name: write iqn.YYYY-MM.reversed.domain[:identifier], eui.<16 hex digits> or naa.<16 or 32 hex digits>", what, name)
	}
	return ""
}

// PathProblem checks an absolute path that a unit will name. '\' is
// refused because each consumer reads it differently (systemd-nspawn --bind
// and RequiresMountsFor= drop it, overlayfs and libmount escape with it);
// trailing white space because systemd strips it from a setting's value.
func PathProblem(p string) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("path %q is not absolute: start it with '/'", p)
	}
	if strings.Contains(p, `\`) {
		return fmt.Sprintf("path %q contains '\\': systemd and mount read it as an escape; rename the file or directory", p)
	}
	if strings.TrimRight(p, " ") != p {
		return fmt.Sprintf("path %q ends with a space, which systemd strips from settings: remove it", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." {
			return fmt.Sprintf("path %q contains %q: write it without . or .. components", p, part)
		}
	}
	return ""
}

// OverlayPathProblem checks a path that goes into overlayfs's options
// (lowerdir=, upperdir=, workdir=): ':' separates lower layers, ',' options,
// and libmount reads '"' as quoting.
func OverlayPathProblem(p string) string {
	if i := strings.IndexAny(p, `:,"`); i >= 0 {
		return fmt.Sprintf("path %q contains %q, which overlayfs's mount options cannot hold (':' separates layers, ',' options): rename or bind the directory elsewhere", p, p[i])
	}
	return ""
}
