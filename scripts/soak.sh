#!/usr/bin/env bash
# Soak: a 3-host local fleet (`dcos demo --keep`) under mixed load for a fixed time, and how
# each daemon's memory, descriptors and the operations' latency drift over it.
#
# The load, in a loop: `dcos ps --limit 20` and `dcos top --once` across the fleet, a
# `dcos call` to another host, a workload run, migrated to another host and back, and
# stopped, and a request to a service of its own (busybox httpd, `--idle-stop 5s`: woken,
# idled and stopped again and again).
# Every WINDOW seconds each k2i's and middlecon's RSS and open descriptors are read from
# /proc, and each operation's median latency in that window is kept.
#
# Prints a table per window and the drift (last window against the first). docs/security.md
# states the figures of the latest run.
# Usage (as root): scripts/soak.sh [SECONDS] [WINDOW]   (default 600 s in windows of 60 s)
# DCOS=path/to/dcos uses that build (k2i and middlecon beside it) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-600}"
window="${2:-60}"
[[ "$(id -u)" == 0 ]] || { echo "soak: run as root (containers, cgroups)" >&2; exit 1; }
if [[ -n "${DCOS:-}" ]]; then
  dcos="$DCOS"
else
  root="$PWD"
  source scripts/release.sh
  release_build -p dcos-cli -p k2i -p middlecon --bins --quiet
  dcos="$release/dcos"
fi
dir="$(mktemp -d /tmp/dcos-soak-XXXXXX)"
out="$dir/demo.out"
"$dcos" demo --keep --dir "$dir/fleet" >"$out" 2>&1 &
demo=$!
cleanup() {
  kill -INT "$demo" 2>/dev/null || true
  wait "$demo" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  grep -q "fleet running" "$out" && break
  kill -0 "$demo" 2>/dev/null || { cat "$out" >&2; echo "soak: the demo fleet did not start" >&2; exit 1; }
  sleep 1
done
grep -q "fleet running" "$out" || { cat "$out" >&2; exit 1; }
eval "$(grep -o 'export DCOS_[A-Z_]*=[^ ]*\( DCOS_[A-Z_]*=[^ ]*\)*' "$out" | sed 's/^/export /; s/^export export/export/')"
rootfs="$(grep -o -- '--rootfs [^ ]*' "$out" | head -1 | cut -d' ' -f2)"
hosts=(demo-1 demo-2 demo-3)
port=""
if [[ -n "$rootfs" ]]; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$dcos" service create soak --hosts "${hosts[0]}" --port "$port" --rootfs "$rootfs" --idle-stop 5s \
    -- sh -c 'exec busybox httpd -f -p 127.0.0.1:$PORT -h /www' >/dev/null
fi
echo "soak: fleet up; service port ${port:-none}, rootfs ${rootfs:-none}" >&2

# The daemons: the processes named k2i or middlecon that run with this fleet's files (k2i
# runs under a PID-namespace wrapper, not as the demo's child).
daemons() {
  for p in $(pgrep -f -- "$dir/fleet"); do
    local name
    name="$(cat "/proc/$p/comm" 2>/dev/null || true)"
    [[ "$name" == k2i || "$name" == middlecon ]] && echo "$p $name"
  done
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }

declare -A lat
timed() { # timed KIND COMMAND...
  local kind="$1" t
  shift
  t="$(date +%s%N)"
  if "$@" >/dev/null 2>&1; then lat[$kind]+="$(ms "$t") "; else lat[$kind]+="fail "; fi
}

echo "| window | k2i RSS (MB, per host) | middlecon RSS (MB) | k2i fds | middlecon fds | ps ms | top ms | call ms | migrate ms | service ms | failed |"
echo "| ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
first="" last=""
start="$(date +%s)"
n=0 i=0
while (( $(date +%s) - start < duration )); do
  n=$((n + 1))
  wstart="$(date +%s)"
  lat=()
  while (( $(date +%s) - wstart < window )); do
    i=$((i + 1))
    timed ps "$dcos" ps --limit 20
    timed top "$dcos" top --once --limit 5
    timed call "$dcos" call "${hosts[2]}" dcos.ping
    if [[ -n "$rootfs" ]]; then
      name="soak-$i"
      "$dcos" run --host "${hosts[0]}" --name "$name" --rootfs "$rootfs" -- sleep 3600 >/dev/null 2>&1 || true
      timed migrate "$dcos" migrate "$name" --to "${hosts[1]}"
      "$dcos" stop "$name" >/dev/null 2>&1 || true
    fi
    if [[ -n "$port" ]]; then
      timed service curl -sf -m 10 "http://127.0.0.1:$port/"
    fi
  done
  k_rss="" m_rss="" k_fd="" m_fd=""
  while read -r p name; do
    if [[ "$name" == k2i ]]; then
      k_rss+="$(( $(rss_kb "$p") / 1024 ))/" k_fd+="$(fds "$p")/"
    else
      m_rss+="$(( $(rss_kb "$p") / 1024 ))/" m_fd+="$(fds "$p")/"
    fi
  done < <(daemons)
  fails=0
  row="| $n | ${k_rss%/} | ${m_rss%/} | ${k_fd%/} | ${m_fd%/}"
  for kind in ps top call migrate service; do
    vals="${lat[$kind]:-}"
    fails=$((fails + $({ grep -o fail <<<"$vals" || true; } | wc -l)))
    row+=" | $(tr ' ' '\n' <<<"$vals" | { grep -E '^[0-9]+$' || true; } | median)"
  done
  row+=" | $fails |"
  echo "$row"
  if [[ -z "$first" ]]; then first="$row"; fi
  last="$row"
done
echo
echo "first window: $first"
echo "last window:  $last"
echo "($i rounds of load in $(( $(date +%s) - start )) s)"
