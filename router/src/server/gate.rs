//! Every request passes here first: unknown paths are answered as unknown, the caller's key is
//! looked up and checked against the permission table ([`crate::auth::PERMISSIONS`]), the key's
//! rate is taken, and the call runs under the request timeout with its [`Principal`] in the
//! request's extensions. Nothing behind the gate runs for a refused call, so nothing is written.

use crate::auth::{Access, Keyring, Principal, RateLimiter, permission};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

/// How callers are admitted.
#[derive(Debug)]
pub struct Gate {
    /// `None`: no keys; every call runs as [`Principal::open`].
    keyring: Option<RwLock<Arc<Keyring>>>,
    /// The principal of every call without keys, made once.
    open: Arc<Principal>,
    limiter: RateLimiter,
    rate_per_sec: f64,
    burst: f64,
    request_timeout: Duration,
    /// Requests being served (`limits.max_requests_in_flight`).
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    /// Largest JSON body read ([`super::connect`]): `limits.max_message_bytes`.
    json_limit: usize,
}

/// Requests served at once unless [`Gate::with_in_flight`] says otherwise.
const DEFAULT_IN_FLIGHT: usize = 2048;

/// The metric counting refused calls, by reason.
pub const REFUSED: &str = "leadrouter_requests_refused_total";

/// Every `reason` [`REFUSED`] counts (registered at 0 at start, for alerting).
pub const REFUSAL_REASONS: [&str; 6] = [
    "unauthenticated",
    "permission_denied",
    "rate_limited",
    "max_requests_in_flight",
    "timeout",
    "unknown_path",
];

impl Gate {
    /// Calls run without keys.
    pub fn open(request_timeout: Duration) -> Self {
        Self {
            keyring: None,
            open: Principal::open(),
            limiter: RateLimiter::default(),
            rate_per_sec: f64::INFINITY,
            burst: f64::INFINITY,
            request_timeout,
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_IN_FLIGHT)),
            max_in_flight: DEFAULT_IN_FLIGHT,
            json_limit: 1024 * 1024,
        }
    }

    /// At most `n` requests served at once.
    /// Reads JSON bodies up to `bytes` (`limits.max_message_bytes`).
    pub fn with_json_limit(mut self, bytes: usize) -> Self {
        self.json_limit = bytes;
        self
    }

    pub fn with_in_flight(mut self, n: usize) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(n));
        self.max_in_flight = n;
        self
    }

    /// Calls need a key from `keys`.
    pub fn with_keys(keys: Keyring, rate_per_sec: f64, burst: f64, timeout: Duration) -> Self {
        Self {
            keyring: Some(RwLock::new(Arc::new(keys))),
            open: Principal::open(),
            limiter: RateLimiter::default(),
            rate_per_sec,
            burst,
            request_timeout: timeout,
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_IN_FLIGHT)),
            max_in_flight: DEFAULT_IN_FLIGHT,
            json_limit: 1024 * 1024,
        }
    }

    /// The keys in service now (`None` without keys).
    pub fn keyring(&self) -> Option<Arc<Keyring>> {
        self.keyring.as_ref().map(|k| k.read().clone())
    }

    pub fn is_open(&self) -> bool {
        self.keyring.is_none()
    }

    /// Swaps in a new set of keys (SIGHUP); calls in flight keep the principal they had.
    pub fn replace_keys(&self, keys: Keyring) -> bool {
        match &self.keyring {
            Some(k) => {
                *k.write() = Arc::new(keys);
                true
            }
            None => false,
        }
    }

    fn authenticate(&self, req: &Request) -> Result<(Arc<Principal>, Option<f64>), Refusal> {
        let Some(ring) = &self.keyring else {
            return Ok((self.open.clone(), None));
        };
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err(Refusal::unauthenticated(
                "no key: send `authorization: Bearer <key>` (make one with `leadrouter keys add`)",
            ));
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                Refusal::unauthenticated("the authorization header must be `Bearer <key>`")
            })?;
        let ring = ring.read().clone();
        ring.lookup(key)
            .ok_or_else(|| Refusal::unauthenticated("unknown or revoked key"))
    }
}

/// A refused call: its gRPC code, HTTP status and message (never a key, hash or path).
#[derive(Debug)]
struct Refusal {
    code: Code,
    http: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl Refusal {
    fn unauthenticated(m: &str) -> Self {
        Self {
            code: Code::Unauthenticated,
            http: StatusCode::UNAUTHORIZED,
            reason: "unauthenticated",
            message: m.to_string(),
            retry_after: None,
        }
    }

    fn into_response(self, grpc: bool) -> Response {
        metrics::counter!(REFUSED, "reason" => self.reason).increment(1);
        let mut response = if grpc {
            let (parts, ()) = tonic::Status::new(self.code, self.message)
                .into_http::<()>()
                .into_parts();
            Response::from_parts(parts, Body::empty())
        } else {
            let body = serde_json::json!({
                "code": connect_code(self.code),
                "message": self.message,
            });
            (
                self.http,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        };
        if let Some(wait) = self.retry_after {
            let ms = wait.as_millis().max(1);
            let h = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&ms.to_string()) {
                h.insert("retry-after-ms", v);
            }
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        if self.code == Code::Unauthenticated && !grpc {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Connect's name for a gRPC code (`invalid_argument`, …).
pub fn connect_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn admit(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let grpc = is_grpc(&req);
    let Some(entry) = permission(req.uri().path()) else {
        return Refusal {
            code: Code::Unimplemented,
            http: StatusCode::NOT_FOUND,
            reason: "unknown_path",
            message: format!(
                "no such method or page: {}",
                crate::domain::short(req.uri().path())
            ),
            retry_after: None,
        }
        .into_response(grpc);
    };
    if entry.access != Access::Open {
        let (principal, own_rate) = match gate.authenticate(&req) {
            Ok(p) => p,
            Err(r) => return r.into_response(grpc),
        };
        if let Err(d) = entry.access.allows(&principal) {
            return Refusal {
                code: Code::PermissionDenied,
                http: StatusCode::FORBIDDEN,
                reason: "permission_denied",
                message: d.0,
                retry_after: None,
            }
            .into_response(grpc);
        }
        if !principal.open {
            let rate = own_rate.unwrap_or(gate.rate_per_sec);
            let burst = own_rate.map_or(gate.burst, |r| (2.0 * r).max(1.0));
            if let Err(wait) = gate
                .limiter
                .take(&principal.name, rate, burst, Instant::now())
            {
                return Refusal {
                    code: Code::ResourceExhausted,
                    http: StatusCode::TOO_MANY_REQUESTS,
                    reason: "rate_limited",
                    message: format!(
                        "key {:?} is over its rate of {rate} requests per second; retry after {} ms",
                        principal.name,
                        wait.as_millis().max(1)
                    ),
                    retry_after: Some(wait),
                }
                .into_response(grpc);
            }
        }
        req.extensions_mut().insert(principal);
    }
    // Health stays answerable when the service is saturated.
    let _slot = if entry.access == Access::Open {
        None
    } else {
        match gate.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return Refusal {
                    code: Code::ResourceExhausted,
                    http: StatusCode::SERVICE_UNAVAILABLE,
                    reason: "max_requests_in_flight",
                    message: format!(
                        "the server is serving limits.max_requests_in_flight = {} requests; retry shortly",
                        gate.max_in_flight
                    ),
                    retry_after: Some(Duration::from_millis(100)),
                }
                .into_response(grpc);
            }
        }
    };
    // A JSON call to a unary method is served through the same services as gRPC.
    let served = async {
        if grpc {
            next.run(req).await
        } else {
            super::connect::serve(gate.json_limit, req, next).await
        }
    };
    match tokio::time::timeout(gate.request_timeout, served).await {
        Ok(response) if grpc => plain_grpc_errors(response),
        Ok(response) => response,
        Err(_) => Refusal {
            code: Code::DeadlineExceeded,
            http: StatusCode::GATEWAY_TIMEOUT,
            reason: "timeout",
            message: format!(
                "the request was not answered within {} ms",
                gate.request_timeout.as_millis()
            ),
            retry_after: None,
        }
        .into_response(grpc),
    }
}

/// Longest `grpc-message` sent, percent-encoded bytes.
const MAX_MESSAGE: usize = 1024;

/// tonic answers a body it cannot decode with `INTERNAL` naming its own types, and one over
/// the size limit with `OUT_OF_RANGE`: say what the caller did instead.
fn plain_grpc_errors(mut response: Response) -> Response {
    let h = response.headers();
    let status = h.get("grpc-status").and_then(|v| v.to_str().ok());
    let message = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let replace = match status {
        Some("13") if message.starts_with("failed%20to%20decode") => Some((
            Code::InvalidArgument,
            "the request body is not a valid protobuf message of this method's request type",
        )),
        Some("11") if message.contains("message%20length%20too%20large") => Some((
            Code::ResourceExhausted,
            "the request message is larger than limits.max_message_bytes",
        )),
        _ => None,
    };
    if replace.is_none() && message.len() > MAX_MESSAGE {
        // A message that quotes a caller's huge field would exceed what clients accept in a
        // header; keep a prefix (cut between escapes, so it still decodes).
        let mut cut = MAX_MESSAGE;
        while cut > 0 && !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let head = &message[..cut];
        let head = match head.rfind('%') {
            Some(i) if i + 3 > head.len() => &head[..i],
            _ => head,
        };
        if let Ok(v) = HeaderValue::from_str(&format!("{head}%E2%80%A6")) {
            response.headers_mut().insert("grpc-message", v);
        }
        return response;
    }
    if let Some((code, text)) = replace {
        let h = response.headers_mut();
        h.insert("grpc-status", HeaderValue::from(code as i32));
        if let Ok(v) = HeaderValue::from_str(&text.replace(' ', "%20").replace('\'', "%27")) {
            h.insert("grpc-message", v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reason_is_registered() {
        let src = include_str!("gate.rs");
        let used: std::collections::BTreeSet<&str> = src
            .split("reason: \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let listed: std::collections::BTreeSet<&str> = REFUSAL_REASONS.into_iter().collect();
        assert_eq!(used, listed);
    }
}
