#!/usr/bin/env bash
# Installs what dcos needs beyond the Rust toolchain: OCI runtimes (runc, crun, gVisor's
# runsc), network tools for the multi-host tests, busybox for test containers, procps for
# `ps` comparisons, Prometheus (its discovery of the fleet is tested end to end), and grpcio
# for `python3` (the Python example and its test), schemathesis (k2i's contract test).
# Idempotent: does nothing when everything is present. Needs root (or sudo) to install.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have runc     || need+=(runc)
have crun     || need+=(crun)
have runsc    || need+=(runsc)
have ip       || need+=(iproute2)
have iptables || need+=(iptables)
have unshare  || need+=(util-linux)
have ps       || need+=(procps)
have curl     || need+=(curl)
have protoc   || need+=(protobuf-compiler)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
# A real Prometheus for the discovery test (tests/tests/prometheus_sd.rs).
have prometheus || need+=(prometheus)
# systemd-nspawn boots a fresh host for the install test (tests/tests/install.rs); dpkg-deb
# builds the package (scripts/package-deb.sh); systemd-analyze checks the units.
have systemd-nspawn || need+=(systemd-container)
have dpkg-deb || need+=(dpkg)
have systemd-analyze || need+=(systemd)
# A real browser for the dcos ui test (tests/tests/ui.rs).
have chromium || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Python example (examples/python): grpcio and grpcio-tools for the python3 on PATH,
# from PyPI. A failure is reported, not fatal: its tests then skip, saying why.
if have python3 && ! python3 -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1; then
  echo "setup: installing grpcio, grpcio-tools for $(command -v python3) (pip)" >&2
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    -r "$(dirname "$0")/../examples/python/requirements.txt" \
    || echo "setup: could not install grpcio; the Python example's tests will skip" >&2
fi

# schemathesis, for k2i's contract test against its OpenAPI document
# (scripts/schemathesis-k2i.sh, run by CI), from PyPI.
if have python3 && ! have schemathesis; then
  echo "setup: installing schemathesis for $(command -v python3) (pip)" >&2
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' \
    || echo "setup: could not install schemathesis; scripts/schemathesis-k2i.sh will say so" >&2
fi

# The Kubernetes manifest's schema check (tests/tests/deploy.rs): kubernetes-validate, which
# carries the API's JSON schemas (no network when it runs). A failure is reported, not fatal:
# that test then fails saying what is missing.
if have python3 && ! have kubernetes-validate; then
  echo "setup: installing kubernetes-validate for $(command -v python3) (pip)" >&2
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    'kubernetes-validate>=1.30' || echo "setup: could not install kubernetes-validate" >&2
fi

if ! have cargo; then
  echo "setup: cargo is missing; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
