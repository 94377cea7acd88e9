#!/usr/bin/env bash
# The fuzz targets (property tests with shrinking, in modules named `fuzz`) run longer than
# in the test suite, where proptest's default of 256 cases each keeps them to seconds:
#   - the peer wire's frame reader (middlecon peer::fuzz),
#   - the membership packets: the reply splitter and SWIM's decoder (membership::tests::fuzz),
#   - the migration messages and transfer streams a target takes (migrate::tests::fuzz),
#   - k2i's `q` parser (query/tests/q_fuzz.rs: fuzz_*).
# Usage: scripts/fuzz.sh [CASES]   (default 20000 cases per target)
# A failure prints the shrunk input and leaves it in the crate's proptest-regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${1:-20000}"
exec cargo nextest run --workspace --no-fail-fast -E 'test(/fuzz::/) | test(/^fuzz_/)'
