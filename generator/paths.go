package generator

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Where Strata puts things on a node. Everything lives under /run, so a
// reboot starts clean, except the container roots, which go where
// systemd-nspawn@.service and machinectl look for machines.
const (
	MachinesDir = "/var/lib/machines"  // overlay (container root) mount points
	LayersDir   = "/run/strata/layers" // shared read-only layer mounts
	UpperDir    = "/run/strata/upper"  // per-container tmpfs upper layers
	DevDir      = "/run/strata/dev"    // links to attached loop devices
	NspawnPath  = "/usr/bin/systemd-nspawn"
	SystemUnits = "/usr/lib/systemd/system"
)

// ContainerUnit is the service that runs container name: systemd's own
// template, so machinectl start/stop/enable and .nspawn files work too.
func ContainerUnit(name string) string { return "systemd-nspawn@" + name + ".service" }

// DropInName is Strata's drop-in for a container unit.
const DropInName = "50-strata.conf"

// ContainerRoot is where a container's root file system is mounted.
func ContainerRoot(name string) string { return MachinesDir + "/" + name }

// id names a shared attachment or layer on the node: kind, a readable tail
// and a hash of the identity. The hash makes it unique whatever the names
// hold; the result uses only [A-Za-z0-9._], so it is safe as a unit name,
// a directory, and inside overlayfs's lowerdir= (where ':' ',' '\' are special).
func id(kind, tail string, identity ...string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + strings.Join(identity, "\x00")))
	return kind + "_" + sanitize(tail) + "_" + hex.EncodeToString(sum[:5])
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if len(b.String()) > 40 {
		return b.String()[:40]
	}
	return b.String()
}

// AttachUnit is the attach service of attachment id: an instance of the
// static template strata-attach@.service.
func AttachUnit(id string) string { return "strata-attach@" + id + ".service" }

// CleanupUnit is the static template instance that releases, when
// container name stops or restarts, what its old definition left.
func CleanupUnit(name string) string { return "strata-cleanup@" + name + ".service" }

func prepareUnitName(name string) string { return "strata-upper-" + name + ".service" }
