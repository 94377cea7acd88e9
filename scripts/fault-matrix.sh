#!/usr/bin/env bash
# The migration fault matrix (tests/tests/migration_faults.rs: kill -9 of the source's or
# the target's middlecon, or a cut link, at the freeze, the copy and the start), run N times;
# prints the tally of what each cell ended in. CI runs it once as part of scripts/test.
# Usage (as root): scripts/fault-matrix.sh [N]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
cargo build --workspace --bins --quiet
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  echo "fault-matrix: run $i of $runs" >&2
  if ! cargo nextest run -p dcos-tests --test migration_faults --no-fail-fast --no-capture >>"$log" 2>&1; then
    failed=$((failed + 1))
  fi
done
echo "| cell | outcome (word; where the one copy runs) | runs |"
echo "| --- | --- | ---: |"
{ grep -o 'fault-matrix: [A-Za-z]* at [a-z]*: [a-z_]*; one copy, on the [a-z]*' "$log" || true; } \
  | sed 's/^fault-matrix: //; s/; one copy, on the /; on the /' \
  | sort | uniq -c \
  | sed -E 's/^ *([0-9]+) ([A-Za-z]+ at [a-z]+): (.*)$/| \2 | \3 | \1 |/'
echo
echo "runs with a failed cell: $failed of $runs"
grep -E '^ +FAIL \[' "$log" | sed -E 's/^ +FAIL \[ *[0-9.]+s\] *(\( *[0-9]+\/ *[0-9]+\) )?//' | sort | uniq -c || true
[[ "$failed" == 0 ]]
