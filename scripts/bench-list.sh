#!/usr/bin/env bash
# How long `dcos workloads` takes on a host with N running workloads: starts a middlecon
# (this checkout's release build, or each binary given with --middlecon, side by side) in a
# scratch state dir, runs N busybox workloads, times `dcos workloads --socket` with
# hyperfine, then stops everything and removes the scratch dir.
#   scripts/bench-list.sh [--workloads N] [--middlecon BIN]...
# Run as root (it runs containers); needs runc and busybox (scripts/setup.sh), hyperfine and
# python3 (`apt install hyperfine`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n=20
daemons=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workloads) n="$2"; shift 2 ;;
    --middlecon) daemons+=("$(realpath "$2")"); shift 2 ;;
    *) echo "bench-list: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$(id -u)" == 0 ]] || { echo "bench-list: run as root" >&2; exit 1; }
for tool in hyperfine runc busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench-list: $tool is missing (scripts/setup.sh installs runc and busybox; apt install hyperfine)" >&2; exit 1; }
done
source "$root/scripts/release.sh"
release_build --quiet -p dcos-cli -p middlecon
[[ ${#daemons[@]} -gt 0 ]] || daemons=("$release/middlecon")
dcos="$release/dcos"
work="$(mktemp -d /tmp/dcos-bench-list-XXXXXX)"
pid=""
stop_daemon() { [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
cleanup() {
  if [[ -S "$work/state/api.sock" ]]; then
    for i in $(seq "$n"); do "$dcos" stop --socket "$work/state/api.sock" "w$i" >/dev/null 2>&1 || true; done
  fi
  stop_daemon; rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/dev" "$work/rootfs/sys" "$work/state"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sh"; ln -s busybox "$work/rootfs/bin/sleep"
"$dcos" certs init --dir "$work/certs" >/dev/null
"$dcos" certs issue --dir "$work/certs" --name bench-host >/dev/null
start_daemon() {
  "$1" --name bench-host --listen 127.0.0.1:0 --state-dir "$work/state" --socket "$work/state/api.sock" \
    --cert "$work/certs/bench-host.crt" --key "$work/certs/bench-host.key" --ca "$work/certs/ca.crt" \
    >"$work/daemon.out" 2>"$work/daemon.err" &
  pid=$!
  for _ in $(seq 100); do [[ -S "$work/state/api.sock" ]] && grep -q listening "$work/daemon.out" && return; sleep 0.05; done
  echo "bench-list: $1 did not start: $(cat "$work/daemon.err")" >&2; exit 1
}
first=1
for bin in "${daemons[@]}"; do
  rm -f "$work/state/api.sock"
  start_daemon "$bin"
  if [[ $first == 1 ]]; then
    for i in $(seq "$n"); do
      "$dcos" run --socket "$work/state/api.sock" --name "w$i" --rootfs "$work/rootfs" -- sleep 100000 >/dev/null
    done
    first=0
  fi
  running=$("$dcos" workloads --socket "$work/state/api.sock" -o json | grep -o '"status": *"running"' | wc -l)
  echo "$bin: $running of $n workloads running"
  hyperfine -N -w 5 -r 40 --export-json "$work/times.json" -n "dcos workloads, $n workloads, $(basename "$bin")" \
    "$dcos workloads --socket $work/state/api.sock"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f\"median {r['median']*1e3:.1f} ms\")" "$work/times.json"
  stop_daemon
done
start_daemon "${daemons[0]}"
