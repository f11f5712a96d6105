#!/bin/bash
# build-kernel.sh: Debian's stock kernel, its modules and a tiny initramfs for the
# Strata VM test suite (QEMU, TCG).
#
#   build-kernel.sh [--force] DIR
#   build-kernel.sh --print-package      (the linux-image package it would use, and exit)
#
# Produces, in DIR:
#   vmlinuz       the kernel of the linux-image-6.1.*-amd64 package that
#                 `apt-cache depends linux-image-amd64` names (Debian 12's current one);
#                 with STRATA_VM_KERNEL_SUITE=trixie, Debian 13's (6.12), from the same
#                 mirror through a private apt state in DIR.apt (the host's apt is untouched)
#   modules.sqfs  a squashfs whose root is /lib/modules/VERSION of that package, with
#                 modules.dep* made by kmod's depmod (busybox depmod leaves modprobe broken);
#                 the initramfs mounts it on /usr/lib/modules/VERSION in the VM
#   initrd.img    busybox-static + the few modules needed to get to the root (virtio,
#                 9p, squashfs, overlay) + /init (see below); gzip'd newc cpio
#   version       the kernel version (uname -r), e.g. 6.1.0-56-amd64
#   stamp         the inputs; same inputs = nothing to do
#
# /init (busybox sh) reads its settings from the kernel command line:
#   strata.root=vda        virtio disk holding the root squashfs (mounted read-only, under a
#                          tmpfs overlay: the VM never writes its image)
#   strata.modules=vdb     virtio disk holding modules.sqfs
#   strata.9p=TAG,TAG...   read-only 9p shares (virtio), mounted on /run/strata-vm/9p/TAG
#   strata.ip=ADDR/LEN     static IPv4 address for eth0 (with net.ifnames=0), set before
#                          systemd starts; lo is always brought up
#   strata.hook=TAG        after the mounts, source /run/strata-vm/9p/TAG/init.sh with
#                          NEWROOT set (the harness writes units, binds, ... there)
#   strata.tmpfs=SIZE      size of the tmpfs upper layer (default 50%)
# and switches root into /lib/systemd/systemd. The tmpfs mounted on NEWROOT/run holds
# the layers (/run/strata-vm/{lower,rw}); systemd keeps an /run that is already mounted.
# Any failure prints "STRATA-VM-INIT-FAILED: reason" on the console and powers off.
#
# Idempotent: DIR/stamp records the package, its version, busybox's version and the
# recipe. A rebuild happens in DIR/.new and the files are renamed into place, so running
# VMs keep their open files. Environment: STRATA_VM_KERNEL_PACKAGE overrides the package.
set -euo pipefail

RECIPE=2
SUITE=${STRATA_VM_KERNEL_SUITE:-bookworm}
# Modules the initramfs loads, in this order (their dependencies are resolved with kmod).
INITRD_MODULES="virtio_pci virtio_blk virtio_net virtio_console 9pnet_virtio 9p squashfs overlay"

log() { echo "build-kernel.sh: $*" >&2; }
usage() {
	echo "usage: $0 [--force] DIR | --print-package" >&2
	exit 2
}

force=0
dir=""
print_pkg=0
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=1 ;;
	--print-package) print_pkg=1 ;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[ -z "$dir" ] || usage
		dir=$1
		;;
	esac
	shift
done

# with_apt runs apt-get or apt-cache: the host's configuration for bookworm; for
# another suite, only that suite of the mirror apt names (build-root.sh finds
# it), with lists of its own under DIR.apt.
apt_opts=()
with_apt() {
	local tool=$1
	shift
	"$tool" "${apt_opts[@]}" "$@"
}
private_apt() {
	local state=$1 mirror
	mirror=$(STRATA_TESTBED_SUITE=$SUITE bash "$(dirname "$0")/../testbed/build-root.sh" --print-mirror) || exit 1
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	echo "deb $mirror $SUITE main" >"$state/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
		-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o "APT::Get::List-Cleanup=0")
	# Lists older than a day are refreshed (a kernel security update changes the package).
	if [ -z "$(find "$state/lists" -name '*_InRelease' -mtime -1 2>/dev/null)" ]; then
		log "apt-get update ($SUITE, private lists in $state)"
		with_apt apt-get -qq update >&2 || { log "apt-get update for $SUITE failed"; exit 1; }
	fi
}

# kernel_package prints the linux-image-N.N.*-amd64 package that linux-image-amd64
# depends on (6.1 on bookworm).
kernel_package() {
	if [ -n "${STRATA_VM_KERNEL_PACKAGE:-}" ]; then
		echo "$STRATA_VM_KERNEL_PACKAGE"
		return
	fi
	local want='^linux-image-6[.]1[.][0-9.-]*-amd64$'
	[ "$SUITE" = bookworm ] || want='^linux-image-[0-9]+[.][0-9]+[.][0-9A-Za-z.+-]*-amd64$'
	with_apt apt-cache depends linux-image-amd64 2>/dev/null |
		want=$want awk '$1 == "Depends:" && $2 ~ ENVIRON["want"] { print $2; exit }'
}

if [ "$SUITE" != bookworm ]; then
	[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
	if [ -n "$dir" ]; then private_apt "$(realpath -m -- "$dir").apt"; else private_apt "/var/cache/strata-vm/apt-$SUITE"; fi
fi
if [ "$print_pkg" -eq 1 ]; then
	p=$(kernel_package)
	[ -n "$p" ] || { log "apt-cache names no linux-image-6.1.*-amd64 for linux-image-amd64 (apt-get update?)"; exit 1; }
	echo "$p"
	exit 0
fi
[ -n "$dir" ] || usage
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }
dir=$(realpath -m -- "$dir")
mkdir -p "$dir"

exec 9>"$dir.lock"
flock 9

pkg=$(kernel_package)
if [ -z "$pkg" ]; then
	# Offline or no lists: a finished build is still good.
	if [ -f "$dir/stamp" ] && [ "$force" -eq 0 ]; then
		log "apt-cache names no kernel package; keeping the existing build in $dir"
		exit 0
	fi
	log "apt-cache depends linux-image-amd64 names no linux-image-6.1.*-amd64 (run apt-get update?)"
	exit 1
fi
pkgver=$(with_apt apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }')
bbver=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo none)
stamp_text=$(printf 'recipe=%s\npackage=%s\nversion=%s\nbusybox=%s\nmodules=%s\n' \
	"$RECIPE" "$pkg" "$pkgver" "$bbver" "$INITRD_MODULES")

if [ "$force" -eq 0 ] && [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp_text" ] &&
	[ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ] && [ -f "$dir/modules.sqfs" ]; then
	log "up to date: $dir ($pkg $pkgver)"
	exit 0
fi

for c in apt-get dpkg depmod modprobe mksquashfs cpio gzip; do
	command -v "$c" >/dev/null || { log "$c missing: run test/vm/setup-host.sh"; exit 1; }
done
[ -x /bin/busybox ] || { log "/bin/busybox missing: run test/vm/setup-host.sh"; exit 1; }

t0=$SECONDS
new=$dir/.new
rm -rf --one-file-system "$new"
mkdir -p "$new/deb" "$new/x" "$new/initrd"
# apt-get download writes into the current directory; _apt cannot write into a root-only
# directory, so let it (or apt falls back to an unsandboxed download and warns).
chown _apt "$new/deb" 2>/dev/null || true
log "apt-get download $pkg ($pkgver)"
(cd "$new/deb" && with_apt apt-get download -qq "$pkg=$pkgver") || { log "apt-get download $pkg failed"; exit 1; }
dpkg -x "$new"/deb/*.deb "$new/x"
kver=${pkg#linux-image-}
# Debian 13's kernel ships its modules under /usr/lib/modules: depmod -b wants lib/modules.
if [ ! -d "$new/x/lib/modules/$kver" ] && [ -d "$new/x/usr/lib/modules/$kver" ]; then
	mkdir -p "$new/x/lib"
	mv "$new/x/usr/lib/modules" "$new/x/lib/modules"
fi
[ -f "$new/x/boot/vmlinuz-$kver" ] || { log "no boot/vmlinuz-$kver in $pkg"; exit 1; }
[ -d "$new/x/lib/modules/$kver" ] || { log "no lib/modules/$kver in $pkg"; exit 1; }
cp "$new/x/boot/vmlinuz-$kver" "$new/vmlinuz"

# The modules tree, with kmod's depmod (modules.dep, .alias, .bin: what modprobe and
# udev's kmod builtin read).
depmod -b "$new/x" "$kver"
[ -s "$new/x/lib/modules/$kver/modules.dep.bin" ] || { log "depmod made no modules.dep.bin"; exit 1; }
mksquashfs "$new/x/lib/modules/$kver" "$new/modules.sqfs" -comp zstd -no-xattrs -noappend \
	-quiet -no-progress -all-root >&2

# The initramfs.
ird=$new/initrd
mkdir -p "$ird"/{bin,dev,proc,sys,run,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
: >"$ird/modules.order"
for m in $INITRD_MODULES; do
	deps=$(modprobe -d "$new/x" -S "$kver" --show-depends "$m") || { log "modprobe --show-depends $m failed"; exit 1; }
	while read -r verb path _; do
		case "$verb" in
		insmod)
			# busybox's insmod takes plain modules: Debian 13's are .ko.xz.
			b=$(basename "$path")
			b=${b%.xz}
			b=${b%.zst}
			if ! grep -qx "$b" "$ird/modules.order"; then
				case "$path" in
				*.xz) xz -dc "$path" >"$ird/lib/modules/$b" ;;
				*.zst) zstd -qdc "$path" >"$ird/lib/modules/$b" ;;
				*) cp "$path" "$ird/lib/modules/$b" ;;
				esac
				echo "$b" >>"$ird/modules.order"
			fi
			;;
		builtin) ;;
		*) log "unexpected modprobe output for $m: $verb $path"; exit 1 ;;
		esac
	done <<<"$deps"
done
echo "$kver" >"$ird/kernel-version"
cat >"$ird/init" <<'INIT'
#!/bin/busybox sh
# Strata VM initramfs (test/vm/build-kernel.sh): virtio + squashfs root under a tmpfs
# overlay, modules from a second disk, 9p shares, then systemd.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
	echo "STRATA-VM-INIT-FAILED: $*" >/dev/console
	sleep 1
	echo o >/proc/sysrq-trigger
	sleep 60
}
say() { echo "strata-vm-init: $*" >/dev/console; }

root=vda modules=vdb shares="" ip4="" hook="" tmpfs_size=50%
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	strata.root=*) root=${arg#*=} ;;
	strata.modules=*) modules=${arg#*=} ;;
	strata.9p=*) shares=${arg#*=} ;;
	strata.ip=*) ip4=${arg#*=} ;;
	strata.hook=*) hook=${arg#*=} ;;
	strata.tmpfs=*) tmpfs_size=${arg#*=} ;;
	esac
done
kver=$(cat /kernel-version)

for m in $(cat /modules.order); do
	insmod "/lib/modules/$m" || fail "insmod $m"
done

waitdev() {
	i=0
	while [ ! -b "/dev/$1" ]; do
		i=$((i + 1))
		[ $i -le 300 ] || fail "no /dev/$1 after 30 s"
		sleep 0.1
	done
}
waitdev "$root"
waitdev "$modules"

# Layers on a temporary tmpfs, moved under NEWROOT/run once the overlay exists.
mkdir -p /layers
mount -t tmpfs -o mode=0755 tmpfs /layers || fail "tmpfs /layers"
mkdir -p /layers/lower /layers/rw
mount -t squashfs -o ro "/dev/$root" /layers/lower || fail "mount squashfs /dev/$root"
mount -t tmpfs -o "mode=0755,size=$tmpfs_size" tmpfs /layers/rw || fail "tmpfs upper"
mkdir -p /layers/rw/upper /layers/rw/work
mount -t overlay overlay -o lowerdir=/layers/lower,upperdir=/layers/rw/upper,workdir=/layers/rw/work /newroot ||
	fail "overlay root"
NEWROOT=/newroot
mount -t tmpfs -o mode=0755,nosuid,nodev,size=20% tmpfs "$NEWROOT/run" || fail "tmpfs /run"
mkdir -p "$NEWROOT/run/strata-vm/lower" "$NEWROOT/run/strata-vm/rw"
mount --move /layers/lower "$NEWROOT/run/strata-vm/lower" || fail "move lower"
mount --move /layers/rw "$NEWROOT/run/strata-vm/rw" || fail "move rw"
umount /layers

mkdir -p "$NEWROOT/usr/lib/modules/$kver"
mount -t squashfs -o ro "/dev/$modules" "$NEWROOT/usr/lib/modules/$kver" || fail "mount modules /dev/$modules"

for tag in $(echo "$shares" | tr ',' ' '); do
	mkdir -p "$NEWROOT/run/strata-vm/9p/$tag"
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 "$tag" "$NEWROOT/run/strata-vm/9p/$tag" ||
		fail "mount 9p $tag"
done

ip link set lo up
if [ -n "$ip4" ]; then
	ip link set eth0 up || fail "no eth0"
	ip addr add "$ip4" dev eth0 || fail "ip addr add $ip4"
fi

if [ -n "$hook" ]; then
	f=$NEWROOT/run/strata-vm/9p/$hook/init.sh
	[ -f "$f" ] || fail "no $f"
	. "$f" || fail "hook $f"
fi

[ -x "$NEWROOT/lib/systemd/systemd" ] || fail "no /lib/systemd/systemd in the root"
say "switching root to systemd"
umount /proc /sys
mount --move /dev "$NEWROOT/dev" || umount /dev
exec switch_root /newroot /lib/systemd/systemd
INIT
chmod 0755 "$ird/init"
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >"$new/initrd.img")

echo "$kver" >"$new/version"
printf '%s\n' "$stamp_text" >"$new/stamp.new"
for f in vmlinuz initrd.img modules.sqfs version; do
	mv -f "$new/$f" "$dir/$f"
done
mv -f "$new/stamp.new" "$dir/stamp"
rm -rf --one-file-system "$new"
log "built $dir for $kver in $((SECONDS - t0)) s ($(du -sh "$dir" | cut -f1))"
