#!/usr/bin/env bash
# What leaked cgroups cost a container start: times `runc run --detach` of a busybox bundle
# (then deletes it, untimed) with N empty cgroups left under /dcos/ in every hierarchy, as
# daemons killed with their containers used to leave them, and without them, alternating
# the two states several times. Prints the median of each state and their ratio.
#   scripts/bench-cgroup-leak.sh [LEAKED=2000] [RUNS=31] [ROUNDS=3]
# Run as root; it removes every cgroup and file it made.
set -euo pipefail
leaked="${1:-2000}" runs="${2:-31}" rounds="${3:-3}"
for tool in runc busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench-cgroup-leak: $tool is missing; scripts/setup.sh installs it" >&2; exit 1; }
done
[[ "$(id -u)" == 0 ]] || { echo "bench-cgroup-leak: run as root" >&2; exit 1; }
work="$(mktemp -d /tmp/dcos-cgroup-leak-XXXXXX)"
tag="leak-bench-$$"
hierarchies=()
while read -r _ _ _ root mnt _ rest; do
  fstype="${rest#*- }"; fstype="${fstype%% *}"
  [[ "$root" == / && ( "$fstype" == cgroup || "$fstype" == cgroup2 ) ]] && hierarchies+=("$mnt")
done < /proc/self/mountinfo
leak() {
  for h in "${hierarchies[@]}"; do for i in $(seq "$leaked"); do mkdir -p "$h/dcos/$tag/w$i"; done; done
  # As a container leaves it: a process ran in each memory cgroup and left page cache
  # charged to it (a file it wrote, still on disk), then ended.
  local mem="" h
  for h in "${hierarchies[@]}"; do
    if [[ -e "$h/memory.stat" && ! -e "$h/cgroup.controllers" ]]; then mem="$h"; fi
  done
  [[ -n "$mem" ]] || return 0
  mkdir -p "$work/files"
  for i in $(seq "$leaked"); do
    sh -c "echo \$\$ > $mem/dcos/$tag/w$i/cgroup.procs && exec dd if=/dev/zero of=$work/files/f$i bs=64k count=1 status=none"
  done
}
unleak() { rm -rf "$work/files"; for h in "${hierarchies[@]}"; do [[ -d "$h/dcos/$tag" ]] && find "$h/dcos/$tag" -mindepth 1 -depth -type d -exec rmdir {} +; rmdir "$h/dcos/$tag" 2>/dev/null || true; done; }
cleanup() { runc --root "$work/runc" delete -f bench 2>/dev/null || true; unleak; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs/proc" "$work/bundle/rootfs/dev" "$work/bundle/rootfs/sys"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sh"; ln -s busybox "$work/bundle/rootfs/bin/sleep"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sleep", "3600"]
spec["linux"]["cgroupsPath"] = "/dcos/leak-bench-ref/bench"
json.dump(spec, open(path, "w"))
EOF

time_runs() { # prints one line per run: microseconds
  for _ in $(seq "$runs"); do
    s=$(date +%s%N)
    runc --root "$work/runc" run -d --bundle "$work/bundle" bench </dev/null >/dev/null 2>&1
    e=$(date +%s%N)
    runc --root "$work/runc" delete -f bench
    echo $(( (e - s) / 1000 ))
  done
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'; }

echo "hierarchies: ${#hierarchies[@]}; leaked cgroups per hierarchy: $leaked; $runs runs x $rounds rounds"
: > "$work/clean.txt"; : > "$work/leaked.txt"
for r in $(seq "$rounds"); do
  unleak; time_runs >> "$work/clean.txt"
  leak; time_runs >> "$work/leaked.txt"
  echo "round $r: clean $(median < "$work/clean.txt") ms, leaked $(median < "$work/leaked.txt") ms (so far)"
done
unleak
for h in "${hierarchies[@]}"; do rmdir "$h/dcos/leak-bench-ref" 2>/dev/null || true; done
c=$(median < "$work/clean.txt"); l=$(median < "$work/leaked.txt")
echo "runc run --detach: median $c ms clean, $l ms with $leaked leaked cgroups per hierarchy: $(python3 -c "print(f'{$l/$c:.2f}')") x"
