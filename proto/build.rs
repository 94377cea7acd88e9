//! Generates the Rust types of `middlecon/v1/*.proto` with prost, and the gRPC servers and
//! clients of `middlecon.proto` with tonic (needs `protoc`, which `scripts/setup.sh`
//! installs from the `protobuf-compiler` package). They encode and decode through
//! `codec.rs`, which reports a malformed message as the sender's error.
fn main() {
    let protos = ["middlecon/v1/peer.proto", "middlecon/v1/middlecon.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    config.btree_map(["."]);
    tonic_prost_build::configure()
        .codec_path("crate::codec::Codec")
        .compile_with_config(config, &protos, &["."])
        .expect("compiling the middlecon protocol (is protoc installed? scripts/setup.sh installs it)");
}
