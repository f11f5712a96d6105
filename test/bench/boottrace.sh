#!/bin/bash
# Records the boot read trace that the boot-storm replay uses
# (test/ceph/bootstorm_test.go): the reads the layer's loop device was
# issued while the testbed started a container from the testbed root's
# squashfs, from the kernel's block_rq_issue tracepoint (tracefs).
#   test/bench/boottrace.sh [OUT]   (root; one testbed boot, ~2-4 min)
# OUT defaults to test/bench/boottrace/testbed-root.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "${1:-test/bench/boottrace/testbed-root.csv}")
export STRATA_TRACE_OUT=$out CGO_ENABLED=0
go test -tags 'integration bench' -count=1 -timeout 30m -run '^TestRecordBootTrace$' -v ./test/integration |
	grep -vE '^\s+testbed.go:' || { echo "boottrace.sh: the recording failed" >&2; exit 1; }
echo "trace: $out"
