#!/usr/bin/env bash
# The middlecon benchmarks (issue 4): builds middlecon and the benchmarks in release mode,
# installs Debian's nats-server if it is missing (benchmarks are not run in CI, so
# scripts/setup.sh does not), then runs
#   1. middlecon-bench: request/reply through two middlecon daemons, side by side with NATS
#      request-reply (two nats-servers clustered with TLS, one per host, and a single plain
#      server) and a bare tonic call, with the CPU per call of every process (a few minutes
#      at most), and
#   2. middlecon-members: 100 middlecon daemons on 127.0.0.1..100, join and failure detection,
# and writes both reports, in Markdown, to stdout and to OUT (default
# /tmp/middlecon-bench.md). Usage:
#   scripts/bench-middlecon.sh [--out FILE] [--rpc-only | --members-only]
# with extra arguments for each in RPC_ARGS and MEMBERS_ARGS (see `--help` of each), e.g.
#   RPC_ARGS="--runs 7" MEMBERS_ARGS="--runs 5" scripts/bench-middlecon.sh
# Everything runs on loopback only. Run as root (apt-get, 100 daemons).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
out=/tmp/middlecon-bench.md
rpc=1
members=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --rpc-only) members=0; shift ;;
    --members-only) rpc=0; shift ;;
    *) echo "bench-middlecon: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
if ! command -v nats-server >/dev/null; then
  echo "bench-middlecon: installing nats-server (apt)" >&2
  if [[ "$(id -u)" != 0 ]]; then
    echo "bench-middlecon: nats-server is missing; run as root or apt-get install nats-server" >&2
    exit 1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
fi
release_build -p middlecon -p dcos-bench \
  --bin middlecon --bin middlecon-bench --bin middlecon-members
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- middlecon core proto bench 2>/dev/null; then
  rev="$rev with uncommitted changes in middlecon/, core/, proto/ or bench/"
fi
note="middlecon and the benchmark built from $rev (release)"
: >"$out"
if [[ $rpc == 1 ]]; then
  # shellcheck disable=SC2086 # RPC_ARGS is split into words on purpose
  "$release/middlecon-bench" --middlecon "$release/middlecon" --note "$note" ${RPC_ARGS:-} >>"$out"
fi
if [[ $members == 1 ]]; then
  [[ $rpc == 1 ]] && echo >>"$out"
  # shellcheck disable=SC2086 # MEMBERS_ARGS is split into words on purpose
  "$release/middlecon-members" --middlecon "$release/middlecon" --note "$note" ${MEMBERS_ARGS:-} >>"$out"
fi
cat "$out"
