//! The one place that maps domain errors to gRPC status codes.

use crate::attribution::AttributionError;
use crate::domain::FieldError;
use crate::engine::{CatalogError, RouteError};
use crate::storage::StorageError;
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

/// A reply page stops at this many encoded bytes as well as at its count, so that a client with
/// the default 4 MiB receive limit can always read it.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// How many of `items`, from the front, fit in one page of [`MAX_PAGE_BYTES`]; at least one, so
/// that a page always moves on.
pub fn fitting<T: prost::Message>(items: &[T]) -> usize {
    let mut bytes = 0;
    items
        .iter()
        .position(|m| {
            bytes += m.encoded_len();
            bytes > MAX_PAGE_BYTES
        })
        .map_or(items.len(), |i| i.max(1))
}

pub fn invalid(e: &FieldError) -> Status {
    Status::invalid_argument(capped(e.to_string()))
}

/// Damaged records read since the start (shown by `/healthz`).
pub static DAMAGED_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Damaged trail records the check at start found (see [`check_at_start`]).
pub static DAMAGED_AT_START: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Reads every trail record once, in the background after start, so that damage is reported
/// (log, `/healthz`, `leadrouter_storage_damaged_records_at_start`) before a caller meets it.
/// Returns `(events read, damaged)`.
pub fn check_at_start(store: &dyn crate::storage::Storage) -> Result<(u64, u64), StorageError> {
    let started = std::time::Instant::now();
    let (mut events, mut damaged) = (0u64, 0u64);
    store.scan_trails_lossy(
        &mut |_| {
            events += 1;
            true
        },
        &mut |e| {
            damaged += 1;
            if damaged <= 10 {
                tracing::error!(error = %e, "a stored trail record cannot be read");
            }
        },
    )?;
    DAMAGED_AT_START.store(damaged, std::sync::atomic::Ordering::Relaxed);
    ::metrics::gauge!("leadrouter_storage_damaged_records_at_start").set(damaged as f64);
    if damaged > 0 {
        tracing::error!(
            damaged,
            events,
            "the check at start found damaged trail records: restore them from a backup; \
             `leadrouter trail export` keeps the rest"
        );
    } else {
        tracing::info!(
            events,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "every trail record reads"
        );
    }
    Ok((events, damaged))
}

pub fn store(e: &StorageError) -> Status {
    tracing::error!(error = %e, "storage failure");
    match e {
        StorageError::Corrupt { .. } => {
            metrics::counter!("leadrouter_storage_damaged_reads_total").increment(1);
            DAMAGED_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Status::data_loss(format!(
                "a stored record cannot be read (the data is damaged; retrying will not help): {}",
                capped(e.to_string())
            ))
        }
        StorageError::Contended(why) => Status::aborted(format!(
            "concurrent writers kept winning ({}); retry the request",
            capped(why.clone())
        )),
        _ => Status::unavailable(e.to_string()),
    }
}

pub fn route(e: &RouteError) -> Status {
    match e {
        RouteError::Invalid(f) => invalid(f),
        RouteError::Storage(s) => store(s),
    }
}

pub fn attribution(e: &AttributionError) -> Status {
    match e {
        AttributionError::Invalid(f) => invalid(f),
        AttributionError::Conflict { .. } => Status::already_exists(e.to_string()),
        AttributionError::NotFound { .. } => Status::not_found(e.to_string()),
        AttributionError::Precondition(_) => Status::failed_precondition(e.to_string()),
        AttributionError::Storage(s) => store(s),
    }
}

/// Catalog changes and answers to offers.
pub fn catalog(e: &CatalogError) -> Status {
    match e {
        CatalogError::Invalid(f) => invalid(f),
        CatalogError::NotFound(m) => Status::not_found(m.clone()),
        CatalogError::Precondition(m) => Status::failed_precondition(m.clone()),
        CatalogError::Storage(s) => store(s),
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

#[cfg(test)]
mod tests {
    use super::*;
    use leadrouter_proto::v1 as pb;

    fn event(bytes: usize) -> pb::TrailEvent {
        pb::TrailEvent {
            canonical_json: "x".repeat(bytes),
            ..Default::default()
        }
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_and_always_moves_on() {
        let small: Vec<_> = (0..10).map(|_| event(100)).collect();
        assert_eq!(fitting(&small), 10);
        // 300 KiB each: three fit in 1 MiB, the fourth does not.
        let big: Vec<_> = (0..10).map(|_| event(300 << 10)).collect();
        assert_eq!(fitting(&big), 3);
        // One item larger than the budget is still a page of one.
        assert_eq!(fitting(&[event(2 << 20), event(1)]), 1);
        assert_eq!(fitting::<pb::TrailEvent>(&[]), 0);
    }
}
