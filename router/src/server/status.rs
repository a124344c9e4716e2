//! The one place that maps domain errors to gRPC status codes.

use crate::attribution::AttributionError;
use crate::domain::FieldError;
use crate::engine::{CatalogError, RouteError};
use crate::store::StoreError;
use tonic::Status;

pub fn invalid(e: &FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

pub fn store(e: &StoreError) -> Status {
    tracing::error!(error = %e, "storage failure");
    match e {
        StoreError::Corrupt { .. } => Status::data_loss(e.to_string()),
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
