#!/bin/bash
# Runs `go test -v` with the given arguments, prints the per-package result
# lines (all of the output when something fails), and fails when any test
# was skipped: in `make check` a skip would hide a missing tool or a missing
# privilege behind a green run.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -v "$@" >"$log" 2>&1
status=$?
if ((status != 0)); then
	cat "$log"
else
	grep -E '^(ok|FAIL|panic:)' "$log"
fi
skips=$(grep -E '^\s*--- SKIP' -A1 "$log")
if [[ -n $skips ]]; then
	echo "skipped tests (make check runs everything; install what they need: test/setup-host.sh, run as root):"
	echo "$skips"
	((status == 0)) && status=1
fi
exit "$status"
