// Package netid gives a network host the one spelling that identifies it,
// so that what two definitions spell differently but mean alike (an iSCSI
// portal, an NFS server) is one attachment on the node: one unit name in
// the generator, one reference in the helper. A second unit for the same
// thing would let stopping one release it under the other.
package netid

import (
	"net/netip"
	"strings"
)

// Host returns host's canonical form: an IP address (with or without
// [brackets], IPv4-mapped IPv6 or not, any case and zero compression) as
// netip writes it, the IPv4 form for a mapped address; a host name
// lower-cased without a trailing dot (DNS names are case-insensitive, and
// the root's dot changes nothing for a fully qualified name). Anything
// else, such as "010.0.0.5" (which inet_aton would read as octal and Go's
// resolver as a name), is a name to the resolver and kept as one.
func Host(host string) string {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
