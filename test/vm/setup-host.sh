#!/bin/bash
# setup-host.sh: install the host packages the Strata VM test suite needs.
#
# Idempotent and fast when already done: dpkg is asked which packages are
# present and apt-get (update + install) runs only when something is missing.
#
#   qemu-system-x86   qemu-system-x86_64 (TCG: KVM cannot run a stock kernel here)
#   busybox-static    the VM's initramfs userland (static, no libraries to copy)
#   cpio              packs the initramfs (newc)
#   kmod              depmod/modprobe for the Debian kernel's modules tree (busybox depmod
#                     leaves modprobe broken)
#   squashfs-tools    mksquashfs (the modules tree as a squashfs disk)
#   iproute2          ip netns / bridge / tap for the VM's private network
#   zstd, xz-utils    decompress kernel modules for busybox insmod when they are compressed
#   tgt               tgtd + tgtadm: the userspace iSCSI target of the iSCSI test (in the netns)
#
# It also runs the sibling setup scripts it depends on: test/testbed/setup-host.sh
# (debootstrap, for the VM root variant with ceph-common) and test/ceph/setup-host.sh
# (the Ceph daemons and CLI for the throwaway cluster), when they exist; otherwise it
# installs the Ceph packages itself.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PKGS=(qemu-system-x86 busybox-static cpio kmod squashfs-tools iproute2 zstd xz-utils tgt)
CEPH_PKGS=(ceph-mon ceph-osd ceph-common uuid-runtime)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-host.sh: must run as root" >&2
	exit 1
fi

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

want=("${PKGS[@]}")
[ -x "$here/../ceph/setup-host.sh" ] || want+=("${CEPH_PKGS[@]}")

missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	lockdir=/run/lock
	[ -d "$lockdir" ] || lockdir=/tmp
	exec 9>"$lockdir/strata-vm-setup-host.lock"
	flock 9
	missing=()
	for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "setup-host.sh: installing: ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	exec 9>&-
fi

if [ -x "$here/../testbed/setup-host.sh" ]; then
	"$here/../testbed/setup-host.sh" >/dev/null
fi
if [ -x "$here/../ceph/setup-host.sh" ]; then
	"$here/../ceph/setup-host.sh" >/dev/null
fi

for c in qemu-system-x86_64 cpio depmod modprobe mksquashfs ip ceph-mon ceph-osd ceph ceph-authtool monmaptool rbd uuidgen tgtd tgtadm; do
	if ! command -v "$c" >/dev/null 2>&1; then
		echo "setup-host.sh: $c still missing after install" >&2
		exit 1
	fi
done
[ -x /bin/busybox ] || { echo "setup-host.sh: /bin/busybox missing" >&2; exit 1; }
ldd_out=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
if [[ $ldd_out != *"not a dynamic"* ]]; then
	echo "setup-host.sh: /bin/busybox is not static (busybox-static needed)" >&2
	exit 1
fi
[ -e /dev/net/tun ] || { echo "setup-host.sh: /dev/net/tun missing (no tun driver?)" >&2; exit 1; }
