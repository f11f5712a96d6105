#!/bin/bash
# build-root.sh: build the Debian root (bookworm unless STRATA_TESTBED_SUITE says
# bullseye or trixie: the version matrix) that the Strata testbed boots
# with systemd as PID 1 (systemd-nspawn), and optionally a squashfs of it.
#
# Usage:
#   build-root.sh [--force] ROOTDIR
#   build-root.sh [--force] --squashfs OUT.sqfs ROOTDIR
#   build-root.sh --print-mirror      (print the mirror it would use, and exit)
#
# Environment:
#   STRATA_TESTBED_CACHE           cache directory (default /var/cache/strata-testbed);
#                                  debootstrap's .deb cache lives in $CACHE/debs.
#   STRATA_TESTBED_EXTRA_PACKAGES  extra packages for debootstrap --include (comma or space
#                                  separated); part of the stamp, so changing it rebuilds.
#   STRATA_TESTBED_POSTPROCESS     a bash script run with the new root as $1 after the
#                                  post-processing below (a variant's own configuration, e.g.
#                                  services to enable); its SHA-256 is part of the stamp.
#   STRATA_TESTBED_MIRROR          override the mirror. By default the mirror is read at run
#                                  time from this machine's apt configuration; no mirror
#                                  host name is written in this repository.
#   STRATA_TESTBED_SUITE           the Debian release (default bookworm); part of the stamp.
#                                  Another suite is taken from the mirror apt names for it,
#                                  else from the one apt names for bookworm (a Debian mirror
#                                  serves every release).
#   STRATA_TESTBED_APT_ETC         apt configuration directory to read (default /etc/apt; for tests).
#   STRATA_TESTBED_LOCK_WAIT       seconds a rebuild waits for running testbeds (default 600).
#
# Idempotent: ROOTDIR/etc/strata-testbed.stamp records the inputs (suite, variant, package
# list, recipe version). When it matches, nothing is done (well under a second). When it
# does not (or --force), the root is rebuilt in ROOTDIR.new and renamed into place, so an
# interrupted build never leaves a half-built root that looks finished. The squashfs is
# rebuilt only when OUT.stamp differs from the root's stamp.
set -euo pipefail

# Bump RECIPE when the post-processing below changes: it is part of the stamp.
RECIPE=3
SUITE=${STRATA_TESTBED_SUITE:-bookworm}
VARIANT=minbase
PACKAGES="systemd,systemd-sysv,dbus,systemd-container,squashfs-tools,util-linux,mount,udev,kmod"
HOSTNAME_IN_ROOT=strata-testbed
CACHE=${STRATA_TESTBED_CACHE:-/var/cache/strata-testbed}
APT_ETC=${STRATA_TESTBED_APT_ETC:-/etc/apt}

usage() {
	echo "usage: $0 [--force] [--squashfs OUT.sqfs] ROOTDIR | --print-mirror" >&2
	exit 2
}

log() { echo "build-root.sh: $*" >&2; }

force=0
sqfs=""
root=""
print_mirror=0
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=1 ;;
	--squashfs)
		[ $# -ge 2 ] || usage
		sqfs=$2
		shift
		;;
	--squashfs=*) sqfs=${1#--squashfs=} ;;
	--print-mirror) print_mirror=1 ;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[ -z "$root" ] || usage
		root=$1
		;;
	esac
	shift
done
[ -n "$root" ] || [ "$print_mirror" -eq 1 ] || usage

# find_mirror prints the URI of the apt source whose suites include $SUITE and that is
# not a -security archive, from the one-line format (sources.list, *.list) or deb822
# (*.sources). Disabled entries (Enabled: no) and non-deb types are ignored.
find_mirror() {
	local f suite=${1:-$SUITE}
	for f in "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v suite="$suite" '
			{ sub(/#.*/, "") }
			$1 != "deb" { next }
			{
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				uri = $(i); s = $(i + 1)
				if (s == suite && uri !~ /-security/ && uri ~ /^(https?|file):/) { print uri; exit }
			}' "$f"
	done
	for f in "$APT_ETC"/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v suite="$suite" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && enabled !~ /^(no|false)$/) {
					ns = split(suites, S, " "); nu = split(uris, U, " ")
					for (a = 1; a <= ns; a++) if (S[a] == suite)
						for (b = 1; b <= nu; b++)
							if (U[b] !~ /-security/ && U[b] ~ /^(https?|file):/) { print U[b]; found = 1; exit }
				}
				types = ""; uris = ""; suites = ""; enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{
				line = $0; key = tolower(line); sub(/:.*/, "", key)
				val = line; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = tolower(val)
			}
			END { if (!found) flush() }' "$f"
	done
}

mirror() {
	if [ -n "${STRATA_TESTBED_MIRROR:-}" ]; then
		echo "$STRATA_TESTBED_MIRROR"
		return
	fi
	local m
	m=$(find_mirror | head -n1)
	[ -n "$m" ] || [ "$SUITE" = bookworm ] || m=$(find_mirror bookworm | head -n1)
	if [ -z "$m" ]; then
		log "no apt source for suite $SUITE found in $APT_ETC/sources.list{,.d/*.list,.d/*.sources}"
		log "set STRATA_TESTBED_MIRROR to a Debian mirror URI"
		exit 1
	fi
	echo "$m"
}

# assert_nothing_mounted_under DIR: refuse to delete a tree that has mounts in it
# (e.g. a root still in use by a running testbed, or a crashed chroot).
assert_nothing_mounted_under() {
	local d=$1
	if awk -v d="$d" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		log "something is mounted under $d; refusing to delete it:"
		awk -v d="$d" '$5 == d || index($5, d "/") == 1 { print "  " $5 }' /proc/self/mountinfo >&2
		exit 1
	fi
}

root_is_current() {
	[ "$force" -eq 0 ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_text" ]
}

build_root() {
	local new=$root.new m
	m=$(mirror)
	mkdir -p "$CACHE/debs" "$(dirname "$root")"
	assert_nothing_mounted_under "$new"
	rm -rf --one-file-system "$new"
	log "debootstrap $SUITE ($VARIANT) into $new (include: $include)"
	local t0=$SECONDS
	if ! debootstrap --variant="$VARIANT" --include="$include" --components=main \
		--cache-dir="$CACHE/debs" "$SUITE" "$new" "$m" >"$CACHE/debootstrap.log" 2>&1; then
		log "debootstrap failed; last lines of $CACHE/debootstrap.log:"
		tail -n 30 "$CACHE/debootstrap.log" >&2
		[ ! -f "$new/debootstrap/debootstrap.log" ] || tail -n 30 "$new/debootstrap/debootstrap.log" >&2
		exit 1
	fi
	log "debootstrap took $((SECONDS - t0)) s"
	postprocess "$new"
	if [ -n "$post" ]; then
		log "variant post-processing: $post"
		bash "$post" "$new"
	fi
	printf '%s\n' "$stamp_text" >"$new/etc/strata-testbed.stamp"
	if [ -e "$root" ]; then
		assert_nothing_mounted_under "$root"
		rm -rf --one-file-system "$root"
	fi
	mv "$new" "$root"
	log "root ready: $root ($(du -sh --one-file-system "$root" | cut -f1))"
}

postprocess() {
	local r=$1
	# A fresh machine: systemd generates a machine ID at boot (nspawn passes one in).
	: >"$r/etc/machine-id"
	rm -f "$r/var/lib/dbus/machine-id"
	ln -s /etc/machine-id "$r/var/lib/dbus/machine-id"
	echo "$HOSTNAME_IN_ROOT" >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
		"$HOSTNAME_IN_ROOT" >"$r/etc/hosts"
	# Clear root's password (login on the console without one; nsenter needs none).
	sed -i 's/^root:[^:]*:/root::/' "$r/etc/shadow"
	# The testbed has no network: keep no mirror name in the image, and drop apt's lists.
	printf '# The Strata testbed runs without a network; no apt sources.\n' >"$r/etc/apt/sources.list"
	rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin
	rm -f "$r/var/cache/apt/archives/"*.deb
	# Deterministic boots: no timers that would wake up during a test, nothing that wants a
	# network or real hardware. (systemd-udevd is skipped by its own condition: /sys is
	# read-only under nspawn.)
	local u
	for u in apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer \
		e2scrub_reap.service dpkg-db-backup.timer systemd-tmpfiles-clean.timer \
		systemd-networkd-wait-online.service systemd-timesyncd.service \
		getty@tty1.service serial-getty@.service console-getty.service; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	# Persistent journal off (volatile root anyway); keep it small in memory.
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' >"$r/etc/systemd/journald.conf.d/strata-testbed.conf"
	# Mount points the harness binds into (see the Go package): persistent state and test
	# binaries. Created here because the root is the read-only lower layer at boot.
	mkdir -p "$r/var/lib/strata-testbed/persist"
	# Boot to multi-user.target (the default graphical.target is not installed in minbase).
	ln -sf /lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"
}

build_squashfs() {
	local out=$1 want
	want=$(cat "$stamp_file")
	if [ "$force" -eq 0 ] && [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$want" ]; then
		log "squashfs up to date: $out"
		return
	fi
	mkdir -p "$(dirname "$out")"
	rm -f "$out.tmp"
	local t0=$SECONDS
	log "mksquashfs $root -> $out"
	mksquashfs "$root" "$out.tmp" -comp zstd -no-xattrs -noappend -quiet -no-progress >&2
	mv "$out.tmp" "$out"
	printf '%s\n' "$want" >"$out.stamp"
	log "squashfs ready: $out ($(du -h "$out" | cut -f1), $((SECONDS - t0)) s)"
}

if [ "$print_mirror" -eq 1 ]; then
	mirror
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	log "must run as root"
	exit 1
fi

# Absolute paths (debootstrap wants an absolute --cache-dir; renames need stable paths).
root=$(realpath -m -- "$root")
[ "$root" != "/" ] || { log "refusing to use / as ROOTDIR"; exit 1; }
if [ -n "$sqfs" ]; then sqfs=$(realpath -m -- "$sqfs"); fi
CACHE=$(realpath -m -- "$CACHE")

extra=${STRATA_TESTBED_EXTRA_PACKAGES:-}
extra=$(echo "$extra" | tr ', ' '\n\n' | sed '/^$/d' | sort -u | paste -sd, -)
include=$PACKAGES
[ -z "$extra" ] || include="$include,$extra"

stamp_text=$(printf 'recipe=%s\nsuite=%s\nvariant=%s\ninclude=%s\narch=%s\n' \
	"$RECIPE" "$SUITE" "$VARIANT" "$include" "$(dpkg --print-architecture)")
# A variant's own post-processing: its content, not its path, decides (roots without one
# keep the stamp they had).
post=${STRATA_TESTBED_POSTPROCESS:-}
if [ -n "$post" ]; then
	post=$(realpath -- "$post")
	stamp_text=$(printf '%s\npostprocess=%s' "$stamp_text" "$(sha256sum <"$post" | cut -d' ' -f1)")
fi
stamp_file=$root/etc/strata-testbed.stamp

# Locking: ROOTDIR.lock is held shared by every running testbed (the Go harness) and by
# this script while it only checks or reads the root; a rebuild needs it exclusively, so
# it waits until no testbed uses the root (its lower layer must not vanish under a
# running container) and no other build runs. The wait is bounded: a test process that
# changes the inputs while it still has a testbed running would otherwise wait forever.
mkdir -p "$CACHE" "$(dirname "$root")"
exec 9>"$root.lock"
flock -s 9

if root_is_current; then
	log "root up to date: $root"
else
	lock_wait=${STRATA_TESTBED_LOCK_WAIT:-600}
	if ! flock -x -w "$lock_wait" 9; then
		log "the root needs a rebuild but is in use (a testbed is running?): gave up after $lock_wait s waiting for $root.lock"
		exit 1
	fi
	# Someone else may have rebuilt it while this one waited.
	if root_is_current; then
		log "root up to date: $root"
	else
		build_root
	fi
	flock -s 9
fi
if [ -n "$sqfs" ]; then
	# One squashfs build at a time per output file.
	exec 8>"$sqfs.lock"
	flock -x 8
	build_squashfs "$sqfs"
fi
