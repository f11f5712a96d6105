#!/bin/bash
# cluster.sh: a throwaway single-node Ceph cluster for tests, on 127.0.0.1
# only, with cephx on: one mon, one memstore OSD, optionally one mgr.
#
#   cluster.sh start DIR [--mgr] [--owner PID]
#   cluster.sh stop DIR
#   cluster.sh status DIR
#
# start creates the cluster in DIR (or starts it again from DIR), waits until
# it is ready and prints KEY=VALUE lines (also written to DIR/env):
#   CEPH_CONF, CEPH_MON_HOST, CEPH_MON_V1, CEPH_MON_V2, CEPH_POOL, CEPH_FSID,
#   CEPH_ADMIN_USER/KEYRING, CEPH_NODE_USER/KEYRING, CEPH_BUILD_USER/KEYRING
# Ready means: the OSD is up, pool "rbd" exists and went through
# `rbd pool init`, and every PG is active+clean. Running it again on a
# running cluster only checks readiness and prints the same lines; on a
# stopped one it makes the cluster anew (a memstore OSD keeps no data across
# a stop), with new keys.
#
# Users:
#   client.admin         everything
#   client.strata-build  mon 'profile rbd', osd 'profile rbd pool=rbd'
#                        (builds images)
#   client.strata-node   mon 'profile rbd', osd 'profile rbd-read-only pool=rbd'
#                        (what a node needs to map images read-only)
#
# The daemons run in the foreground (-f) in their own sessions; their PIDs are
# in DIR/run/*.pid. stop ends them by PID (OSD and mgr first, mon last),
# checking that each PID still runs a daemon of this DIR, and is a no-op when
# nothing runs. --owner PID starts a watcher that stops the cluster when that
# process exits (a test binary killed by its time-out leaves nothing behind).
#
# Ports: the mon takes 3300 (v2) and 6789 (v1) when both are free on the
# machine, otherwise a free pair above 20000. The OSD and mgr take ports in
# Ceph's 6800-7300 range. Nothing listens on an address but 127.0.0.1, or
# CEPH_BIND_ADDR.
#
# Environment:
#   CEPH_BIND_ADDR       the one address to listen on (default 127.0.0.1);
#                        the VM suite uses an address that exists only in
#                        a network namespace of its own
#   CEPH_MEMSTORE_BYTES  the OSD's memstore size (default 1 GiB; it holds the
#                        written data in RAM)
#   CEPH_READY_TIMEOUT   seconds to wait for readiness (default 60)
set -euo pipefail
ADDR=${CEPH_BIND_ADDR:-127.0.0.1}

PROG=cluster.sh
MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-1073741824}
READY_TIMEOUT=${CEPH_READY_TIMEOUT:-60}
POOL=rbd
PG_NUM=8

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

usage() {
	echo "usage: $PROG start DIR [--mgr] [--owner PID] | stop DIR | status DIR" >&2
	exit 2
}

# port_in_use PORT: something listens on PORT (any address, v4 or v6).
port_in_use() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pid_of NAME: the recorded PID of daemon NAME when it still runs a process
# of this cluster (its command line names our conf), else nothing.
pid_of() {
	local f="$RUN/$1.pid" pid
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	[ -r "/proc/$pid/cmdline" ] || return 0
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF"; then
		echo "$pid"
	fi
}

# ceph_cmd ARGS...: the ceph CLI as client.admin with bounded time-outs.
ceph_cmd() {
	timeout 30 ceph -c "$CONF" -n client.admin --keyring "$DIR/client.admin.keyring" \
		--connect-timeout 10 "$@"
}

# spawn NAME CMD...: start a daemon in its own session, output to its log,
# PID recorded.
spawn() {
	local name=$1
	shift
	setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
	echo $! >"$RUN/$name.pid"
}

write_conf() {
	local v2=$1 v1=$2 fsid=$3 mgr=$4
	local grace=120
	[ "$mgr" = 1 ] || grace=1000000
	cat >"$CONF" <<EOF
# Throwaway test cluster made by test/ceph/cluster.sh. $ADDR only.
[global]
fsid = $fsid
mon_host = [v2:$ADDR:$v2,v1:$ADDR:$v1]
mon_initial_members = a
public_addr = $ADDR
cluster_addr = $ADDR
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
run_dir = $RUN
admin_socket = $RUN/\$cluster-\$name.\$pid.asok
log_file = $DIR/log/\$name.log
keyring = $DIR/\$name.keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = $PG_NUM
osd_pool_default_pgp_num = $PG_NUM
osd_pool_default_pg_autoscale_mode = off
mon_warn_on_pool_no_redundancy = false
# A fresh cluster warns about insecure global_id reclaim a few seconds
# after start (health then says HEALTH_WARN, whatever the test does).
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_crit = 1
mon_data_avail_warn = 2
mgr_initial_modules =
paxos_propose_interval = 0.1
mgr_stats_period = 1
mgr_tick_period = 1
mon_mgr_mkfs_grace = $grace

[mon]
mon_data = $DIR/mon/\$cluster-\$id
keyring = $DIR/mon/\$cluster-\$id/keyring
admin_socket = $RUN/\$cluster-\$name.asok

[osd]
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = memstore
osd_fast_shutdown_notify_mon = false
memstore_device_bytes = $MEMSTORE_BYTES
admin_socket = $RUN/\$cluster-\$name.asok

[mgr]
mgr_data = $DIR/mgr/\$cluster-\$id
admin_socket = $RUN/\$cluster-\$name.asok

[client]
log_file =
EOF
}

# pick_ports: the mon's v2 and v1 ports.
pick_ports() {
	if ! port_in_use 3300 && ! port_in_use 6789; then
		echo "3300 6789"
		return
	fi
	local _ p
	for _ in $(seq 1 200); do
		p=$((20000 + (RANDOM % 20000) * 2))
		if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
			echo "$p $((p + 1))"
			return
		fi
	done
	die "no free port pair for the mon"
}

# wait_listen PORT SECONDS PID: until PORT listens, or fail when PID died.
wait_listen() {
	local port=$1 deadline=$((SECONDS + $2)) pid=$3
	until port_in_use "$port"; do
		kill -0 "$pid" 2>/dev/null || return 1
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}

create() {
	local mgr=$1 fsid osd_uuid v2 v1
	mkdir -p "$DIR" "$RUN" "$DIR/log" "$DIR/mon" "$DIR/osd/ceph-0"
	fsid=$(uuidgen)
	osd_uuid=$(uuidgen)
	echo "$osd_uuid" >"$DIR/osd.uuid"
	# Ports are picked and the mon bound under a host-wide lock, so that two
	# clusters starting at once do not take the same pair.
	exec 8>"$LOCKDIR/strata-ceph-ports.lock"
	flock 8
	read -r v2 v1 < <(pick_ports)
	write_conf "$v2" "$v1" "$fsid" "$mgr"

	local kr="$DIR/mon.keyring"
	ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool --create-keyring "$DIR/client.admin.keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
	ceph-authtool --create-keyring "$DIR/osd.0.keyring" --gen-key -n osd.0 \
		--cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
	ceph-authtool --create-keyring "$DIR/mgr.x.keyring" --gen-key -n mgr.x \
		--cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
	ceph-authtool --create-keyring "$DIR/client.strata-build.keyring" --gen-key -n client.strata-build \
		--cap mon 'profile rbd' --cap osd "profile rbd pool=$POOL" --cap mgr "profile rbd pool=$POOL" >/dev/null
	ceph-authtool --create-keyring "$DIR/client.strata-node.keyring" --gen-key -n client.strata-node \
		--cap mon 'profile rbd' --cap osd "profile rbd-read-only pool=$POOL" >/dev/null
	local k
	for k in client.admin osd.0 mgr.x client.strata-build client.strata-node; do
		ceph-authtool "$kr" --import-keyring "$DIR/$k.keyring" >/dev/null
	done
	chmod 600 "$DIR"/*.keyring

	monmaptool --create --fsid "$fsid" --addv a "[v2:$ADDR:$v2,v1:$ADDR:$v1]" "$DIR/monmap" >/dev/null
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$kr" >>"$DIR/log/mkfs.out" 2>&1 ||
		die "ceph-mon --mkfs failed: $(tail -5 "$DIR/log/mkfs.out")"
	spawn mon.a ceph-mon -c "$CONF" -f -i a
	wait_listen "$v2" 20 "$(cat "$RUN/mon.a.pid")" ||
		die "the mon did not listen on $ADDR:$v2: $(tail -5 "$DIR/log/mon.a.out" "$DIR/log/mon.a.log" 2>/dev/null)"
	flock -u 8
	exec 8>&-

	ceph_cmd osd new "$osd_uuid" 0 >/dev/null || die "ceph osd new failed"
	ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" --keyring "$DIR/osd.0.keyring" \
		>>"$DIR/log/mkfs.out" 2>&1 || die "ceph-osd --mkfs failed: $(tail -5 "$DIR/log/mkfs.out")"
	spawn osd.0 ceph-osd -c "$CONF" -f -i 0
	if [ "$mgr" = 1 ]; then
		mkdir -p "$DIR/mgr/ceph-x"
		cp "$DIR/mgr.x.keyring" "$DIR/mgr/ceph-x/keyring"
		spawn mgr.x ceph-mgr -c "$CONF" -f -i x
	fi
	wait_osd_up
	ceph_cmd osd pool create "$POOL" "$PG_NUM" "$PG_NUM" replicated >/dev/null 2>&1 || die "pool create failed"
	timeout 30 rbd -c "$CONF" -n client.admin --keyring "$DIR/client.admin.keyring" pool init "$POOL" ||
		die "rbd pool init failed"
	touch "$DIR/created"
}

wait_osd_up() {
	local deadline=$((SECONDS + READY_TIMEOUT)) n
	while :; do
		n=$(ceph_cmd osd stat -f json 2>/dev/null | sed -n 's/.*"num_up_osds":\([0-9]*\).*/\1/p')
		[ "${n:-0}" -ge 1 ] && return 0
		check_alive
		[ $SECONDS -lt $deadline ] || die "the OSD is not up after ${READY_TIMEOUT}s: $(tail -5 "$DIR/log/osd.0.log" 2>/dev/null)"
		sleep 0.1
	done
}

check_alive() {
	local d
	for d in mon.a osd.0; do
		if [ -z "$(pid_of $d)" ]; then
			die "$d died: $(tail -5 "$DIR/log/$d.out" "$DIR/log/$d.log" 2>/dev/null)"
		fi
	done
}

# pgs_clean: every PG of the cluster is active+clean. Asked of the OSD itself
# (its admin socket): without a mgr the mon's PG statistics stay "unknown".
pgs_clean() {
	local sock="$RUN/ceph-osd.0.asok" out total clean
	[ -S "$sock" ] || return 1
	out=$(timeout 10 ceph --admin-daemon "$sock" dump_pgstate_history 2>/dev/null) || return 1
	total=$(grep -o '"pg": *"[^"]*"' <<<"$out" | wc -l)
	clean=$(grep -o '"currently": *"[^"]*"' <<<"$out" | grep -c 'Active/Clean"' || true)
	[ "$total" -ge "$PG_NUM" ] && [ "$total" -eq "$clean" ]
}

wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT))
	until pgs_clean; do
		check_alive
		[ $SECONDS -lt $deadline ] || die "PGs not active+clean after ${READY_TIMEOUT}s"
		sleep 0.1
	done
	ceph_cmd osd pool application get "$POOL" 2>/dev/null | grep -q '"rbd"' ||
		die "pool $POOL is not initialised for rbd"
}

write_env() {
	local mon_host v2 v1
	mon_host=$(sed -n 's/^mon_host = //p' "$CONF")
	v2=$(sed -n 's/^mon_host = \[v2:\([^,]*\),.*/\1/p' "$CONF")
	v1=$(sed -n 's/^mon_host = .*,v1:\([^]]*\)\]/\1/p' "$CONF")
	cat >"$DIR/env.tmp" <<EOF
CEPH_DIR=$DIR
CEPH_CONF=$CONF
CEPH_MON_HOST=$mon_host
CEPH_MON_V2=$v2
CEPH_MON_V1=$v1
CEPH_FSID=$(sed -n 's/^fsid = //p' "$CONF")
CEPH_POOL=$POOL
CEPH_ADMIN_USER=admin
CEPH_ADMIN_KEYRING=$DIR/client.admin.keyring
CEPH_BUILD_USER=strata-build
CEPH_BUILD_KEYRING=$DIR/client.strata-build.keyring
CEPH_NODE_USER=strata-node
CEPH_NODE_KEYRING=$DIR/client.strata-node.keyring
EOF
	mv "$DIR/env.tmp" "$DIR/env"
	cat "$DIR/env"
}

start_watcher() {
	local owner=$1 old
	old=$(pid_of watcher)
	if [ -n "$old" ]; then
		kill "$old" 2>/dev/null || true
	fi
	# The watcher's command line names the conf, so that stop finds it by PID.
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" stop "$3"' \
		watcher "$owner" "$SELF" "$DIR" "$CONF" </dev/null >>"$DIR/log/watcher.out" 2>&1 &
	echo $! >"$RUN/watcher.pid"
}

# running PID: the process exists and is not a zombie (an exited daemon
# stays a zombie until whoever adopted it reaps it, which can take seconds).
running() {
	local state
	state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# stop_daemon NAME: SIGTERM, then SIGKILL after 10 s; waits until it is gone.
stop_daemon() {
	local pid _
	pid=$(pid_of "$1")
	[ -n "$pid" ] || { rm -f "$RUN/$1.pid"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 200); do
		running "$pid" || break
		sleep 0.05
	done
	if running "$pid"; then
		log "$1 ($pid) did not stop in 10s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			running "$pid" || break
			sleep 0.05
		done
	fi
	rm -f "$RUN/$1.pid"
}

cmd_stop() {
	[ -d "$DIR" ] || return 0
	[ -f "$CONF" ] || return 0
	local watcher
	watcher=$(pid_of watcher)
	# Not the watcher that is running this very stop.
	if [ -n "$watcher" ] && [ "$watcher" != "$PPID" ] && [ "$watcher" != "$$" ]; then
		kill "$watcher" 2>/dev/null || true
	fi
	rm -f "$RUN/watcher.pid"
	# In parallel, but waited for by PID: a bare `wait` would also wait for
	# daemons this shell spawned.
	local a b
	stop_daemon osd.0 &
	a=$!
	stop_daemon mgr.x &
	b=$!
	wait "$a" "$b" || true
	stop_daemon mon.a
	rm -f "$RUN"/*.asok
}

cmd_status() {
	local d pid
	for d in mon.a osd.0 mgr.x watcher; do
		pid=$(pid_of $d)
		echo "$d ${pid:-stopped}"
	done
}

cmd_start() {
	local mgr=0 owner=""
	while [ $# -gt 0 ]; do
		case $1 in
		--mgr) mgr=1 ;;
		--owner) owner=${2:?--owner needs a PID}; shift ;;
		*) usage ;;
		esac
		shift
	done
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	for c in ceph-mon ceph-osd ceph ceph-authtool monmaptool rbd uuidgen setsid flock timeout; do
		command -v "$c" >/dev/null || die "$c not found: run test/ceph/setup-host.sh"
	done
	if [ -f "$DIR/created" ] && [ -n "$(pid_of mon.a)" ] && [ -n "$(pid_of osd.0)" ] &&
		{ [ "$mgr" = 0 ] || [ -n "$(pid_of mgr.x)" ]; }; then
		: # running: only check readiness below
	else
		if [ -e "$CONF" ]; then
			# Stopped, half-started or half-stopped. A memstore OSD keeps
			# nothing across a stop (it shuts down without saving), so the
			# cluster is made anew: new keys, empty pool.
			cmd_stop
			rm -rf "${DIR:?}/mon" "${DIR:?}/osd" "${DIR:?}/mgr" "${DIR:?}/run" "$DIR"/*.keyring \
				"$DIR/monmap" "$DIR/osd.uuid" "$DIR/created" "$DIR/env" "$CONF"
		fi
		create "$mgr"
	fi
	[ -z "$owner" ] || start_watcher "$owner"
	wait_ready
	write_env
}

[ $# -ge 2 ] || usage
CMD=$1
DIR=$2
shift 2
case $DIR in
/*) ;;
*) DIR=$PWD/$DIR ;;
esac
DIR=${DIR%/}
CONF=$DIR/ceph.conf
RUN=$DIR/run
SELF=$(readlink -f "$0")
LOCKDIR=/run/lock
[ -d "$LOCKDIR" ] || LOCKDIR=/tmp

case $CMD in
start)
	# A failed start leaves nothing running.
	# shellcheck disable=SC2154 # rc is set inside the trap
	trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_stop; fi; exit $rc' EXIT
	cmd_start "$@"
	trap - EXIT
	;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
