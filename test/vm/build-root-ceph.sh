#!/bin/bash
# build-root-ceph.sh: the VM root variant with ceph-common (the rbd CLI and Ceph's own
# udev rule), for comparing strata-helper's krbd map with `rbd device map` in the VM.
#
#   build-root-ceph.sh [--force] [DIR]     (default DIR: /var/lib/strata-vm/root-ceph)
#
# Produces DIR (a debootstrap root) and DIR.sqfs. It is test/testbed/build-root.sh with
# ceph-common added to debootstrap's --include (STRATA_TESTBED_EXTRA_PACKAGES), so it
# gets the same post-processing, stamp (idempotent: ~0.02 s when up to date), locking
# and mirror detection; only the package list differs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
force=()
dir=/var/lib/strata-vm/root-ceph
for a in "$@"; do
	case "$a" in
	--force) force=(--force) ;;
	-*) echo "usage: $0 [--force] [DIR]" >&2; exit 2 ;;
	*) dir=$a ;;
	esac
done
export STRATA_TESTBED_EXTRA_PACKAGES=ceph-common
exec "$here/../testbed/build-root.sh" "${force[@]}" --squashfs "$dir.sqfs" "$dir"
