//! The one place that maps domain errors to gRPC status codes.

use crate::domain::FieldError;
use crate::engine::RouteError;
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
