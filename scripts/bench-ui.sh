#!/usr/bin/env bash
# The dcos ui benchmark (issue 20): N real k2i HTTPS endpoints on loopback (default 100),
# served by ONE process with one sampler (`fleet-bench serve`: N k2i processes on one 2-core
# machine would each sample all the others), one `dcos ui --hosts` over them, and headless
# chromium driven over the DevTools protocol
# (scripts/bench-ui.mjs): first contentful paint, when the first fleet answer is on screen,
# host rows shown, and the browser's CPU while the page refreshes at 1 Hz; then dcos ui's own
# CPU over the same time. Release binaries (scripts/release.sh) unless BIN_DIR is given.
#   scripts/bench-ui.sh [HOSTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
hosts="${1:-100}" seconds="${2:-20}"
if [ -z "${BIN_DIR:-}" ]; then
  source scripts/release.sh
  release_build --quiet -p dcos-cli -p dcos-bench
  BIN_DIR="$release"
fi
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$BIN_DIR/dcos" certs init --dir "$work" >/dev/null
"$BIN_DIR/dcos" certs issue --dir "$work" --name fleet-sim --ip 127.0.0.1 >/dev/null
# fleet-bench serve runs until its stdin closes: a fifo held open by a sleep of ours.
mkfifo "$work/stdin"
"$BIN_DIR/fleet-bench" serve --count "$hosts" --base-port 21000 --ca "$work" < "$work/stdin" >/dev/null &
pids+=($!)
sleep 100000 > "$work/stdin" &
pids+=($!)
list=()
for i in $(seq 0 $((hosts - 1))); do list+=("127.0.0.1:$((21000 + i))"); done
addresses="$(IFS=,; echo "${list[*]}")"
# Every k2i answers before the page is opened.
for _ in $(seq 1 200); do
  up=0
  for a in "${list[@]}"; do curl -sk -o /dev/null "https://$a/healthz" 2>/dev/null && up=$((up + 1)); done
  [ "$up" -eq "$hosts" ] && break
  sleep 0.2
done
# Warm, as a fleet being watched is: every k2i sampling at its active pace.
"$BIN_DIR/dcos" top --once --hosts "$addresses" --cert "$work/admin.crt" --key "$work/admin.key" \
  --ca "$work/ca.crt" >/dev/null 2>&1 || true
"$BIN_DIR/dcos" ui --listen 127.0.0.1:0 --hosts "$addresses" \
  --cert "$work/admin.crt" --key "$work/admin.key" --ca "$work/ca.crt" > "$work/ui.out" 2>/dev/null &
ui=$!
pids+=($ui)
for _ in $(seq 1 100); do grep -qs token "$work/ui.out" && break; sleep 0.1; done
url="$(awk '{print $NF}' "$work/ui.out")"
ticks() { awk '{print $14 + $15}' "/proc/$ui/stat"; }
before="$(ticks)"
start="$(date +%s.%N)"
node --experimental-websocket --no-warnings "$root/scripts/bench-ui.mjs" "$url" "$seconds"
after="$(ticks)"
end="$(date +%s.%N)"
echo "dcos ui CPU: $(echo "($after - $before) / $(getconf CLK_TCK) / ($end - $start) * 100" | bc -l | cut -c1-5) % of one core, $hosts hosts, load $(cut -d' ' -f1-3 /proc/loadavg)"
