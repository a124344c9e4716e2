use super::metrics::{REJECTED, ROUTE_DURATION, ROUTES, field_label};
use super::status;
use crate::domain::{Channel, FieldError, Unrouted};
use crate::engine::{Engine, RouteError};
use crate::wire;
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::{
    PingRequest, PingResponse, RouteRequest, RouteResponse, lead_router_server::LeadRouter,
};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// Outcomes counted per channel: routed, replayed, and unrouted by reason.
const OUTCOMES: [(&str, &str); 6] = [
    ("routed", ""),
    ("replayed", ""),
    ("unrouted", "NO_CANDIDATE"),
    ("unrouted", "ALL_AT_CAPACITY"),
    ("unrouted", "NO_ACTIVE_GUIDE"),
    ("unrouted", "OFFERS_EXHAUSTED"),
];

fn outcome_index(replayed: bool, unrouted: Option<Unrouted>) -> usize {
    match (replayed, unrouted) {
        (true, _) => 1,
        (false, None) => 0,
        (false, Some(Unrouted::NoCandidate)) => 2,
        (false, Some(Unrouted::AllAtCapacity)) => 3,
        (false, Some(Unrouted::NoActiveGuide)) => 4,
        (false, Some(Unrouted::OffersExhausted)) => 5,
    }
}

/// Metric handles built once: no label allocation or registry lookup per call, and every
/// series is exported (at 0) from the start.
#[derive(Clone)]
struct RouteMetrics {
    duration: metrics::Histogram,
    /// Indexed by `channel * OUTCOMES.len() + outcome`.
    routes: Arc<Vec<metrics::Counter>>,
}

impl RouteMetrics {
    fn new(policy: &'static str) -> Self {
        let mut routes = Vec::with_capacity(Channel::ALL.len() * OUTCOMES.len());
        for channel in Channel::ALL {
            for (outcome, reason) in OUTCOMES {
                routes.push(metrics::counter!(
                    ROUTES,
                    "policy" => policy,
                    "channel" => channel.as_str(),
                    "outcome" => outcome,
                    "reason" => reason
                ));
            }
        }
        Self {
            duration: metrics::histogram!(ROUTE_DURATION, "policy" => policy),
            routes: Arc::new(routes),
        }
    }

    fn count(&self, channel: Channel, replayed: bool, unrouted: Option<Unrouted>) {
        let c = channel.index();
        self.routes[c * OUTCOMES.len() + outcome_index(replayed, unrouted)].increment(1);
    }
}

#[derive(Clone)]
pub struct RouterSvc {
    engine: Arc<Engine>,
    metrics: RouteMetrics,
}

impl std::fmt::Debug for RouterSvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterSvc").finish_non_exhaustive()
    }
}

impl RouterSvc {
    /// Call after the metrics recorder is installed ([`super::metrics::handle`]).
    pub fn new(engine: Arc<Engine>) -> Self {
        let metrics = RouteMetrics::new(engine.snapshot().policy.name());
        Self { engine, metrics }
    }
}

fn rejected(field: &str) {
    metrics::counter!(REJECTED, "field" => field_label(field)).increment(1);
}

#[tonic::async_trait]
impl LeadRouter for RouterSvc {
    async fn route(
        &self,
        request: Request<RouteRequest>,
    ) -> Result<Response<RouteResponse>, Status> {
        let who = status::principal(&request)?;
        let request = request.into_inner();
        let max_alternatives = request.max_alternatives;
        let lead = wire::lead_from_pb(request).map_err(|e| {
            rejected(&e.field);
            status::invalid(&e)
        })?;
        let started = Instant::now();
        let by = (!who.open).then(|| who.name.clone());
        // A database across the network is awaited here; sled answers at once, except when
        // every decision is flushed to disk first (then on the blocking pool).
        let result = if self.engine.store().waits_on_network() {
            self.engine.route_by_async(&lead, by.as_deref()).await
        } else if self.engine.config().sync_decisions {
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || engine.route_by(&lead, by.as_deref()))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
        } else {
            self.engine.route_by(&lead, by.as_deref())
        };
        let decision = match result {
            Ok(d) => d,
            Err(RouteError::Invalid(f)) => {
                rejected(&f.field);
                return Err(status::invalid(&f));
            }
            Err(e) => return Err(status::route(&e)),
        };
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        self.metrics
            .count(decision.lead.channel, decision.replayed, decision.unrouted);
        if let Some((experiment, arm)) = &decision.arm {
            let outcome = OUTCOMES[outcome_index(decision.replayed, decision.unrouted)].0;
            metrics::counter!(
                super::metrics::EXPERIMENT_ROUTES,
                "experiment" => experiment.clone(),
                "arm" => arm.clone(),
                "outcome" => outcome
            )
            .increment(1);
        }
        let limit = max_alternatives.map_or(usize::MAX, |n| n as usize);
        Ok(Response::new(wire::decision_to_pb_with(&decision, limit)))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }

    async fn respond_to_offer(
        &self,
        request: Request<pb::RespondToOfferRequest>,
    ) -> Result<Response<RouteResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let recorded_by = (!who.open).then(|| who.name.clone());
        if who.scoped()
            && let Some(store) = status::guide_store(&self.engine, &r.guide_id)
        {
            who.check_store("guide_id", &store)
                .map_err(status::denied)?;
        }
        let accept = match pb::OfferAnswer::try_from(r.answer) {
            Ok(pb::OfferAnswer::Accept) => true,
            Ok(pb::OfferAnswer::Decline) => false,
            _ => {
                return Err(status::invalid(&FieldError::new(
                    "answer",
                    format!("must be ACCEPT or DECLINE, got {}", r.answer),
                )));
            }
        };
        let engine = self.engine.clone();
        let reply = tokio::task::spawn_blocking(move || {
            engine.respond_to_offer(
                &r.lead_id,
                &r.guide_id,
                accept,
                &r.reason,
                recorded_by.as_deref(),
            )
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| status::catalog(&e))?;
        let mut response = wire::decision_to_pb(&reply.decision);
        response.replayed = reply.replayed;
        Ok(Response::new(response))
    }
}
