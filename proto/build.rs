//! Compiles the contract with protox (pure Rust: no `protoc` on the machine) and writes the encoded
//! file descriptor set that server reflection serves; pbjson-build adds the proto3 JSON mapping
//! (serde) to the public messages.

mod openapi;

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "leadrouter/v1/common.proto",
        "leadrouter/v1/router.proto",
        "leadrouter/v1/catalog.proto",
        "leadrouter/v1/attribution.proto",
        "leadrouter/v1/disputes.proto",
        "leadrouter/v1/guides.proto",
        "leadrouter/storage/v1/records.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=openapi.rs");
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("leadrouter_descriptor.bin"), fds.encode_to_vec())?;
    std::fs::write(
        out.join("openapi.json"),
        serde_json::to_string_pretty(&openapi::document(&fds))?,
    )?;
    let encoded = fds.encode_to_vec();
    // Well-known types from pbjson-types, which carry the proto3 JSON mapping (a Timestamp as
    // RFC 3339), so that the JSON the HTTP surface speaks comes from the same generated types.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .build(&[".leadrouter.v1"])?;
    Ok(())
}
