//! Learned and computed models for leadrouter. Pure: no tokio, tonic or sled, so the service, the
//! simulator and offline tools all share them.
//!
//! Layout:
//! - [`preference`]: the regional preference matrix (region × category), looked up with fallback up
//!   the region tree.
#![forbid(unsafe_code)]

pub mod preference;

pub use preference::{PreferenceError, PreferenceMatrix};
