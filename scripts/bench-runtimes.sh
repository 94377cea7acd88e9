#!/usr/bin/env bash
# The runtime classes benchmark (issue 16): builds middlecon, dcos and the benchmark in
# release mode, then, on two network-namespace hosts of its own (removed at the end), times
# each runtime class (runc, crun, runsc) starting a busybox container raw and through
# `dcos run --runtime`, side by side in one run, and the cold migration of a workload with
# 10 MiB of state from runc into runsc (downtime against a raw runsc start). Arguments go to
# the benchmark (see `workload-bench classes --help`), e.g.:
#   scripts/bench-runtimes.sh --runs 7 --out /tmp/runtime-bench.md
# Run as root: it creates network namespaces, a bridge and containers.
exec "$(dirname "$0")/bench-workloads.sh" --classes "$@"
