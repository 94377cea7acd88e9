//! Generates the Rust types of `middlecon/v1/*.proto` with prost (needs `protoc`, which
//! `scripts/setup.sh` installs from the `protobuf-compiler` package).
fn main() {
    let protos = ["middlecon/v1/peer.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new()
        .btree_map(["."])
        .compile_protos(&protos, &["."])
        .expect("compiling the middlecon protocol (is protoc installed? scripts/setup.sh installs it)");
}
