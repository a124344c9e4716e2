//! leadrouter: scores and routes leads to the store and shopping guide most likely to serve and
//! convert them, and records every decision durably.
//!
//! Layout (DESIGN §3), dependencies pointing down:
//! - [`domain`]: plain types (leads, decisions, days, validation errors).
//! - [`catalog`]: the region tree (petgraph), stores and guides, their indexes, files and the demo.
//! - [`policy`]: the pluggable algorithms (`scored`, `nearest`, `round_robin`).
//! - [`engine`]: route(): validate → idempotency → candidates → policy → capacity → commit.
//! - [`storage`]: the [`storage::Storage`] contract; sled (default), PostgreSQL (replicas) and
//!   in-memory backends.
//! - [`wire`]: domain ⇄ contract messages.
//! - [`server`]: gRPC services, health, reflection, `/metrics`, `/healthz`; [`server::run`].
//! - [`config`]: the service's configuration file.
#![forbid(unsafe_code)]

pub mod app;
pub mod attribution;
pub mod auth;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod pem;
pub mod policy;
pub mod server;
pub mod storage;
pub mod wire;
