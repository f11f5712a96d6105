// Package layout holds the facts that the generator, the helper, the
// collector, the CLI and the udev namer must agree on about a node: where
// Strata puts things, what its units are called, where udev links a mapped
// RBD image, where the helper is installed, and the defaults a definition
// gets. Each fact is said here once; everything else imports it.
package layout

import "strings"

// Where Strata puts things on a node. Everything lives under /run, so a
// reboot starts clean, except the container roots, which go where
// systemd-nspawn@.service and machinectl look for machines.
const (
	MachinesDir = "/var/lib/machines" // overlay (container root) mount points
	RunDir      = "/run/strata"       // everything else Strata keeps at run time
	LayersDir   = RunDir + "/layers"  // shared read-only layer mounts
	UpperDir    = RunDir + "/upper"   // per-container tmpfs upper layers
	DevDir      = RunDir + "/dev"     // links to attached loop devices
	StateDir    = RunDir + "/state"   // how to release each attachment; started containers
	ISCSIDir    = RunDir + "/iscsi"   // iSCSI session records
	CDIDir      = RunDir + "/cdi"     // per container, the nspawn options its CDI devices resolved to
	GCLock      = RunDir + "/gc.lock" // serialises collections
	NspawnPath  = "/usr/bin/systemd-nspawn"
	SystemUnits = "/usr/lib/systemd/system"
	// ControlDir is where `systemctl set-property --runtime` keeps its drop-ins.
	ControlDir = "/run/systemd/system.control"
)

// HelperPath is where the package installs strata-helper, which units and
// the udev rule run. The Makefile sets it from PREFIX (-ldflags -X), so a
// build for another prefix names the helper where `make install` puts it.
var HelperPath = "/usr/libexec/strata/strata-helper"

// Unit-name prefixes of the units Strata writes or instantiates.
const (
	ContainerPrefix = "systemd-nspawn@"          // systemd's own container template
	ServicePrefix   = "strata-"                  // every service of Strata's own
	AttachPrefix    = ServicePrefix + "attach@"  // attach services (static template)
	CleanupPrefix   = ServicePrefix + "cleanup@" // collector runs (static template)
	UpperPrefix     = ServicePrefix + "upper-"   // upper layer preparation services
	HealthPrefix    = ServicePrefix + "health@"  // health checks: a timer and a service
)

// How the names of the mount units below RunDir and MachinesDir begin
// (systemd's path escaping of the directories, then '-').
const (
	RunMountPrefix      = "run-strata-"
	MachinesMountPrefix = "var-lib-machines-"
)

// UnitGlobs match the names of every unit Strata generates below its
// containers (the containers' own units excepted), for systemctl and
// journalctl.
func UnitGlobs() []string {
	return []string{ServicePrefix + "*", RunMountPrefix + "*", MachinesMountPrefix + "*"}
}

// DropInName is Strata's drop-in for a container unit and for instances
// of its static templates.
const DropInName = "50-strata.conf"

// ContainerUnit is the service that runs container name: systemd's own
// template, so machinectl start/stop/enable and .nspawn files work too.
func ContainerUnit(name string) string { return ContainerPrefix + name + ".service" }

// HealthUnit is the service that runs container name's health check; a
// timer of the same name (HealthTimer) starts it.
func HealthUnit(name string) string { return HealthPrefix + name + ".service" }

// HealthTimer starts the health check every interval while the container runs.
func HealthTimer(name string) string { return HealthPrefix + name + ".timer" }

// CDIEnvFile is the file the helper writes container name's CDI options
// into at each start, and its ExecStart= reads.
func CDIEnvFile(name string) string { return CDIDir + "/" + name + ".env" }

// DeviceAllowDropIn is the drop-in `strata-helper cdi` leaves for the
// DeviceAllow= entries of container name's CDI devices.
func DeviceAllowDropIn(name string) string {
	return ControlDir + "/" + ContainerUnit(name) + ".d/50-DeviceAllow.conf"
}

// AttachUnit is the attach service of attachment id: an instance of the
// static template strata-attach@.service.
func AttachUnit(id string) string { return AttachPrefix + id + ".service" }

// CleanupUnit is the static template instance that releases, when
// container name stops or restarts, what its old definition left.
func CleanupUnit(name string) string { return CleanupPrefix + name + ".service" }

// UpperUnit prepares the upper layer of container name.
func UpperUnit(name string) string { return UpperPrefix + name + ".service" }

// Instance is what follows prefix in the service name unit ("test" of
// systemd-nspawn@test.service with ContainerPrefix), and whether unit is a
// service with that prefix at all.
func Instance(unit, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(unit, prefix)
	if !ok {
		return "", false
	}
	if rest, ok = strings.CutSuffix(rest, ".service"); !ok {
		return "", false
	}
	return rest, true
}

// ContainerRoot is where a container's root file system is mounted.
func ContainerRoot(name string) string { return MachinesDir + "/" + name }

// MapperDir is where device-mapper names its devices (dm-verity ones).
const MapperDir = "/dev/mapper/"

// VerityDevicePath is the device a verity attachment (its ID is the dm
// name) provides.
func VerityDevicePath(id string) string { return MapperDir + id }

// VeritySetupPath is systemd's veritysetup, which opens and closes verity
// devices: part of systemd itself on Debian 12 (with libcryptsetup, a
// dependency of the systemd package), so nodes need nothing more.
const VeritySetupPath = "/lib/systemd/systemd-veritysetup"

// TrustDir is the node's trust store for signed verity root hashes: PEM
// certificates (*.pem, *.crt) that a signature must lead to. It lies in
// the first directory of the definitions' search path, which skips it.
const TrustDir = "/etc/strata/trust"

// RBDDir is where udev links mapped RBD images by name.
const RBDDir = "/dev/rbd/"

// RBDDevicePath is the stable device path udev gives a mapped image
// (Ceph's 50-rbd.rules, or Strata's own rule on nodes without
// ceph-common): /dev/rbd/POOL/[NS/]IMAGE[@SNAP]. The names are taken as
// they are: the definition's checks keep them to what udev leaves alone.
func RBDDevicePath(pool, ns, image, snap string) string {
	return RBDDir + RBDLinkName(pool, ns, image, snap)
}

// RBDLinkName is the link's name under RBDDir, POOL/[NS/]IMAGE[@SNAP]:
// what ceph-rbdnamer prints and udev's rule appends to "rbd/". An empty
// ns or snap (the image's head) adds nothing.
func RBDLinkName(pool, ns, image, snap string) string {
	p := pool + "/"
	if ns != "" {
		p += ns + "/"
	}
	p += image
	if snap != "" {
		p += "@" + snap
	}
	return p
}

// Defaults a definition gets for what it leaves out, and that the helper
// assumes when a command line leaves them out.
const (
	DefaultUpperSize        = "25%"   // an unbounded tmpfs upper lets one container eat the node's RAM
	DefaultCephUser         = "admin" // cephx id, without "client."
	DefaultISCSIPort        = 3260    // IANA's iSCSI port
	DefaultISCSIMaxCommands = 128     // imageapi's defaults for iSCSI attachments
	DefaultISCSIQueueDepth  = 16
	DefaultISCSIScheduler   = "mq-deadline"
)
