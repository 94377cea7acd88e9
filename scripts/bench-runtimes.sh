#!/usr/bin/env bash
# The runtime classes benchmark (issue 16): builds middlecon, dcos and the benchmark in
# release mode, then, on two network-namespace hosts of its own (removed at the end), times
# each runtime class (runc, crun, runsc) starting a busybox container raw and through
# `dcos run --runtime`, side by side in one run, and the cold migration of a workload with
# 10 MiB of state from runc into runsc (downtime against a raw runsc start). Arguments go to
# the benchmark (see `workload-bench classes --help`), e.g.:
#   scripts/bench-runtimes.sh --runs 7 --out /tmp/runtime-bench.md
# Run as root: it creates network namespaces, a bridge and containers.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
if [[ "$(id -u)" != 0 ]]; then
  echo "bench-runtimes: run as root: it needs network namespaces and OCI runtimes" >&2
  exit 1
fi
for tool in ip nsenter unshare runc runsc busybox; do
  command -v "$tool" >/dev/null || { echo "bench-runtimes: $tool is missing; scripts/setup.sh installs it" >&2; exit 1; }
done
release_build -p middlecon -p dcos-cli -p dcos-bench -p dcos-tests \
  --bin middlecon --bin dcos --bin workload-bench --bin host-init
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- middlecon core proto dcos-cli 2>/dev/null; then
  rev="$rev with uncommitted changes in middlecon/, core/, proto/ or dcos-cli/"
fi
exec "$release/workload-bench" classes --note "middlecon and dcos built from $rev" "$@"
