#!/usr/bin/env bash
# The services benchmark (issue 15): builds middlecon and the benchmark in release mode, then,
# on a network-namespace host of its own (removed at the end), measures a service's cold
# start against a plain `runc run` of the same bundle, the cold start with `--prestart`
# against a warm request, the front's relay against direct connections to the instance,
# the scale-up reaction, idle stop and metabolism (N renewals with `--max-requests 1`).
# Arguments go to the benchmark (see `service-bench run --help`), e.g.:
#   scripts/bench-services.sh --quick
#   scripts/bench-services.sh --only metabolism --renewals 10000 --out /tmp/service-bench.md
# Run as root: it creates network namespaces, a bridge and containers.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
if [[ "$(id -u)" != 0 ]]; then
  echo "bench-services: run as root: it needs network namespaces and runc" >&2
  exit 1
fi
for tool in ip nsenter unshare runc busybox; do
  command -v "$tool" >/dev/null || { echo "bench-services: $tool is missing; scripts/setup.sh installs it" >&2; exit 1; }
done
release_build -p middlecon -p dcos-bench -p dcos-tests --bin middlecon --bin service-bench --bin host-init
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- middlecon core proto 2>/dev/null; then
  rev="$rev with uncommitted changes in middlecon/, core/ or proto/"
fi
exec "$release/service-bench" run --note "middlecon built from $rev" "$@"
