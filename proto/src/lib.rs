//! The leadrouter v1 contract: the `.proto` files under `leadrouter/v1/` and the code tonic and
//! prost generate from them. Package `leadrouter.v1` holds what other programs rely on
//! (DESIGN §7); `leadrouter.storage.v1` is the service's own on-disk record format.
#![forbid(unsafe_code)]

/// Public API: `LeadRouter` and `Catalog` services and their messages.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("leadrouter.v1");
    include!(concat!(env!("OUT_DIR"), "/leadrouter.v1.serde.rs"));
}

/// Storage records (not part of the public contract).
pub mod storage {
    /// Version 1 of the record format.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("leadrouter.storage.v1");
    }
}

/// Encoded `FileDescriptorSet` of every file above, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/leadrouter_descriptor.bin"));

/// The OpenAPI 3.1 document of the JSON surface (every unary method of `leadrouter.v1`),
/// generated from the descriptors at build time.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

pub use pbjson_types::Timestamp;
