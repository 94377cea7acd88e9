//! middlecon is not built yet (issue 4). The binary exists so the workspace has its final
//! shape; it refuses to run rather than pretend.
fn main() {
    eprintln!("middlecon {}: not implemented yet (see issue 4)", env!("CARGO_PKG_VERSION"));
    std::process::exit(1);
}
