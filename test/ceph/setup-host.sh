#!/bin/bash
# setup-host.sh: install the Debian packages the throwaway Ceph cluster
# (cluster.sh), the image builder (image/, cmd/strata-image) and their tests
# need. Idempotent and quick when everything is there: apt-get runs (update
# once, then install) only when a package is missing.
#
#   ceph-mon ceph-osd ceph-mgr   the daemons of the single-node cluster
#   ceph-common                  ceph, rbd, ceph-authtool, monmaptool
#   librados-dev librbd-dev      headers for go-ceph (cgo, -tags pacific)
#   rbd-fuse fuse                a pool's images as files (fusermount)
#   squashfs-tools               mksquashfs (images), unsquashfs
#   erofs-utils                  mkfs.erofs (strata image build --fs erofs), fsck.erofs
#   uuid-runtime                 uuidgen (OSD fsid)
set -euo pipefail

PKGS=(ceph-mon ceph-osd ceph-mgr ceph-common librados-dev librbd-dev rbd-fuse fuse squashfs-tools erofs-utils uuid-runtime)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-host.sh: must run as root" >&2
	exit 1
fi

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done

if [ ${#missing[@]} -gt 0 ]; then
	# Parallel test processes may all get here: one installs at a time.
	lockdir=/run/lock
	[ -d "$lockdir" ] || lockdir=/tmp
	exec 9>"$lockdir/strata-ceph-setup-host.lock"
	flock 9
	missing=()
	for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "setup-host.sh: installing: ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

for c in ceph-mon ceph-osd ceph-mgr ceph ceph-authtool monmaptool rbd rbd-fuse fusermount mksquashfs mkfs.erofs uuidgen; do
	if ! command -v "$c" >/dev/null 2>&1; then
		echo "setup-host.sh: $c still missing after install" >&2
		exit 1
	fi
done
for h in /usr/include/rados/librados.h /usr/include/rbd/librbd.h; do
	if [ ! -e "$h" ]; then
		echo "setup-host.sh: $h missing after install" >&2
		exit 1
	fi
done
if [ ! -e /dev/fuse ]; then
	echo "setup-host.sh: /dev/fuse missing (no fuse driver?)" >&2
	exit 1
fi
