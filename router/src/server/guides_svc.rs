//! The guides' side over gRPC (`leadrouter.v1.Guides`) and the same offer stream as Server-Sent
//! Events (`GET /v1/offers/events`). Store-limited keys act on their stores' guides and queues
//! only, checked here as for `RespondToOffer`.

use super::status;
use super::watch::{NoticeHub, Target, WatchError, Watched};
use crate::auth::Principal;
use crate::domain::offer::OfferStatus;
use crate::domain::{Day, FieldError, check_id};
use crate::engine::Engine;
use crate::storage::NoticeId;
use crate::wire;
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::guides_server::Guides;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// A store queue page when the request names no limit.
const DEFAULT_QUEUE_PAGE: u32 = 100;

#[derive(Clone)]
pub struct GuidesSvc {
    engine: Arc<Engine>,
    hub: Arc<NoticeHub>,
}

impl std::fmt::Debug for GuidesSvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuidesSvc").finish_non_exhaustive()
    }
}

impl GuidesSvc {
    pub fn new(engine: Arc<Engine>, hub: Arc<NoticeHub>) -> Self {
        Self { engine, hub }
    }
}

/// A scoped key may act on `guide_id` only if the guide works in one of its stores (an unknown
/// guide is left to the call to report).
fn check_guide(engine: &Engine, who: &Principal, guide_id: &str) -> Result<(), Status> {
    if who.scoped()
        && let Some(store) = status::guide_store(engine, guide_id)
    {
        who.check_store("guide_id", &store)
            .map_err(status::denied)?;
    }
    Ok(())
}

/// Whose offers a stream follows: exactly one of a known guide and a known store, in the key's
/// stores.
pub fn target(
    engine: &Engine,
    who: &Principal,
    guide_id: &str,
    store_id: &str,
) -> Result<Target, Status> {
    let net = engine.snapshot();
    let net = &net.network;
    match (guide_id.is_empty(), store_id.is_empty()) {
        (false, true) => {
            check_id("guide_id", guide_id).map_err(|e| status::invalid(&e))?;
            if net.guide_index(guide_id).is_none() {
                return Err(Status::not_found(format!(
                    "guide_id: the network has no guide {}",
                    crate::domain::short(guide_id)
                )));
            }
            check_guide(engine, who, guide_id)?;
            Ok(Target::Guide(guide_id.to_string()))
        }
        (true, false) => {
            check_id("store_id", store_id).map_err(|e| status::invalid(&e))?;
            if net.store_index(store_id).is_none() {
                return Err(Status::not_found(format!(
                    "store_id: the network has no store {}",
                    crate::domain::short(store_id)
                )));
            }
            who.check_store("store_id", store_id)
                .map_err(status::denied)?;
            Ok(Target::Store(store_id.to_string()))
        }
        _ => Err(status::invalid(&FieldError::new(
            "guide_id",
            "exactly one of guide_id and store_id must be set",
        ))),
    }
}

/// The id to resume after, as the stream sent it; empty for none.
pub fn resume_after(field: &str, id: &str) -> Result<Option<NoticeId>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    id.parse()
        .map(Some)
        .map_err(|why: String| status::invalid(&FieldError::new(field, why)))
}

pub fn watch_error(e: &WatchError) -> Status {
    match e {
        WatchError::Full(_) => Status::resource_exhausted(e.to_string()),
        WatchError::Stopping => Status::unavailable(e.to_string()),
        WatchError::Storage(s) => status::store(s),
    }
}

/// Runs an engine call off the async workers (it may wait on a database).
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::engine::OfferError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| status::catalog(&e))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::OfferUpdate, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Guides for GuidesSvc {
    async fn list_guide_leads(
        &self,
        request: Request<pb::ListGuideLeadsRequest>,
    ) -> Result<Response<pb::ListGuideLeadsResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        check_guide(&self.engine, &who, &r.guide_id)?;
        let day = if r.business_day.is_empty() {
            None
        } else {
            Some(
                Day::parse_date(&r.business_day)
                    .map_err(|why| status::invalid(&FieldError::new("business_day", why)))?,
            )
        };
        let engine = self.engine.clone();
        let guide = r.guide_id.clone();
        let leads = off_thread(move || engine.guide_leads(&guide, day)).await?;
        let day = day.unwrap_or_else(|| self.engine.today());
        let open = leads
            .iter()
            .filter(|d| {
                d.offer
                    .as_ref()
                    .is_some_and(|o| o.status == OfferStatus::Open)
            })
            .count();
        Ok(Response::new(pb::ListGuideLeadsResponse {
            guide_id: r.guide_id,
            business_day: day.to_string(),
            leads: leads
                .iter()
                .map(|d| wire::guides::guide_lead_to_pb(d))
                .collect(),
            open_offers: open as u32,
        }))
    }

    async fn list_store_queue(
        &self,
        request: Request<pb::ListStoreQueueRequest>,
    ) -> Result<Response<pb::ListStoreQueueResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let max = crate::engine::MAX_QUEUE_PAGE as u32;
        let limit = match r.limit {
            0 => DEFAULT_QUEUE_PAGE,
            n if n > max => {
                return Err(status::invalid(&FieldError::new(
                    "limit",
                    format!("must be at most {max} (0 for {DEFAULT_QUEUE_PAGE}), got {n}"),
                )));
            }
            n => n,
        };
        if !r.store_id.is_empty() {
            who.check_store("store_id", &r.store_id)
                .map_err(status::denied)?;
        }
        let engine = self.engine.clone();
        let store = r.store_id.clone();
        let leads = off_thread(move || engine.store_queue(&store, limit as usize)).await?;
        Ok(Response::new(pb::ListStoreQueueResponse {
            store_id: r.store_id,
            leads: leads
                .iter()
                .map(|d| wire::guides::guide_lead_to_pb(d))
                .collect(),
        }))
    }

    async fn claim_queued_lead(
        &self,
        request: Request<pb::ClaimQueuedLeadRequest>,
    ) -> Result<Response<pb::RouteResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        check_guide(&self.engine, &who, &r.guide_id)?;
        let recorded_by = (!who.open).then(|| who.name.clone());
        let engine = self.engine.clone();
        let reply = off_thread(move || {
            engine.claim_queued(&r.lead_id, &r.guide_id, &r.reason, recorded_by.as_deref())
        })
        .await?;
        let mut response = wire::decision_to_pb(&reply.decision);
        response.replayed = reply.replayed;
        Ok(Response::new(response))
    }

    type WatchOffersStream = EventStream;

    async fn watch_offers(
        &self,
        request: Request<pb::WatchOffersRequest>,
    ) -> Result<Response<Self::WatchOffersStream>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let target = target(&self.engine, &who, &r.guide_id, &r.store_id)?;
        let after = resume_after("after_event_id", &r.after_event_id)?;
        let events = self
            .hub
            .watch(target, after)
            .await
            .map_err(|e| watch_error(&e))?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(events).map(|item| match item {
            Ok(w) => Ok(event(&w)),
            Err(e) => Err(status::store(&e)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A watched notice as the contract's event.
pub fn event(w: &Watched) -> pb::OfferUpdate {
    wire::guides::offer_event_to_pb(&w.notice, w.decision.as_deref())
}

/// Query parameters `GET /v1/offers/events` takes.
const SSE_PARAMS: [&str; 3] = ["guide_id", "store_id", "after"];

/// How often an idle event stream sends a comment, so that proxies keep it open.
const SSE_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /v1/offers/events?guide_id=…` (or `store_id=…`): the offer stream as Server-Sent
/// Events. Each event's `id` is its event id, `event` its kind (`offered`, `accepted`, `left`,
/// `queued`, `claimed`, `unrouted`) and `data` the `OfferUpdate` in the proto3 JSON mapping. A
/// reconnecting client's `Last-Event-ID` (or, on the first connect, `after=`) resumes after that
/// event. A storage failure ends the stream with an `error` event; reconnect to resume.
pub fn sse_router(engine: Arc<Engine>, hub: Arc<NoticeHub>) -> axum::Router {
    axum::Router::new()
        .route("/v1/offers/events", axum::routing::get(sse))
        .with_state(GuidesSvc::new(engine, hub))
}

async fn sse(
    axum::extract::State(s): axum::extract::State<GuidesSvc>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (req, _) = req.into_parts();
    let opened = async {
        let who = req
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the call was not admitted"))?;
        let query = query_pairs(req.uri.query().unwrap_or(""))?;
        let mut got = std::collections::HashMap::new();
        for (k, v) in query {
            if !SSE_PARAMS.contains(&k.as_str()) {
                return Err(status::invalid(&FieldError::new(
                    crate::domain::short(&k),
                    format!(
                        "is not a parameter; this stream takes {}",
                        SSE_PARAMS.join(", ")
                    ),
                )));
            }
            if got.insert(k.clone(), v).is_some() {
                return Err(status::invalid(&FieldError::new(k, "must be given once")));
            }
        }
        let param = |k: &str| got.get(k).map(String::as_str).unwrap_or("");
        let target = target(&s.engine, &who, param("guide_id"), param("store_id"))?;
        // A browser's EventSource reconnects to the same URL with the last id in a header.
        let after = match req
            .headers
            .get("last-event-id")
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        {
            Some(id) => resume_after("Last-Event-ID", id.trim())?,
            None => resume_after("after", param("after"))?,
        };
        s.hub
            .watch(target, after)
            .await
            .map_err(|e| watch_error(&e))
    };
    let events = match opened.await {
        Ok(events) => events,
        Err(status) => return super::connect::error(status.code(), status.message()),
    };
    let stream = tokio_stream::wrappers::ReceiverStream::new(events).map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(w) => {
                let e = event(&w);
                let kind = w.notice.kind.as_str();
                Event::default()
                    .id(e.event_id.clone())
                    .event(kind)
                    .data(serde_json::to_string(&e).unwrap_or_default())
            }
            Err(e) => {
                let s = status::store(&e);
                Event::default().event("error").data(
                    serde_json::json!({
                        "code": super::gate::connect_code(s.code()),
                        "message": s.message(),
                    })
                    .to_string(),
                )
            }
        })
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
        .into_response();
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// `k=v&…` with `+` and percent escapes decoded; an escape that is not UTF-8 is refused.
pub(super) fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Status> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| Status::invalid_argument("the query string is not UTF-8 once decoded"))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}
