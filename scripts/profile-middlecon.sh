#!/usr/bin/env bash
# Profiles the four processes of a middlecon call (issue 19): runs middlecon-bench on one
# system and cell long enough to sample, records `perf record -g` (DWARF call graphs,
# cpu-clock) of the caller (the benchmark), daemons A and B and the echo runtime, and
# writes, per process, the folded stacks (`NAME.folded`; `NAME.svg`, its flame graph, where
# inferno's `inferno-flamegraph` is installed)
# and a summary (`summary.md`: top functions by own time, and the share of time under
# marked parts of the path). Usage, as root, after a release build (scripts/bench-middlecon.sh
# makes one):
#   scripts/profile-middlecon.sh OUT_DIR [SYSTEM [CALLERS [MIDDLECON]]]
# SYSTEM is a value of middlecon-bench --only (default middlecon), CALLERS 1 or 64 (default 1),
# MIDDLECON the daemon binary (default the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
source scripts/release.sh
out="${1:?usage: scripts/profile-middlecon.sh OUT_DIR [SYSTEM [CALLERS [MIDDLECON]]]}"
system="${2:-middlecon}"
callers="${3:-1}"
mc="${4:-$release/middlecon}"
command -v perf >/dev/null || { echo "profile-middlecon: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
mkdir -p "$out"
"$release/middlecon-bench" --middlecon "$mc" --only "$system" --payloads 128 --callers "$callers" \
  --runs 6 --cell-ms 2000 --no-responders-calls 5 >"$out/report.md" 2>"$out/progress.log" &
bench=$!
for _ in $(seq 300); do grep -q "run 1/" "$out/progress.log" 2>/dev/null && break; sleep 0.2; done
# The processes: this benchmark (caller), daemons A and B and the runtime of the pair measured.
pair=mc; [[ "$system" == middlecon-two-workers ]] && pair=mc2
map="$bench=caller"
for p in $(pgrep -P "$bench"); do
  cmd="$(tr '\0' ' ' <"/proc/$p/cmdline")"
  case "$cmd" in
    *"--name $pair-a "*) map="$map $p=daemonA" ;;
    *"--name $pair-b "*) map="$map $p=daemonB" ;;
    *" respond --middlecon "*"/$pair-b/"*) map="$map $p=responder" ;;
  esac
done
pids="$(tr ' ' '\n' <<<"$map" | cut -d= -f1 | paste -sd,)"
perf record -e cpu-clock -F 1999 --call-graph dwarf,8192 -p "$pids" -o "$out/perf.data" -- sleep 6 \
  2>"$out/perf.log"
wait "$bench"
perf script -F comm,pid,tid,time,event,ip,sym,dso -i "$out/perf.data" 2>/dev/null >"$out/perf.txt"
python3 - "$out" $map <<'PY'
import collections, re, sys
out, pidmap = sys.argv[1], dict(a.split('=') for a in sys.argv[2:])
stacks = collections.defaultdict(collections.Counter)
name, frames = None, []
def flush():
    if name and frames:
        stacks[name][';'.join(reversed(frames))] += 1
for line in open(f'{out}/perf.txt', errors='replace'):
    line = line.rstrip('\n')
    if not line.strip():
        flush(); name, frames = None, []
    elif not line[0].isspace():
        flush(); frames = []
        m = re.search(r'\s(\d+)/\d+\s', line)
        name = pidmap.get(m.group(1)) if m else None
    else:
        sym = line.strip().split(None, 1)[-1]
        sym = re.sub(r'\s*\([^()]*\)$', '', sym)
        sym = re.sub(r'(\+0x[0-9a-f]+|::h[0-9a-f]{16})$', '', sym)
        frames.append(sym.replace(';', ':'))
flush()
marks = [
    ('scheduler: a thread put to sleep and woken', 'finish_task_switch'),
    ('epoll_wait (an idle worker parks)', 'epoll_wait'),
    ('futex (a worker woken by another)', 'futex'),
    ('UDP send (QUIC packets out)', 'udp_sendmsg'),
    ('UDP receive (QUIC packets in)', 'udp_recvmsg'),
    ('quinn connection (QUIC state, TLS records)', 'quinn::connection::ConnectionDriver'),
    ('HTTP/2 (h2)', 'h2::proto::connection::Connection'),
    ('gRPC service layers (tonic, tower)', 'tonic::'),
    ('the local protocol', '::local::'),
    ('Unix socket writes', 'unix_stream_sendmsg'),
    ('Unix socket reads', 'unix_stream_read_generic'),
    ('malloc/free', 'malloc'),
]
with open(f'{out}/summary.md', 'w') as md:
    report = open(f'{out}/report.md').read().splitlines()
    md.write('Measured cell (middlecon-bench):\n\n')
    rows = [l for l in report if l.startswith('| 128 B') and 'NaN' not in l]
    md.write('\n'.join(report[[l.startswith('| payload') for l in report].index(True):][:2] + rows) + '\n')
    md.write('\n(under `perf record` with DWARF call graphs: slower and dearer than without it)\n')
    for proc in ['caller', 'daemonA', 'daemonB', 'responder']:
        c = stacks.get(proc, collections.Counter())
        total = sum(c.values()) or 1
        with open(f'{out}/{proc}.folded', 'w') as f:
            for k, v in c.most_common():
                f.write(f'{k} {v}\n')
        own, under = collections.Counter(), collections.Counter()
        for k, v in c.items():
            fr = k.split(';')
            own[fr[-1]] += v
            for label, needle in marks:
                if any(needle in x for x in fr):
                    under[label] += v
        md.write(f'\n#### {proc}: {total} samples\n\n| part of the path | share of samples |\n| --- | ---: |\n')
        for label, _ in marks:
            md.write(f'| {label} | {100 * under[label] / total:.1f} % |\n')
        md.write('\n| own time | function |\n| ---: | --- |\n')
        for k, v in own.most_common(12):
            md.write(f'| {100 * v / total:.1f} % | `{k[:110]}` |\n')
PY
rm -f "$out/perf.data" "$out/perf.txt"
# Flame graphs, where inferno is installed (`cargo install inferno`).
if command -v inferno-flamegraph >/dev/null; then
  for f in "$out"/*.folded; do
    name="$(basename "$f" .folded)"
    inferno-flamegraph --minwidth 0.4 --title "middlecon call, $system, $callers callers, 128 B: $name" \
      <"$f" >"$out/$name.svg"
  done
fi
echo "profile-middlecon: $out/summary.md, $out/*.folded (and $out/*.svg with inferno)"
