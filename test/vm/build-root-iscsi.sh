#!/bin/bash
# build-root-iscsi.sh: the VM root variant with open-iscsi (iscsiadm, iscsid), for the
# iSCSI end-to-end test (iscsi_test.go).
#
#   build-root-iscsi.sh [--force] [DIR]     (default DIR: /var/lib/strata-vm/root-iscsi)
#
# Produces DIR (a debootstrap root) and DIR.sqfs: test/testbed/build-root.sh with
# open-iscsi added to debootstrap's --include (STRATA_TESTBED_EXTRA_PACKAGES, part of the
# root's stamp), so it gets the same post-processing, stamp (idempotent), locking and
# mirror detection; only the package list differs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
force=()
dir=/var/lib/strata-vm/root-iscsi
for a in "$@"; do
	case "$a" in
	--force) force=(--force) ;;
	-*) echo "usage: $0 [--force] [DIR]" >&2; exit 2 ;;
	*) dir=$a ;;
	esac
done
export STRATA_TESTBED_EXTRA_PACKAGES=open-iscsi
exec "$here/../testbed/build-root.sh" "${force[@]}" --squashfs "$dir.sqfs" "$dir"
