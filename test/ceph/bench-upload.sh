#!/bin/sh
# bench-upload.sh: strata-image build's upload throughput against `rbd
# import` of the same squashfs, in the same run, on a throwaway cluster
# (cluster.sh). Prints a markdown table of medians.
#
#   test/ceph/bench-upload.sh [RUNS] [MIB]
#
# Needs root (the cluster). RUNS defaults to 5, MIB (the squashfs size) to
# 196. STRATA_BENCH_OUT=FILE also writes the table to FILE.
set -eu
cd "$(dirname "$0")/../.."
export STRATA_BENCH_RUNS="${1:-${STRATA_BENCH_RUNS:-5}}"
export STRATA_BENCH_MIB="${2:-${STRATA_BENCH_MIB:-196}}"
export CGO_ENABLED=1
exec go test -tags 'ceph pacific cephbench' -count=1 -timeout 20m -run '^TestUploadThroughput$' -v ./test/ceph
