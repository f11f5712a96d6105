#!/bin/sh
# Installs the Debian packages Strata's unit tests need on the host, only
# when missing: idempotent and quick when everything is there.
#   systemd            systemd-analyze (verify of generated units)
#   systemd-container  systemd-nspawn and systemd-nspawn@.service (the
#                      template every container unit extends)
#   squashfs-tools     mksquashfs (test images)
#   erofs-utils        mkfs.erofs, fsck.erofs (erofs images, image/erofs_test.go)
#   open-iscsi         iscsiadm (the helper's CHAP record test uses the real one)
#   docker-registry    Debian's distribution registry: image tests pull from
#                      one on 127.0.0.1 (test/registry/registry.sh); the
#                      package's own service (all interfaces, :5000) is kept off
#   cryptsetup-bin     veritysetup (format/verify on files, no device-mapper
#                      needed: the hash tree tests compare against it)
set -eu
need=""
for pkg in systemd systemd-container squashfs-tools erofs-utils util-linux open-iscsi docker-registry cryptsetup-bin; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "setup-host: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
case $need in
*docker-registry*) systemctl disable --now docker-registry.service >/dev/null 2>&1 || true ;;
esac
