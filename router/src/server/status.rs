//! The one place that maps domain errors to gRPC status codes.

use crate::attribution::AttributionError;
use crate::domain::FieldError;
use crate::engine::{CatalogError, RouteError};
use crate::store::StoreError;
use tonic::Status;

/// At most 512 bytes of a message (a rule may quote the caller's input).
fn capped(m: String) -> String {
    const MAX: usize = 512;
    if m.len() <= MAX {
        return m;
    }
    let mut cut = MAX;
    while !m.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &m[..cut])
}

pub fn invalid(e: &FieldError) -> Status {
    Status::invalid_argument(capped(e.to_string()))
}

/// Damaged records read since the start (shown by `/healthz`).
pub static DAMAGED_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn store(e: &StoreError) -> Status {
    tracing::error!(error = %e, "storage failure");
    match e {
        StoreError::Corrupt { .. } => {
            metrics::counter!("leadrouter_storage_damaged_reads_total").increment(1);
            DAMAGED_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Status::data_loss(format!(
                "a stored record cannot be read (the data is damaged; retrying will not help): {}",
                capped(e.to_string())
            ))
        }
        _ => Status::unavailable(e.to_string()),
    }
}

pub fn route(e: &RouteError) -> Status {
    match e {
        RouteError::Invalid(f) => invalid(f),
        RouteError::Store(s) => store(s),
    }
}

pub fn attribution(e: &AttributionError) -> Status {
    match e {
        AttributionError::Invalid(f) => invalid(f),
        AttributionError::Conflict { .. } => Status::already_exists(e.to_string()),
        AttributionError::NotFound { .. } => Status::not_found(e.to_string()),
        AttributionError::Precondition(_) => Status::failed_precondition(e.to_string()),
        AttributionError::Store(s) => store(s),
    }
}

/// Catalog changes and answers to offers.
pub fn catalog(e: &CatalogError) -> Status {
    match e {
        CatalogError::Invalid(f) => invalid(f),
        CatalogError::NotFound(m) => Status::not_found(m.clone()),
        CatalogError::Precondition(m) => Status::failed_precondition(m.clone()),
        CatalogError::Store(s) => store(s),
    }
}

/// A call the caller's key may not make.
pub fn denied(d: crate::auth::Denied) -> Status {
    Status::permission_denied(d.0)
}

/// The principal the gate admitted the call as. A call that did not pass the gate is refused,
/// never run as anyone.
pub fn principal<T>(
    request: &tonic::Request<T>,
) -> Result<std::sync::Arc<crate::auth::Principal>, Status> {
    request
        .extensions()
        .get::<std::sync::Arc<crate::auth::Principal>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not admitted"))
}

/// The store a guide works in, for scope checks; an unknown guide is left to the call to report.
pub fn guide_store(engine: &crate::engine::Engine, guide_id: &str) -> Option<String> {
    let snap = engine.snapshot();
    let idx = snap.network.guide_index(guide_id)?;
    let g = snap.network.guide(idx);
    Some(snap.network.store(g.store).id.to_string())
}
