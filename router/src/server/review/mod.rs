//! The reviewers' pages at `/review/`, server-rendered (askama, with a vendored htmx for the
//! queue's filters): sign in with a reviewer key, a queue of disputes with filters and counts,
//! one dispute with all its evidence, and a resolution previewed before it is confirmed.
//!
//! The pages call the same `Disputes` service as gRPC callers, in process and as the signed-in
//! key, so the same scopes, checks and audit apply; nothing here decides anything. A form
//! carries the owner it was shown: if the dispute was resolved or its order's owner moved
//! meanwhile, the form is refused and the dispute shown as it stands now (storage itself lets
//! only one of two concurrent resolutions through).

mod session;
mod text;
mod view;

use super::disputes_svc::DisputesSvc;
use super::gate::Gate;
use crate::attribution::Attribution;
use crate::auth::Principal;
use crate::engine::Engine;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::disputes_server::Disputes;
use session::{Secrets, Session};
use std::collections::HashMap;
use std::sync::Arc;
use text::Texts;
use tonic::Code;

const HTMX: &str = include_str!("../../../static/htmx.min.js");

/// Largest form body read.
const MAX_FORM: usize = 64 * 1024;

/// Rows the queue shows, and disputes it reads to count.
const QUEUE_ROWS: usize = 200;
const COUNTED: usize = 5_000;

struct Review {
    gate: Arc<Gate>,
    disputes: DisputesSvc,
    attribution: Arc<Attribution>,
    engine: Arc<Engine>,
    /// Signs sessions when the service runs without keys.
    open_secret: [u8; 32],
    /// Cookies are `Secure` when the port speaks TLS.
    secure: bool,
}

/// The pages' router. `secure`: the port speaks TLS.
pub fn router(
    gate: Arc<Gate>,
    attribution: Arc<Attribution>,
    engine: Arc<Engine>,
    secure: bool,
) -> axum::Router {
    let mut open_secret = [0u8; 32];
    for chunk in open_secret.chunks_mut(8) {
        chunk.copy_from_slice(&crate::domain::os_random_u64().to_le_bytes());
    }
    let state = Arc::new(Review {
        gate,
        disputes: DisputesSvc::new(attribution.clone()),
        attribution,
        engine,
        open_secret,
        secure,
    });
    axum::Router::new()
        .route("/review", get(|| async { Redirect::to("/review/") }))
        .route("/review/", get(queue))
        .route("/review/login", post(login))
        .route("/review/logout", post(logout))
        .route("/review/dispute", get(dispute))
        .route("/review/resolve", post(resolve))
        .route("/review/htmx.min.js", get(htmx))
        .with_state(state)
}

/// Headers every page carries: no caching, no framing, scripts from here only.
fn page(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let body = match html {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "a review page failed to render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response();
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn texts(h: &HeaderMap) -> &'static Texts {
    text::for_accept_language(h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// Equal without telling how much matched, by timing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |x, (p, q)| x | (p ^ q)) == 0
}

impl Review {
    fn now_ms(&self) -> i64 {
        self.engine.clock().now_ms()
    }

    fn session(&self, h: &HeaderMap) -> Option<Session> {
        let cookie = session::cookie_value(h.get(header::COOKIE).and_then(|v| v.to_str().ok()))?;
        match self.gate.keyring() {
            Some(ring) => Secrets::Keys(&ring).check(cookie, self.now_ms()),
            None => Secrets::Open(&self.open_secret).check(cookie, self.now_ms()),
        }
    }

    fn login_page(&self, t: &'static Texts, failed: bool) -> Response {
        let p = view::LoginPage {
            t,
            who: None,
            csrf: String::new(),
            open: self.gate.is_open(),
            failed,
        };
        let status = if failed {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        page(status, p.render())
    }

    /// A `Disputes` call as the signed-in reviewer.
    fn as_reviewer<T>(who: &Arc<Principal>, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.extensions_mut().insert(who.clone());
        r
    }

    async fn get_dispute(
        &self,
        who: &Arc<Principal>,
        id: &str,
    ) -> Result<pb::GetDisputeResponse, tonic::Status> {
        let msg = pb::GetDisputeRequest {
            dispute_id: id.to_string(),
        };
        Ok(self
            .disputes
            .get_dispute(Self::as_reviewer(who, msg))
            .await?
            .into_inner())
    }

    /// The dispute page, with a notice or an error above it.
    async fn dispute_page(
        &self,
        t: &'static Texts,
        s: &Session,
        id: &str,
        notice: Option<String>,
        error: Option<String>,
        status: StatusCode,
    ) -> Response {
        match self.get_dispute(&s.principal, id).await {
            Ok(got) => {
                let p = view::DisputePage {
                    t,
                    who: Some(s.principal.name.clone()),
                    csrf: s.csrf.clone(),
                    d: view::DisputeView::of(t, &got, self.engine.config().time_zone),
                    notice,
                    error,
                };
                page(status, p.render())
            }
            Err(e) => self.error_page(t, s, &e),
        }
    }

    /// The dispute page, saying why the form was refused.
    async fn refused(&self, t: &'static Texts, s: &Session, id: &str, why: String) -> Response {
        let error = Some(format!("{}: {why}", t.refused));
        self.dispute_page(t, s, id, None, error, StatusCode::BAD_REQUEST)
            .await
    }

    fn error_page(&self, t: &'static Texts, s: &Session, e: &tonic::Status) -> Response {
        let status = match e.code() {
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let p = view::ErrorPage {
            t,
            who: Some(s.principal.name.clone()),
            csrf: s.csrf.clone(),
            message: e.message().to_string(),
        };
        page(status, p.render())
    }
}

fn params(query: Option<&str>) -> HashMap<String, String> {
    super::guides_svc::query_pairs(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

async fn form(req: Request) -> (HeaderMap, Result<HashMap<String, String>, String>) {
    let (parts, body) = req.into_parts();
    let fields = match axum::body::to_bytes(body, MAX_FORM).await {
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => super::guides_svc::query_pairs(text)
                .map(|v| v.into_iter().collect())
                .map_err(|e| e.message().to_string()),
            Err(_) => Err("the form is not UTF-8".to_string()),
        },
        Err(_) => Err(format!("the form is larger than {MAX_FORM} bytes")),
    };
    (parts.headers, fields)
}

async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX,
    )
        .into_response()
}

async fn login(State(r): State<Arc<Review>>, req: Request) -> Response {
    let (h, fields) = form(req).await;
    let t = texts(&h);
    let fields = fields.unwrap_or_default();
    let now = r.now_ms();
    let signed_in = match r.gate.keyring() {
        Some(ring) => {
            let key = fields.get("key").map(String::as_str).unwrap_or("").trim();
            ring.lookup(key)
                .filter(|(p, _)| session::may_review(p))
                .and_then(|(p, _)| {
                    let cookie = Secrets::Keys(&ring).issue(&p.name, now)?;
                    Some((p.name.clone(), cookie))
                })
        }
        None => {
            let name = fields.get("name").map(String::as_str).unwrap_or("").trim();
            crate::domain::check_id("name", name).ok().and_then(|_| {
                let cookie = Secrets::Open(&r.open_secret).issue(name, now)?;
                Some((name.to_string(), cookie))
            })
        }
    };
    let Some((name, cookie)) = signed_in else {
        metrics::counter!("leadrouter_review_sign_ins_total", "result" => "refused").increment(1);
        return r.login_page(t, true);
    };
    // Who signed in, and when, is in the audit log beside what they resolved.
    let engine = r.engine.clone();
    let agent = h
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|a| crate::domain::short(a).to_string())
        .unwrap_or_default();
    let audited = tokio::task::spawn_blocking(move || {
        engine.record_audit(
            "review_sign_in",
            "review",
            &name,
            "signed in to the review pages",
            serde_json::json!({ "user_agent": agent }),
        )
    })
    .await;
    if !matches!(audited, Ok(Ok(_))) {
        tracing::error!("a sign-in could not be audited; refused");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the sign-in could not be recorded in the audit log; retry shortly",
        )
            .into_response();
    }
    metrics::counter!("leadrouter_review_sign_ins_total", "result" => "ok").increment(1);
    let mut resp = Redirect::to("/review/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(Some(&cookie), r.secure)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(State(r): State<Arc<Review>>, req: Request) -> Response {
    let (h, fields) = form(req).await;
    if let Some(s) = r.session(&h) {
        let given = fields
            .ok()
            .and_then(|f| f.get("csrf").cloned())
            .unwrap_or_default();
        if !same(&given, &s.csrf) {
            return (
                StatusCode::FORBIDDEN,
                "the form's CSRF token does not match",
            )
                .into_response();
        }
    }
    let mut resp = Redirect::to("/review/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(None, r.secure)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn queue(State(r): State<Arc<Review>>, req: Request) -> Response {
    let h = req.headers().clone();
    let t = texts(&h);
    let Some(s) = r.session(&h) else {
        return r.login_page(t, false);
    };
    let p = params(req.uri().query());
    let get = |k: &str| p.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let mut f = view::Filters {
        status: if p.contains_key("status") {
            get("status")
        } else {
            "open".into()
        },
        store: get("store"),
        guide: get("guide"),
        claimant: get("claimant"),
        older_than_days: get("older_than_days"),
    };
    // A store-limited key sees its own stores' disputes: its first store unless it names one.
    if f.store.is_empty()
        && let Some(first) = s.principal.stores.first()
    {
        f.store = first.clone();
    }
    let mut error = None;
    let to = match f.older_than_days.as_str() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(days) if days <= 3650 => Some(crate::wire::ms_to_timestamp(
                r.now_ms() - i64::from(days) * 86_400_000,
            )),
            _ => {
                error = Some(format!(
                    "older_than_days: must be a whole number of days 0..=3650, got {}",
                    crate::domain::short(d)
                ));
                None
            }
        },
    };
    let wanted = match f.status.as_str() {
        "open" => Some(pb::DisputeStatus::DisputeOpen),
        "upheld" => Some(pb::DisputeStatus::DisputeUpheld),
        "reassigned" => Some(pb::DisputeStatus::DisputeReassigned),
        "any" | "" => None,
        other => {
            error = Some(format!(
                "status: must be open, upheld, reassigned or any, got {}",
                crate::domain::short(other)
            ));
            None
        }
    };
    let mut all = Vec::new();
    let mut token = String::new();
    if error.is_none() {
        loop {
            let msg = pb::ListDisputesRequest {
                status: 0,
                store_id: f.store.clone(),
                guide_id: f.guide.clone(),
                claimant: f.claimant.clone(),
                from: None,
                to,
                page_size: 500,
                page_token: token.clone(),
            };
            match r
                .disputes
                .list_disputes(Review::as_reviewer(&s.principal, msg))
                .await
            {
                Ok(page) => {
                    let page = page.into_inner();
                    all.extend(page.disputes);
                    token = page.next_page_token;
                    if token.is_empty() || all.len() >= COUNTED {
                        break;
                    }
                }
                Err(e) => {
                    error = Some(e.message().to_string());
                    break;
                }
            }
        }
    }
    let count = |st: pb::DisputeStatus| all.iter().filter(|d| d.status == st as i32).count();
    let counts = (
        count(pb::DisputeStatus::DisputeOpen),
        count(pb::DisputeStatus::DisputeUpheld),
        count(pb::DisputeStatus::DisputeReassigned),
    );
    let shown: Vec<pb::Dispute> = all
        .into_iter()
        .filter(|d| wanted.is_none_or(|w| d.status == w as i32))
        .take(QUEUE_ROWS)
        .collect();
    let a = r.attribution.clone();
    let orders: Vec<String> = shown.iter().map(|d| d.order_id.clone()).collect();
    let amounts = tokio::task::spawn_blocking(move || {
        orders
            .iter()
            .map(|o| {
                a.order(o)
                    .ok()
                    .and_then(|v| v.order.order().map(|r| r.facts.amount_cents))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let now = r.now_ms();
    let rows = shown
        .iter()
        .enumerate()
        .map(|(i, d)| view::QueueRow::of(t, d, amounts.get(i).copied().flatten(), now))
        .collect();
    let statuses = vec![
        ("open", t.open),
        ("upheld", t.upheld),
        ("reassigned", t.reassigned),
        ("any", t.any),
    ];
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let p = view::QueuePage {
        t,
        who: Some(s.principal.name.clone()),
        csrf: s.csrf.clone(),
        f,
        statuses,
        counts,
        rows,
        error,
    };
    page(status, p.render())
}

async fn dispute(State(r): State<Arc<Review>>, req: Request) -> Response {
    let h = req.headers().clone();
    let t = texts(&h);
    let Some(s) = r.session(&h) else {
        return Redirect::to("/review/").into_response();
    };
    let p = params(req.uri().query());
    let id = p.get("id").cloned().unwrap_or_default();
    let notice = p.contains_key("done").then(|| t.done.to_string());
    r.dispute_page(t, &s, &id, notice, None, StatusCode::OK)
        .await
}

async fn resolve(State(r): State<Arc<Review>>, req: Request) -> Response {
    let (h, fields) = form(req).await;
    let t = texts(&h);
    let Some(s) = r.session(&h) else {
        return Redirect::to("/review/").into_response();
    };
    let f = match fields {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    if !same(&get("csrf"), &s.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "the form's CSRF token does not match",
        )
            .into_response();
    }
    let id = get("id");
    let now = match r.get_dispute(&s.principal, &id).await {
        Ok(d) => d,
        Err(e) => return r.error_page(t, &s, &e),
    };
    let open = now
        .dispute
        .as_ref()
        .is_some_and(|d| d.status == pb::DisputeStatus::DisputeOpen as i32);
    let owner = now
        .order
        .as_ref()
        .map(|o| o.owner_party.clone())
        .unwrap_or_default();
    if !open || owner != get("expected_owner") {
        return r
            .dispute_page(
                t,
                &s,
                &id,
                None,
                Some(t.stale.to_string()),
                StatusCode::CONFLICT,
            )
            .await;
    }
    let reason = get("reason");
    let reassign = get("outcome") == "reassign";
    let new_owner = if reassign {
        get("new_owner")
    } else {
        String::new()
    };
    let rebind = reassign && get("correct_binding") == "1";
    if reason.is_empty() {
        return r
            .refused(t, &s, &id, "reason: must be given (1..=1000 bytes)".into())
            .await;
    }
    if get("confirm") != "1" {
        let entries = if reassign {
            let (a, order, to) = (
                r.attribution.clone(),
                now.dispute
                    .as_ref()
                    .map(|d| d.order_id.clone())
                    .unwrap_or_default(),
                new_owner.clone(),
            );
            match tokio::task::spawn_blocking(move || a.preview_reassign(&order, &to)).await {
                Ok(Ok((_, entries))) => entries,
                Ok(Err(e)) => return r.refused(t, &s, &id, e.to_string()).await,
                Err(e) => return r.refused(t, &s, &id, e.to_string()).await,
            }
        } else {
            Vec::new()
        };
        let verdict = if reassign {
            format!("{} {new_owner}", t.reassign_to)
        } else {
            t.uphold.to_string()
        };
        let p = view::PreviewPage {
            t,
            who: Some(s.principal.name.clone()),
            csrf: s.csrf.clone(),
            id: id.clone(),
            verdict,
            entries: crate::wire::attribution::entries_to_pb(&entries)
                .iter()
                .map(view::entry_row)
                .collect(),
            expected_owner: owner,
            outcome: if reassign { "reassign" } else { "uphold" }.into(),
            new_owner,
            correct_binding: if rebind { "1" } else { "0" }.into(),
            reason,
        };
        return page(StatusCode::OK, p.render());
    }
    use pb::resolve_dispute_request::Outcome;
    let msg = pb::ResolveDisputeRequest {
        dispute_id: id.clone(),
        outcome: if reassign {
            Outcome::Reassign
        } else {
            Outcome::Uphold
        } as i32,
        new_owner,
        reviewer_id: s.principal.name.clone(),
        reason,
        correct_binding: rebind,
    };
    match r
        .disputes
        .resolve_dispute(Review::as_reviewer(&s.principal, msg))
        .await
    {
        Ok(_) => {
            tracing::info!(dispute = %id, reviewer = %s.principal.name, "dispute resolved on the review pages");
            Redirect::to(&format!(
                "/review/dispute?id={}&done=1",
                percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC)
            ))
            .into_response()
        }
        // Resolved by someone else between the check above and this call.
        Err(e) if e.code() == Code::FailedPrecondition => {
            r.dispute_page(
                t,
                &s,
                &id,
                None,
                Some(format!("{} ({})", t.stale, e.message())),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => r.refused(t, &s, &id, e.message().to_string()).await,
    }
}
