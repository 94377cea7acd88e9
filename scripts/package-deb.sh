#!/usr/bin/env bash
# Builds the Debian package of dcos: `k2i`, `middlecon` and `dcos` in /usr/bin, the systemd
# units of both daemons (deploy/systemd), their default settings in /etc/dcos (conffiles),
# /etc/dcos/tls for the host's certificate, and the README and deploy examples in
# /usr/share/doc/dcos. Prints the package's path.
#
#   scripts/package-deb.sh [--bin-dir DIR] [--out DIR] [--fast]
#
# Without --bin-dir it builds the static release binaries (scripts/release.sh), which run on
# any Debian or Ubuntu of the architecture. --bin-dir takes the three binaries from DIR as
# they are (e.g. target/debug: the package then depends on the libc6 they were linked with).
# --fast skips compression (tests). Default output: target/deb/dcos_VERSION_ARCH.deb.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="" out="$root/target/deb" compress=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --fast) compress=(-Znone); shift ;;
    *) echo "package-deb: unknown argument $1 (--bin-dir DIR, --out DIR, --fast)" >&2; exit 2 ;;
  esac
done
if [ -z "$bin_dir" ]; then
  source "$root/scripts/release.sh"
  release_build --quiet -p dcos-cli -p k2i -p middlecon
  bin_dir="$release"
fi
for b in k2i middlecon dcos; do
  [ -x "$bin_dir/$b" ] || { echo "package-deb: $bin_dir/$b is missing (build it first)" >&2; exit 1; }
done

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/dcos" \
  "$stage/usr/share/doc/dcos/examples"
install -d -m 0750 "$stage/etc/dcos/tls"
for b in k2i middlecon dcos; do install -m 0755 "$bin_dir/$b" "$stage/usr/bin/$b"; done
install -m 0644 "$root"/deploy/systemd/*.service "$stage/lib/systemd/system/"
install -m 0644 "$root"/deploy/etc/*.toml "$stage/etc/dcos/"
install -m 0644 "$root/README.md" "$stage/usr/share/doc/dcos/README.md"
cp -r "$root/deploy/prometheus" "$root/deploy/grafana" "$root/deploy/kubernetes" \
  "$stage/usr/share/doc/dcos/examples/"
printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: dcos\n\nFiles: *\nLicense: Apache-2.0\n See /usr/share/common-licenses/Apache-2.0.\n' \
  > "$stage/usr/share/doc/dcos/copyright"

# Static binaries need nothing; dynamic ones the C library they were linked with.
depends="libc6"
if ! ldd "$bin_dir/k2i" >/dev/null 2>&1; then depends=""; fi
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@DEPENDS@/$depends/" -e '/^Depends: $/d' \
  "$root/deploy/debian/control" > "$stage/DEBIAN/control"
install -m 0644 "$root/deploy/debian/conffiles" "$stage/DEBIAN/conffiles"
install -m 0755 "$root"/deploy/debian/{postinst,prerm,postrm} "$stage/DEBIAN/"

mkdir -p "$out"
deb="$out/dcos_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$stage" "$deb" >/dev/null
echo "$deb"
