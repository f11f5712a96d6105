#!/bin/bash
# cleanup-host.sh: remove what testbeds of a test process that died (SIGKILL, `go test`
# timeout) may have left on the host. A testbed whose test ends normally cleans up after
# itself (Testbed.Close); this is only for crashes.
#
# What it does:
#   - for every cgroup testbed/NAME (in /sys/fs/cgroup, or /sys/fs/cgroup/{systemd,unified}
#     on a hybrid host): kills the processes in it (systemd-nspawn and the container), and
#     removes the cgroups, deepest first;
#   - removes the per-testbed work directories ($TMPDIR/strata-testbed-*) that no running
#     process uses.
# Loop devices are not touched (they cannot be attributed safely): it lists the attached
# ones. Mounts need no cleanup: the harness mounts only inside a private mount namespace,
# which the kernel drops with its last process.
#
# Usage: cleanup-host.sh [--dry-run]
set -euo pipefail
dry=0
[ "${1:-}" != "--dry-run" ] || dry=1
run() { if [ $dry -eq 1 ]; then echo "would: $*"; else "$@"; fi; }

if [ "$(id -u)" -ne 0 ]; then
	echo "cleanup-host.sh: must run as root" >&2
	exit 1
fi

parents=()
for h in /sys/fs/cgroup /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
	[ -d "$h/testbed" ] && parents+=("$h/testbed")
done

for p in "${parents[@]}"; do
	for cg in "$p"/*/; do
		[ -d "$cg" ] || continue
		cg=${cg%/}
		pids=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | tr '\n' ' ')
		if [ -n "${pids// /}" ]; then
			echo "cleanup-host.sh: $cg: killing $pids"
			# SIGTERM to nspawn first shuts the container down cleanly.
			for pid in $pids; do
				[ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd-nspawn ] && run kill -TERM "$pid" || true
			done
			[ $dry -eq 1 ] || sleep 3
			[ ! -e "$cg/cgroup.kill" ] || run sh -c "echo 1 > '$cg/cgroup.kill'"
			for pid in $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null); do
				run kill -KILL "$pid" 2>/dev/null || true
			done
			[ $dry -eq 1 ] || sleep 0.2
		fi
		echo "cleanup-host.sh: removing cgroup $cg"
		find "$cg" -depth -type d -print0 | while IFS= read -r -d '' d; do run rmdir "$d" || true; done
	done
	run rmdir "$p" 2>/dev/null || true
done

tmp=${TMPDIR:-/tmp}
for d in "$tmp"/strata-testbed-*/; do
	[ -d "$d" ] || continue
	d=${d%/}
	if command -v fuser >/dev/null && fuser -s "$d" 2>/dev/null; then
		echo "cleanup-host.sh: $d is in use; leaving it"
		continue
	fi
	echo "cleanup-host.sh: removing $d"
	run rm -rf --one-file-system "$d"
done

if losetup -a | grep -q .; then
	echo "cleanup-host.sh: attached loop devices (check by hand; not touched):"
	losetup -a
fi
echo "cleanup-host.sh: done"
