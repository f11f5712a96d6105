#!/bin/bash
# Working set of a boot: the bytes a node reads from the layer device to
# boot the testbed's root to ready, per image format, against the image
# size. Builds each image of the testbed root on the host (squashfs: gzip,
# xz, zstd, lz4 at 128K and 1M blocks; erofs: none, lz4, lz4hc), binds
# them all into one testbed (test/testbed) and, for each, RUNS times
# (default 3): attaches the loop device, reads /sys/block/loopN/stat
# (field 3, sectors read), starts the container (systemctl start returns
# when its systemd is ready), reads the counter again. Prints a Markdown
# table (median read, median start, mkfs time) and writes it to TABLE.
#   test/bench/workingset.sh [TABLE]        (root; ~10 min on 2 cores)
#   STRATA_WS_VARIANTS="squashfs-zstd-128K erofs-lz4" test/bench/workingset.sh
#   STRATA_WS_DIR=/var/tmp/ws  keeps the images there for the next run
# Its smoke run, in make integration: TestWorkingSetSmoke.
set -euo pipefail
cd "$(dirname "$0")/../.."
table=$(realpath -m "${1:-workingset.md}")
export STRATA_WS_TABLE=$table CGO_ENABLED=0
go test -tags 'integration bench' -count=1 -timeout 60m -run '^TestWorkingSet$' -v ./test/integration |
	grep -vE '^\s+testbed.go:' || { echo "workingset.sh: the benchmark failed" >&2; exit 1; }
[ -s "$table" ] || { echo "workingset.sh: no table written" >&2; exit 1; }
echo "table: $table"
