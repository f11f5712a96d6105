#!/bin/sh
# Installs the Debian packages the packaging tests need on the host, only
# when missing: idempotent and quick when everything is there.
#   groff-base man-db   render the man pages (groff -ww, man --warnings)
#   bash zsh fish       parse and run the shell completions
#   rpm                 read the .rpm that packaging/build.sh makes (rpm -qlp)
#   dpkg                compare package versions (always there on Debian)
#   lintian rpmlint     the distributions' checks of the .deb and the .rpm
# nfpm itself needs nothing installed: build.sh runs it with `go run`.
set -eu
need=""
for pkg in groff-base man-db bash zsh fish rpm lintian rpmlint; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "packaging/setup-host: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
