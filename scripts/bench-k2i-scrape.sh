#!/usr/bin/env bash
# k2i's CPU under a periodic client (issue 17): a k2i among PROCS extra sleeping processes,
# asked for PATH every INTERVAL seconds (a Prometheus scrape: /metrics every 15 s) for
# SECONDS; prints k2i's CPU time over that window as a percent of one core, and how many
# samples of the process table it took (k2i_samples_total) per request.
#   scripts/bench-k2i-scrape.sh [PATH] [INTERVAL] [SECONDS] [PROCS]
#   defaults: /metrics 15 120 3000
# K2I and DCOS name the binaries (default: the release build, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
path="${1:-/metrics}" interval="${2:-15}" seconds="${3:-120}" procs="${4:-3000}"
if [ -z "${K2I:-}" ] || [ -z "${DCOS:-}" ]; then
  source scripts/release.sh
  release_build -p k2i -p dcos-cli
  K2I="${K2I:-$release/k2i}" DCOS="${DCOS:-$release/dcos}"
fi
work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$DCOS" certs init --dir "$work" >/dev/null
"$DCOS" certs issue --dir "$work" --name node --role host --ip 127.0.0.1 >/dev/null
for _ in $(seq "$procs"); do sleep 100000 & pids+=($!); done
"$K2I" --listen 127.0.0.1:0 --cert "$work/node.crt" --key "$work/node.key" --ca "$work/ca.crt" >"$work/out" 2>/dev/null &
k2i=$!
pids+=($k2i)
for _ in $(seq 100); do grep -q https:// "$work/out" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'https://[0-9.:]*' "$work/out")"
ask() { curl -sf --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key" "$url$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$k2i/stat"; }
samples() { ask /metrics | awk '/^k2i_samples_total /{print $2}'; }
ask "$path" >/dev/null
sleep 2
hz="$(getconf CLK_TCK)"
s0="$(samples)" t0="$(cpu_ticks)" start="$(date +%s.%N)"
requests=0
while :; do
  ask "$path" >/dev/null
  requests=$((requests + 1))
  now="$(date +%s.%N)"
  awk -v n="$now" -v s="$start" -v w="$seconds" -v i="$interval" 'BEGIN{exit !(n - s + i > w)}' && break
  sleep "$interval"
done
sleep "$(awk -v n="$(date +%s.%N)" -v s="$start" -v w="$seconds" 'BEGIN{d = w - (n - s); print (d > 0 ? d : 0)}')"
t1="$(cpu_ticks)" end="$(date +%s.%N)" s1="$(samples)"
awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v a="$start" -v b="$end" -v s0="$s0" -v s1="$s1" -v r="$requests" \
  -v p="$path" -v i="$interval" -v n="$procs" 'BEGIN{
    w = b - a; cpu = (t1 - t0) / hz;
    printf "k2i, %d extra processes, %s every %d s for %.0f s: %.2f s of CPU, %.3f %% of a core; %d samples of the table for %d requests (%.2f each; the scrapes of k2i_samples_total add none)\n",
      n, p, i, w, cpu, 100 * cpu / w, s1 - s0, r, (s1 - s0) / r }'
