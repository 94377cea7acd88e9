#!/usr/bin/env bash
# The workloads and migration benchmark (issue 5): builds middlecon, dcos and the benchmark in
# release mode, then, on two network-namespace hosts of its own (removed at the end), times
# middlecon's cold migration with 1, 10 and 100 MiB of state and `dcos run` side by side with
# `runc run --detach` (and crun where it works) and plain TCP and QUIC copies of the same
# bytes. Arguments go to the benchmark (see `workload-bench run --help`), e.g.:
#   scripts/bench-workloads.sh --runs 5 --out /tmp/workload-bench.md
# With `--classes` first, it runs `workload-bench classes` instead (scripts/bench-runtimes.sh).
# Run as root: it creates network namespaces, a bridge and containers.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
mode=run
tools=(ip nsenter unshare runc busybox)
if [[ "${1:-}" == --classes ]]; then
  mode=classes
  tools+=(runsc)
  shift
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "bench-workloads: run as root: it needs network namespaces and runc" >&2
  exit 1
fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "bench-workloads: $tool is missing; scripts/setup.sh installs it" >&2; exit 1; }
done
release_build -p middlecon -p dcos-cli -p dcos-bench -p dcos-tests \
  --bin middlecon --bin dcos --bin workload-bench --bin host-init
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- middlecon core proto dcos-cli 2>/dev/null; then
  rev="$rev with uncommitted changes in middlecon/, core/, proto/ or dcos-cli/"
fi
exec "$release/workload-bench" "$mode" --note "middlecon and dcos built from $rev" "$@"
