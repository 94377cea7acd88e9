#!/usr/bin/env bash
# Does running runc from a sealed in-memory copy of its binary make `runc run` faster?
# runc's `runc init` skips its own copy of itself (Debian's runc 1.1: a read-only bind mount
# and a second exec) when the file it runs from is a memfd sealed against writes. This times
# `runc run --detach` of a busybox bundle from /usr/sbin/runc and from such a copy
# (/proc/self/fd/N), in pairs whose order alternates, and prints the medians and the median
# of the per-pair ratios. Its null result (docs/benchmarks.md) is why middlecon does not do it.
#   scripts/bench-runc-sealed.sh [PAIRS]      (default 80; run as root)
set -euo pipefail
pairs="${1:-80}"
[[ "$(id -u)" == 0 ]] || { echo "bench-runc-sealed: run as root" >&2; exit 1; }
for tool in runc busybox python3; do
  command -v "$tool" >/dev/null || { echo "bench-runc-sealed: $tool is missing" >&2; exit 1; }
done
work="$(mktemp -d /tmp/dcos-bench-sealed-XXXXXX)"
trap 'for id in $(runc --root "$work/root" list -q 2>/dev/null); do runc --root "$work/root" delete -f "$id"; done; rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
(cd "$work/bundle" && runc spec)
python3 - "$work" "$pairs" "$(command -v runc)" <<'EOF'
import fcntl, json, os, statistics, subprocess, sys, time
work, pairs, runc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
config = f"{work}/bundle/config.json"
c = json.load(open(config))
c["process"]["args"], c["process"]["terminal"] = ["sleep", "1000"], False
json.dump(c, open(config, "w"))
fd = os.memfd_create("runc", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
with open(runc, "rb") as f:
    os.write(fd, f.read())
fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
sealed = f"/proc/self/fd/{fd}"
def run(program, n):
    start = time.perf_counter()
    subprocess.run([program, "--root", f"{work}/root", "run", "-d", "--bundle", f"{work}/bundle", n],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(fd,))
    ms = (time.perf_counter() - start) * 1e3
    subprocess.run([runc, "--root", f"{work}/root", "delete", "-f", n], check=True)
    time.sleep(0.05)
    return ms
plain, copy, ratios = [], [], []
for i in range(pairs):
    if i % 2:
        b, a = run(sealed, f"s{i}"), run(runc, f"p{i}")
    else:
        a, b = run(runc, f"p{i}"), run(sealed, f"s{i}")
    plain.append(a); copy.append(b); ratios.append(b / a)
med = statistics.median
print(f"runc run, {pairs} pairs: from {runc} {med(plain):.1f} ms, from a sealed copy {med(copy):.1f} ms, "
      f"per-pair ratio median {med(ratios):.3f}")
EOF
