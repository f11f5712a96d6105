#!/bin/bash
# setup-host.sh: install the host packages the Strata testbed harness needs.
#
# Idempotent and fast when already done: it only asks dpkg which packages are
# present and calls apt-get (update + install) only when something is missing.
#
#   debootstrap            builds the Debian root (build-root.sh)
#   debian-archive-keyring verifies the archive debootstrap downloads from
#   systemd-container      systemd-nspawn (boots the root with systemd as PID 1)
#   squashfs-tools         mksquashfs (build-root.sh --squashfs)
#   erofs-utils            mkfs.erofs (the erofs layer scenario)
#   util-linux, mount      unshare, nsenter, losetup, mount/umount
#   systemd                busctl (talks to the container's system bus from the host)
#   zstd                   zstd compression support tools
set -euo pipefail

PKGS=(debootstrap debian-archive-keyring systemd-container squashfs-tools erofs-utils util-linux mount systemd zstd)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-host.sh: must run as root" >&2
	exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$st" != "installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	# Test processes running in parallel may all get here: one installs at a time.
	lockdir=/run/lock
	[ -d "$lockdir" ] || lockdir=/tmp
	exec 9>"$lockdir/strata-testbed-setup-host.lock"
	flock 9
	echo "setup-host.sh: installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi

# Sanity checks: the tools the harness calls must now be on PATH.
for c in debootstrap systemd-nspawn mksquashfs unshare nsenter losetup mount umount busctl; do
	if ! command -v "$c" >/dev/null 2>&1; then
		echo "setup-host.sh: $c still missing after install" >&2
		exit 1
	fi
done
# The harness needs the loop driver (/dev/loop-control) and cgroup file systems.
if [ ! -e /dev/loop-control ]; then
	echo "setup-host.sh: /dev/loop-control missing (no loop driver?)" >&2
	exit 1
fi
if [ ! -d /sys/fs/cgroup ]; then
	echo "setup-host.sh: /sys/fs/cgroup missing" >&2
	exit 1
fi
echo "setup-host.sh: host ready"
