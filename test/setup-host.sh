#!/bin/sh
# Installs the Debian packages Strata's unit tests need on the host, only
# when missing: idempotent and quick when everything is there.
#   systemd            systemd-analyze (verify of generated units)
#   systemd-container  systemd-nspawn and systemd-nspawn@.service (the
#                      template every container unit extends)
#   squashfs-tools     mksquashfs (test images)
#   open-iscsi         iscsiadm (the helper's CHAP record test uses the real one)
#   cryptsetup-bin     veritysetup (format/verify on files, no device-mapper
#                      needed: the hash tree tests compare against it)
set -eu
need=""
for pkg in systemd systemd-container squashfs-tools util-linux open-iscsi cryptsetup-bin; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "setup-host: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
