//go:build linux

// Package krbd maps and unmaps Ceph RBD images through the Linux kernel's
// rbd driver by writing to sysfs, with no ceph-common, rbd CLI, librbd or cgo.
//
// It is the one job of this package: turn a Spec (monitors, cephx user,
// pool/namespace/image/snapshot, kernel map options) into the exact line the
// kernel expects on /sys/bus/rbd/add_single_major, write it, and hand back the
// /dev/rbdN device; and the reverse through remove_single_major. Everything
// else a node needs around that is kept small and explicit:
//
//   - Options are validated against the whole option table of the Linux 6.1
//     rbd and libceph parsers (drivers/block/rbd.c rbd_parameters,
//     net/ceph/ceph_common.c ceph_parameters) before anything is written, so
//     a typo fails with a message instead of a terse EINVAL from the kernel.
//   - Monitor addresses are rendered for the on-the-wire protocol ms_mode
//     selects: the kernel takes ip[:port] only, defaults the port to 6789
//     (CEPH_MON_PORT) whatever the mode, and sets the address type from
//     ms_mode, so msgr2 modes need explicit v2 (3300) ports. Which admin-written
//     address is usable in which mode follows Ceph's MonMap rules.
//   - The cephx secret goes into the kernel keyring (add_key type "ceph",
//     description "client.ID", payload the base64-decoded CryptoKey) on a
//     locked OS thread, so the written line carries key=client.ID and never
//     the secret. Only when the keyring is unusable (ENOSYS, EPERM,
//     EACCES, ENODEV) does the line fall back to secret=.
//   - Map is idempotent: an existing mapping of the same
//     pool/namespace/image/snapshot is reused; concurrent Strata processes
//     serialise on a flock of the sysfs bus directory.
//   - Kernel errnos are decoded into messages that say what to check, helped
//     by the rbd:/libceph: lines the kernel logged during the attempt.
//   - StablePath, Namer and UdevRules reproduce Ceph's udev naming
//     (/dev/rbd/POOL[/NS]/IMAGE[@SNAP]) for nodes without ceph-common.
//
// Secrets never appear in returned errors, log lines, or (on the keyring path)
// the written line.
package krbd
