#!/usr/bin/env bash
# The `q` parser's fuzz target (query/tests/q_fuzz.rs) for longer than the test suite runs
# it: CASES cases of each property (default 200,000), in release mode. A failure prints the
# smallest expression that still fails (proptest shrinks it).
#   scripts/fuzz-q.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
export DCOS_FUZZ_CASES="${1:-200000}"
exec cargo test --release -p dcos-query --test q_fuzz -- --nocapture
