#!/bin/bash
# The boot-storm benchmark (docs/SCALE.md): N librbd clients replay the
# recorded boot read trace (test/bench/boottrace/testbed-root.csv) against
# one snapshot of a throwaway test cluster at once, then read the whole
# image each (the Warewulf model), for N = 1 2 4 8 16 32 64. Prints a
# Markdown table and writes it to TABLE.
#   test/bench/bootstorm.sh [TABLE]          (root; cgo, Ceph's libraries)
#   STRATA_STORM_N="1 8 64" test/bench/bootstorm.sh
#   STRATA_STORM_DEPTH=4 ...   reads in flight per client (default 1)
# Its smoke run (N = 1, 2) is TestBootStorm in make check-ceph.
set -euo pipefail
cd "$(dirname "$0")/../.."
table=$(realpath -m "${1:-bootstorm.md}")
export STRATA_STORM_OUT=$table STRATA_STORM_N=${STRATA_STORM_N:-"1 2 4 8 16 32 64"} CGO_ENABLED=1
./test/ceph/setup-host.sh >/dev/null
go test -tags 'ceph pacific' -count=1 -timeout 60m -run '^TestBootStorm$' -v ./test/ceph ||
	{ echo "bootstorm.sh: the benchmark failed" >&2; exit 1; }
[ -s "$table" ] || { echo "bootstorm.sh: no table written" >&2; exit 1; }
echo "table: $table"
