//go:build linux

// Package iscsi logs a node in to and out of iSCSI LUNs with open-iscsi's
// iscsiadm, and hands back the LUN's block device with its queue tuned.
//
// That is its one job. Around it, kept small and explicit:
//
//   - The portal iscsiadm gets is always ip:port ([ip]:port for IPv6): a host
//     name is resolved first (Resolver), so node records, sysfs and udev's
//     /dev/disk/by-path name all see the same address.
//   - The initiator name the definition chooses is set on an iface of its own,
//     "strata-" + 12 hex digits of the name's SHA-256 (iscsiadm -m iface -o new
//     / -o update -n iface.initiatorname), so two definitions with different
//     initiators never rewrite each other's iface, and records created through
//     it carry the right name. /etc/iscsi/initiatorname.iscsi is not touched.
//   - Node settings (node.startup manual, node.session.cmds_max,
//     node.session.queue_depth, node.session.auth.authmethod/username) go
//     through one `iscsiadm -m node -o update` with several -n/-v pairs.
//   - The CHAP password never reaches an argv, an environment, a log line or
//     an error: iscsiadm can take a record value only from -v (argv), so the
//     password is written straight into the node record file iscsiadm itself
//     reads at login (/etc/iscsi/nodes/TARGET/ADDR,PORT,TPGT/IFACE, 0600 in a
//     0700 directory, as iscsiadm keeps it), under iscsiadm's own database
//     lock (/run/lock/iscsi/lock.write), with a temporary file renamed over
//     the record. iscsiadm then sends it to iscsid over its local socket.
//     The record is deleted at logout.
//   - Login is idempotent: a session already in sysfs for the target and
//     portal is reused (nothing is run), and iscsiadm's "session exists"
//     (exit 15) is success. Logout of a session that is not there (exit 21,
//     2) is success. Every LUN attached through the package holds a
//     reference under /run/strata/iscsi, one per holder (Target.Holder: the
//     attach unit), keyed by the resolved portal address; the session is
//     logged out only when the last reference to it is released, since one
//     session carries all of a target's LUNs.
//   - The LUN's device is found through udev's
//     /dev/disk/by-path/ip-ADDR:PORT-iscsi-TARGET-lun-N and, as a fallback,
//     through sysfs (/sys/class/iscsi_session/sessionS/device/target*/H:C:T:LUN/block/DEV),
//     waiting a bounded time; then queue_depth (/sys/block/DEV/device/queue_depth)
//     and the I/O scheduler (/sys/block/DEV/queue/scheduler) are written.
//   - iscsiadm's exit codes (iscsiadm(8) EXIT STATUS) are decoded into
//     messages that say what to check.
//
// Every dependency (the iscsiadm runner, the resolver, the sysfs, /dev,
// /etc/iscsi and /run roots, the block-device check) is a field of Manager,
// so tests run against a fake iscsiadm and a fake sysfs tree.
package iscsi
