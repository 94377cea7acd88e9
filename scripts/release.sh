# Sourced by the scripts that run a release build (`scripts/dcos`, the benchmarks); `root`
# must be the checkout. Release binaries are static executables, glibc linked in:
#   - a `dcos` command starts without the dynamic loader and libgcc_s's CPU probe, which
#     shortens every command (docs/benchmarks.md);
#   - each binary is one file that runs on any Linux of its architecture.
# glibc resolves host names through /etc/hosts and DNS without loading a module; other NSS
# sources (nsswitch.conf) are loaded at run time and need the glibc the binary was built with.
# `--target` keeps the flag off build scripts and proc-macros, which cannot be static.
# Sets `release`, the binaries' directory; `release_build ARGS...` runs `cargo build` for it.
triple="$(rustc -vV | sed -n 's/^host: //p')"
release="${CARGO_TARGET_DIR:-$root/target}/$triple/release"
release_build() {
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --target "$triple" --manifest-path "$root/Cargo.toml" "$@"
}
