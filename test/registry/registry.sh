#!/bin/sh
# Runs Debian's docker-registry (distribution) in the foreground for a
# test: on ADDR (127.0.0.1:PORT, never another interface), storing under
# DIR, with one user (htpasswd, bcrypt) so that pulls need credentials.
#   registry.sh DIR ADDR USER PASSWORD
# test/setup-host.sh installs the package (and keeps its own service off).
set -eu
[ $# -eq 4 ] || { echo "usage: registry.sh DIR ADDR USER PASSWORD" >&2; exit 2; }
dir=$1 addr=$2 user=$3 password=$4
case $addr in
127.0.0.1:* | "[::1]:"*) ;;
*) echo "registry.sh: $addr: tests listen on 127.0.0.1 or [::1] only" >&2; exit 2 ;;
esac
command -v docker-registry >/dev/null || { echo "registry.sh: docker-registry is not installed (test/setup-host.sh installs it)" >&2; exit 1; }
mkdir -p "$dir/data"
# bcrypt, the only hash distribution's htpasswd accepts; the lowest cost
# (2^4), as every request checks it.
python3 -W ignore -c 'import crypt, sys; print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' \
	"$user" "$password" >"$dir/htpasswd"
cat >"$dir/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $addr
auth:
  htpasswd:
    realm: strata-test
    path: $dir/htpasswd
CONF
exec docker-registry serve "$dir/config.yml"
