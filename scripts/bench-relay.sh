#!/usr/bin/env bash
# The service front relay benchmark (issue 15): builds the benchmark in release mode, then
# times a warm request through a front's byte relay (splice, the buffered copy, and tokio's
# copy_bidirectional) side by side with the same request straight to the upstream: a small
# tokio server and, if installed, busybox httpd, one connection per request and kept alive,
# one connection at a time and 64 at once. Arguments go to the benchmark (see
# `relay-bench run --help`), e.g.:
#   scripts/bench-relay.sh --runs 5 --out /tmp/relay-bench.md
# Everything runs on 127.0.0.1; no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
release_build -p dcos-bench --bin relay-bench
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- middlecon bench 2>/dev/null; then
  rev="$rev with uncommitted changes in middlecon/ or bench/"
fi
exec "$release/relay-bench" run --note "the relay and the benchmark built from $rev (release)" "$@"
