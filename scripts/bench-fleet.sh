#!/usr/bin/env bash
# The fleet fan-out benchmark (issue 3): builds dcos and the benchmark in release mode, then
# runs `dcos ps` across 1,000 k2i endpoints (all served by one local process) side by side
# with `xargs -P 64 curl` over the same endpoints; `multi` first runs the multi-datacenter
# mode instead (10,000 endpoints in 10 datacenters, relays, a delaying proxy). Arguments go to the benchmark (see
# `fleet-bench run --help`), e.g.:
#   scripts/bench-fleet.sh --runs 7 --out /tmp/fleet-bench.md
# Run as root: the benchmark enters its own network namespace (`unshare --net`) and adds
# iptables rules there, never in the machine's namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
if [[ "$(id -u)" != 0 ]]; then
  echo "bench-fleet: run as root: it needs unshare --net and iptables (inside its own namespace)" >&2
  exit 1
fi
for tool in curl xargs unshare ip iptables; do
  command -v "$tool" >/dev/null || { echo "bench-fleet: $tool is missing; scripts/setup.sh installs it" >&2; exit 1; }
done
release_build -p dcos-cli -p dcos-bench -p middlecon
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- k2i core dcos-cli query k2i-client middlecon 2>/dev/null; then
  rev="$rev with uncommitted changes in k2i/, core/, query/, dcos-cli/, k2i-client/ or middlecon/"
fi
# `scripts/bench-fleet.sh multi ARGS...`: the multi-datacenter mode (issue 18), e.g.
#   scripts/bench-fleet.sh multi --runs 3 --dcos-before /path/to/an/older/dcos
if [[ "${1:-}" == multi ]]; then
  shift
  exec "$release/fleet-bench" multi --dcos "$release/dcos" --middlecon "$release/middlecon" \
    --note "dcos, k2i and middlecon built from $rev" "$@"
fi
exec "$release/fleet-bench" run --dcos "$release/dcos" --note "dcos and k2i built from $rev" "$@"
