#!/bin/bash
# cleanup-host.sh: remove what testbeds of a test process that died (SIGKILL, a `go test`
# timeout) left on the host. A testbed whose test ends normally cleans up after itself
# (Testbed.Close), and when the test process dies nspawn gets SIGTERM (PR_SET_PDEATHSIG)
# and halts the container; what remains then is empty cgroups and the work directory.
#
# A testbed counts as stale when its cgroup testbed/NAME (in /sys/fs/cgroup, or
# /sys/fs/cgroup/{systemd,unified} on a hybrid host) is older than a minute and either
# holds no process or its systemd-nspawn lost its parent (re-parented to PID 1). Live
# testbeds of running tests are left alone, unless --all is given.
#
# For a stale testbed it kills what is left (SIGTERM to nspawn first: a clean halt),
# removes the cgroups deepest first, and removes its work directory
# ($TMPDIR/strata-testbed-NAME-*). Loop devices are not touched (the harness detaches
# the container's own at Close; here they cannot be attributed safely): the attached ones
# are listed. Mounts need no cleanup: the harness mounts only inside a private mount
# namespace, which the kernel drops with its last process.
#
# Usage: cleanup-host.sh [--all] [--dry-run]
set -euo pipefail
all=0
dry=0
for a in "$@"; do
	case "$a" in
	--all) all=1 ;;
	--dry-run) dry=1 ;;
	*) echo "usage: $0 [--all] [--dry-run]" >&2; exit 2 ;;
	esac
done
run() { if [ $dry -eq 1 ]; then echo "would: $*"; else "$@"; fi; }
log() { echo "cleanup-host.sh: $*"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "cleanup-host.sh: must run as root" >&2
	exit 1
fi

parents=()
for h in /sys/fs/cgroup /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
	[ -d "$h/testbed" ] && parents+=("$h/testbed")
done

procs_of() { find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un | tr '\n' ' '; }

# Decide per testbed name (over all hierarchies) whether it is stale.
declare -A stale=()
declare -A live=()
for p in "${parents[@]}"; do
	for cg in "$p"/*/; do
		[ -d "$cg" ] || continue
		cg=${cg%/}
		name=$(basename "$cg")
		if [ $all -eq 1 ]; then stale[$name]=1; continue; fi
		if [ -n "$(find "$cg" -maxdepth 0 -mmin -1)" ]; then live[$name]=1; continue; fi
		pids=$(procs_of "$cg")
		orphan=1
		for pid in $pids; do
			if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = systemd-nspawn ] &&
				[ "$(awk '{print $4}' /proc/"$pid"/stat 2>/dev/null)" != 1 ]; then
				orphan=0
			fi
		done
		if [ -n "${pids// /}" ] && [ $orphan -eq 0 ]; then live[$name]=1; else stale[$name]=1; fi
	done
done

for name in "${!stale[@]}"; do
	[ -z "${live[$name]:-}" ] || continue
	for p in "${parents[@]}"; do
		cg=$p/$name
		[ -d "$cg" ] || continue
		pids=$(procs_of "$cg")
		if [ -n "${pids// /}" ]; then
			log "$cg: killing $pids"
			for pid in $pids; do
				[ "$(cat /proc/"$pid"/comm 2>/dev/null)" != systemd-nspawn ] || run kill -TERM "$pid" || true
			done
			[ $dry -eq 1 ] || sleep 3
			[ ! -e "$cg/cgroup.kill" ] || run sh -c "echo 1 > '$cg/cgroup.kill'"
			for pid in $(procs_of "$cg"); do run kill -KILL "$pid" 2>/dev/null || true; done
			[ $dry -eq 1 ] || sleep 0.2
		fi
		log "removing cgroup $cg"
		find "$cg" -depth -type d -print0 | while IFS= read -r -d '' d; do run rmdir "$d" || true; done
	done
done
for p in "${parents[@]}"; do run rmdir "$p" 2>/dev/null || true; done

# Work directories of testbeds that have no cgroup any more.
tmp=${TMPDIR:-/tmp}
for d in "$tmp"/strata-testbed-*/; do
	[ -d "$d" ] || continue
	d=${d%/}
	name=$(basename "$d")
	name=${name#strata-testbed-}
	name=${name%-*}
	inuse=0
	for h in /sys/fs/cgroup /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
		[ ! -d "$h/testbed/$name" ] || inuse=1
	done
	if [ -n "${live[$name]:-}" ] || { [ $inuse -eq 1 ] && [ -z "${stale[$name]:-}" ]; }; then
		log "$d belongs to a live testbed; leaving it"
		continue
	fi
	log "removing $d"
	run rm -rf --one-file-system "$d"
done

attached=$(losetup -a)
if [ -n "$attached" ]; then
	log "attached loop devices (not touched; check by hand if they are a testbed's):"
	echo "$attached"
fi
log "done"
