//! Compiles the contract with protox (pure Rust: no `protoc` on the machine) and writes the encoded
//! file descriptor set that server reflection serves.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "leadrouter/v1/common.proto",
        "leadrouter/v1/router.proto",
        "leadrouter/v1/catalog.proto",
        "leadrouter/v1/attribution.proto",
        "leadrouter/v1/disputes.proto",
        "leadrouter/storage/v1/records.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("leadrouter_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
