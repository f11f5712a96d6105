#!/bin/bash
# packaging/build.sh OUTDIR: build Strata's .deb and .rpm packages into OUTDIR
# (`make package`). See packaging/README.md.
#
#   strata         node side: generator, helper, CLI, udev rule, man pages,
#                  completions; static binaries (CGO_ENABLED=0), no Ceph library
#   strata-image   admin side, links librados/librbd (cgo): built only when
#                  cmd/strata-image exists and Ceph's headers are installed;
#                  otherwise skipped with a message (not an error)
#
# Environment:
#   STRATA_VERSION           package version (default: from git describe, see below)
#   STRATA_PACKAGE_FORMATS   "deb rpm" (default), or one of them
#   STRATA_IMAGE_TAGS        build tags of strata-image (default: pacific, Debian 12's Ceph)
#   STRATA_MAINTAINER        the packages' Maintainer field
#   GOARCH                   target architecture (default: the Go toolchain's)
#   SOURCE_DATE_EPOCH        timestamps (default: the last commit's time)
#
# Other uses:
#   build.sh --print-version            the version a build would get
#   build.sh --map-version DESCRIBE N   map `git describe --tags --always`
#                                       output and the commit count to a version
set -euo pipefail

# nfpm, run as a Go tool through the module proxy (no binary download).
NFPM_VERSION=v2.45.2
NFPM="github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
go=${GO:-go}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

# map_version DESCRIBE COUNT prints a version valid for dpkg and rpm that
# sorts the way the history does:
#   v1.2.3              -> 1.2.3
#   v1.2.3-rc1          -> 1.2.3~rc1            (a pre-release sorts before 1.2.3)
#   v1.2.3-4-gabc1234   -> 1.2.3+git4.abc1234   (after 1.2.3, before 1.2.4)
#   abc1234 (no tag)    -> 0.0.0~gitCOUNT.abc1234 (a tag that looks like a
#                          hash, 7 or more hex digits, is taken for one)
# A version may not hold "-" (dpkg: revision; rpm: forbidden) nor "_".
map_version() {
	local d=$1 n=$2 tag
	# An abbreviated hash first: "27ef86c" would also pass for a tag.
	if [[ $d =~ ^[0-9a-f]{7,40}$ ]]; then
		echo "0.0.0~git$n.$d"
	elif [[ $d =~ ^v?([0-9][0-9A-Za-z.+~-]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		tag=${BASH_REMATCH[1]//-/\~}
		echo "$tag+git${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
	elif [[ $d =~ ^v?([0-9][0-9A-Za-z.+~-]*)$ ]]; then
		echo "${BASH_REMATCH[1]//-/\~}"
	else
		die "cannot make a package version of '$d' (git describe --tags --always): set STRATA_VERSION"
	fi
}

package_version() {
	if [ -n "${STRATA_VERSION:-}" ]; then
		echo "$STRATA_VERSION"
		return
	fi
	local d n
	d=$(git -C "$root" describe --tags --always 2>/dev/null) ||
		die "not a git checkout (or no commit): set STRATA_VERSION"
	n=$(git -C "$root" rev-list --count HEAD)
	map_version "$d" "$n"
}

case "${1:-}" in
--map-version)
	[ $# -eq 3 ] || die "usage: build.sh --map-version DESCRIBE COUNT"
	map_version "$2" "$3"
	exit 0
	;;
--print-version)
	package_version
	exit 0
	;;
"" | -*)
	echo "usage: packaging/build.sh OUTDIR | --print-version | --map-version DESCRIBE COUNT" >&2
	exit 2
	;;
esac

mkdir -p "$1"
out=$(cd "$1" && pwd)
version=$(package_version)
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "version '$version' is not valid for dpkg and rpm (digits first; letters, digits, . + ~)"
formats=${STRATA_PACKAGE_FORMATS:-deb rpm}
for f in $formats; do
	case $f in deb | rpm) ;; *) die "unknown package format '$f' (deb, rpm)" ;; esac
done
GOARCH=${GOARCH:-$($go env GOARCH)}
export GOARCH STRATA_VERSION=$version
export STRATA_MAINTAINER=${STRATA_MAINTAINER:-Strata developers <strata@strata-project.invalid>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	echo "build.sh: note: the work tree has uncommitted changes; they are built into $version" >&2
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/strata-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
echo "build.sh: strata $version ($GOARCH) in $stage" >&2

# Binaries: static, reproducible paths, the version stamped in.
ldflags="-s -w -X main.version=$version"
for c in strata strata-generator strata-helper; do
	(cd "$root" && CGO_ENABLED=0 $go build -trimpath -ldflags "$ldflags" -o "$stage/bin/$c" "./cmd/$c")
done

# Man pages and completions, from their single sources (packaging/docgen).
(cd "$root" && $go run ./packaging/docgen -out "$stage/gen" -version "$version" -date "$date")
gzip -9n "$stage"/gen/man/*

# The udev rule runs the helper where this package installs it.
mkdir -p "$stage/rules"
rule="$root/helpers/krbd/50-strata-rbd.rules"
programs=$(grep -o 'PROGRAM="[^" ]*' "$rule" | sed 's/^PROGRAM="//' | sort -u)
[ "$programs" = /usr/libexec/strata/strata-helper ] ||
	die "$rule runs '$programs', not /usr/libexec/strata/strata-helper where the package installs the helper"
cp "$rule" "$stage/rules/"

# Documentation: Debian policy 12.3 wants files over 4 KiB compressed.
# The static templates whose instances the generator configures.
mkdir -p "$stage/units"
cp "$root"/units/static/* "$stage/units/"

mkdir -p "$stage/doc"
cp "$root/README.md" "$root"/docs/*.md "$stage/doc/"
mkdir -p "$stage/doc-schemes"
cp "$root"/docs/schemes/*.md "$stage/doc-schemes/"
for f in "$stage"/doc/* "$stage"/doc-schemes/*; do
	[ "$(stat -c %s "$f")" -le 4096 ] || gzip -9n "$f"
done

# LICENSE (Apache-2.0) and the Debian copyright file of both packages; a
# changelog for each .deb (Debian policy 12.7: one entry per build, the
# history itself is git's), and lintian's overrides (packaging/lintian:
# each with its reason).
mkdir -p "$stage/legal" "$stage/lintian"
cp "$root/LICENSE" "$root/packaging/copyright" "$stage/legal/"
cp "$root"/packaging/lintian/* "$stage/lintian/"
for p in strata strata-image; do
	{
		echo "$p ($version) unstable; urgency=medium"
		echo
		echo "  * Built from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "a source tree without git")."
		echo
		echo " -- $STRATA_MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
	} | gzip -9n >"$stage/legal/changelog-$p.gz"
done

mkdir -p "$stage/scripts"
cp "$root"/packaging/scripts/* "$stage/scripts/"

# nfpm resolves src paths against its working directory: the stage.
nfpm() {
	(cd "$stage" && $go run "$NFPM" "$@")
}
for f in $formats; do
	nfpm package --config "$root/packaging/nfpm/strata.yaml" --packager "$f" --target "$out/"
done

# The admin-side image tool, when it can be built here.
image_skip=""
if ! compgen -G "$root/cmd/strata-image/*.go" >/dev/null; then
	image_skip="cmd/strata-image does not exist (yet)"
elif [ ! -f /usr/include/rados/librados.h ] || [ ! -f /usr/include/rbd/librbd.h ]; then
	image_skip="Ceph's headers are missing (Debian: apt-get install librados-dev librbd-dev)"
fi
if [ -n "$image_skip" ]; then
	echo "build.sh: not building the strata-image package: $image_skip" >&2
else
	(cd "$root" && CGO_ENABLED=1 $go build -trimpath -buildmode=pie -tags "${STRATA_IMAGE_TAGS:-pacific}" -ldflags "$ldflags" -o "$stage/bin/strata-image" ./cmd/strata-image)
	for f in $formats; do
		nfpm package --config "$root/packaging/nfpm/strata-image.yaml" --packager "$f" --target "$out/"
	done
fi

