use super::metrics::{REJECTED, ROUTE_DURATION, ROUTES, field_label};
use super::status;
use crate::engine::{Engine, RouteError};
use crate::wire;
use leadrouter_proto::v1::{
    PingRequest, PingResponse, RouteRequest, RouteResponse, lead_router_server::LeadRouter,
};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct RouterSvc {
    engine: Arc<Engine>,
}

impl RouterSvc {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
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
        let lead = wire::lead_from_pb(request.into_inner()).map_err(|e| {
            rejected(&e.field);
            status::invalid(&e)
        })?;
        let started = Instant::now();
        let result = if self.engine.config().sync_decisions {
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || {
                let d = engine.route(&lead);
                (d, lead)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .0
        } else {
            self.engine.route(&lead)
        };
        let elapsed = started.elapsed().as_secs_f64();
        let policy = self.engine.snapshot().policy.name();
        let decision = match result {
            Ok(d) => d,
            Err(RouteError::Invalid(f)) => {
                rejected(&f.field);
                return Err(status::invalid(&f));
            }
            Err(e) => return Err(status::route(&e)),
        };
        metrics::histogram!(ROUTE_DURATION, "policy" => policy).record(elapsed);
        let (outcome, reason) = match (decision.replayed, decision.unrouted) {
            (true, _) => ("replayed", ""),
            (false, None) => ("routed", ""),
            (false, Some(why)) => ("unrouted", why.as_str()),
        };
        metrics::counter!(
            ROUTES,
            "policy" => policy,
            "channel" => decision.lead.channel.as_str(),
            "outcome" => outcome,
            "reason" => reason
        )
        .increment(1);
        Ok(Response::new(wire::decision_to_pb(&decision)))
    }

    async fn ping(&self, _request: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}
