#!/usr/bin/env bash
# The k2i benchmark (issue 2): builds k2i and the benchmark in release mode, then runs it.
# Arguments go to the benchmark (see `--help`), e.g.:
#   scripts/bench-k2i.sh --procs 10000 --runs 7 --out /tmp/k2i-bench.md
# Run as root: it starts 10,000 extra processes (and removes them at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
if [[ "$(id -u)" != 0 ]]; then
  echo "bench-k2i: not root: RLIMIT_NPROC may stop 10,000 extra processes (the benchmark says so if it does)" >&2
fi
release_build -p k2i -p dcos-bench
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- k2i core dcos-cli 2>/dev/null; then
  rev="$rev with uncommitted changes in k2i/, core/ or dcos-cli/"
fi
exec "$release/k2i-bench" --k2i "$release/k2i" --note "k2i built from $rev" "$@"
