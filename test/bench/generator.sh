#!/bin/bash
# Whole-process benchmark of strata-generator, side by side with a floor.
# N definitions (every tenth sharing one RBD image, all with an inline
# secret) in a tmpfs directory; for each N, RUNS runs of:
#   generate  strata-generator OUT OUT OUT (as systemd runs it; OUT on tmpfs)
#   dryrun    strata-generator --dryrun >/dev/null (read, check, build; no files)
#   floor     cp -a of the generator's own output tree (creating those files)
# and peak RSS of the generate runs (GNU time). Prints medians in ms:
#   N  generate  dryrun  floor  generate/floor  max_rss_kb
# Usage: test/bench/generator.sh GENERATOR [N...]   (default N: 1 100 1000 10000)
set -euo pipefail
gen=$(realpath "$1"); shift
sizes=${*:-1 100 1000 10000}
runs=${RUNS:-7}
work=$(mktemp -d /dev/shm/strata-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

ms() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f", (e - s) * 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "N generate_ms dryrun_ms floor_ms ratio max_rss_kb"
for n in $sizes; do
	defs="$work/defs-$n"
	mkdir -p "$defs"
	for ((i = 0; i < n; i++)); do
		image="image$i"
		((i % 10 == 0)) && image=shared
		printf '{"command": "/usr/lib/systemd/systemd", "systemd": true, "state": "running", "mount": {"kind": "overlay", "overlay": {"lower": [{"kind": "attach", "attach": {"fs_type": "squashfs", "mount_options": ["ro"], "attach": {"kind": "rbd", "rbd": {"pool": "rbd", "image": "%s", "monitors": ["10.0.0.1", "10.0.0.2"], "options": {"name": "node", "ro": true, "secret": "QVFCZ1pHaGsxMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW4="}}}}}]}}}\n' "$image" > "$defs/c$(printf %05d "$i").json"
	done
	chmod 600 "$defs"/*.json
	gen_t=() dry_t=() floor_t=()
	rss=0
	for ((r = 0; r < runs; r++)); do
		out="$work/out" copy="$work/copy"
		rm -rf "$out" "$copy"
		mkdir "$out"
		s=$EPOCHREALTIME
		STRATA_DEFINITION_PATH="$defs" "$gen" "$out" "$out" "$out"
		e=$EPOCHREALTIME
		gen_t+=("$(ms "$s" "$e")")
		s=$EPOCHREALTIME
		STRATA_DEFINITION_PATH="$defs" "$gen" --dryrun >/dev/null
		e=$EPOCHREALTIME
		dry_t+=("$(ms "$s" "$e")")
		s=$EPOCHREALTIME
		cp -a "$out" "$copy"
		e=$EPOCHREALTIME
		floor_t+=("$(ms "$s" "$e")")
		rm -rf "$out"
		mkdir "$out"
		kb=$(STRATA_DEFINITION_PATH="$defs" /usr/bin/time -f '%M' "$gen" "$out" "$out" "$out" 2>&1 >/dev/null | tail -1)
		((kb > rss)) && rss=$kb
	done
	g=$(median "${gen_t[@]}") d=$(median "${dry_t[@]}") f=$(median "${floor_t[@]}")
	echo "$n $g $d $f $(awk -v g="$g" -v f="$f" 'BEGIN { printf "%.2f", g / f }') $rss"
done
