use super::metrics::{ATTRIBUTION_DURATION, ATTRIBUTION_REJECTED, field_label};
use super::status;
use crate::attribution::{Attribution, AttributionError};
use crate::storage::{Storage, StorageError};
use crate::wire::attribution as w;
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::attribution_server;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// The `Attribution` service. Writes run on the calling tokio worker (short sled operations
/// under a per-member lock, like Route), then orders and refunds await their group-committed
/// flush without holding a thread; reads that may scan a long trail run on the blocking pool.
#[derive(Clone)]
pub struct AttributionSvc {
    attribution: Arc<Attribution>,
    /// Built once, indexed `method * OUTCOMES.len() + outcome`: no label work per call.
    durations: Arc<Vec<metrics::Histogram>>,
    /// Held by each durable request from its first write to its flush when the store does not
    /// share flushes (`Options::durable_one_at_a_time`): one request and one flush at a time.
    alone: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for AttributionSvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttributionSvc").finish_non_exhaustive()
    }
}

const METHODS: [&str; 8] = [
    "RecordTouch",
    "RecordOrder",
    "RecordRefund",
    "GetTrail",
    "GetOwnership",
    "VerifyTrail",
    "ListLedger",
    "GetBindingHistory",
];
const RECORD_TOUCH: usize = 0;
const RECORD_ORDER: usize = 1;
const RECORD_REFUND: usize = 2;
const GET_TRAIL: usize = 3;
const GET_OWNERSHIP: usize = 4;
const VERIFY_TRAIL: usize = 5;
const LIST_LEDGER: usize = 6;
const GET_BINDING_HISTORY: usize = 7;
const OUTCOMES: [&str; 6] = [
    "ok",
    "invalid",
    "conflict",
    "not_found",
    "precondition",
    "store_error",
];

/// How a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On the worker; the reply waits for nothing else.
    Inline,
    /// On the worker, then the reply waits for a flush covering the write.
    Durable,
    /// On the blocking pool.
    Blocking,
}

impl AttributionSvc {
    pub fn new(attribution: Arc<Attribution>, durable_one_at_a_time: bool) -> Self {
        let mut durations = Vec::with_capacity(METHODS.len() * OUTCOMES.len());
        for method in METHODS {
            for outcome in OUTCOMES {
                durations.push(metrics::histogram!(ATTRIBUTION_DURATION, "method" => method, "outcome" => outcome));
            }
        }
        let alone = durable_one_at_a_time.then(|| Arc::new(tokio::sync::Mutex::new(())));
        Self {
            attribution,
            durations: Arc::new(durations),
            alone,
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        method: usize, // index into METHODS
        mode: Mode,
        f: impl FnOnce(&Attribution) -> Result<T, AttributionError> + Send + 'static,
    ) -> Result<T, Status> {
        let started = Instant::now();
        // A database across the network is never waited on from a worker.
        let mode = match mode {
            Mode::Inline | Mode::Durable
                if self.attribution.engine().store().waits_on_network() =>
            {
                Mode::Blocking
            }
            m => m,
        };
        let result = match mode {
            Mode::Inline => f(&self.attribution),
            Mode::Durable => {
                let _alone = match &self.alone {
                    Some(m) => Some(m.lock().await),
                    None => None,
                };
                match f(&self.attribution) {
                    Ok(v) => durable(self.attribution.engine().store()).await.map(|()| v),
                    Err(e) => Err(e),
                }
            }
            Mode::Blocking => {
                let a = self.attribution.clone();
                tokio::task::spawn_blocking(move || f(&a))
                    .await
                    .map_err(|e| Status::internal(format!("the call failed: {e}")))?
            }
        };
        let outcome = match &result {
            Ok(_) => 0,
            Err(AttributionError::Invalid(f)) => {
                metrics::counter!(ATTRIBUTION_REJECTED, "method" => METHODS[method], "field" => field_label(&f.field)).increment(1);
                1
            }
            Err(AttributionError::Conflict { .. }) => 2,
            Err(AttributionError::NotFound { .. }) => 3,
            Err(AttributionError::Precondition(_)) => 4,
            Err(AttributionError::Storage(_)) => 5,
        };
        self.durations[method * OUTCOMES.len() + outcome].record(started.elapsed().as_secs_f64());
        result.map_err(|e| status::attribution(&e))
    }
}

/// Completes once every write made so far is on disk; concurrent callers share one flush.
async fn durable(store: &Arc<dyn Storage>) -> Result<(), AttributionError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.flush_then(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    match rx.await {
        Ok(r) => r.map_err(AttributionError::Storage),
        Err(_) => Err(AttributionError::Storage(StorageError::Backend(
            "the writer stopped before flushing".into(),
        ))),
    }
}

impl AttributionSvc {
    /// A `router_client` key reads the trails of members it recorded events for (or whose
    /// events name no key); other roles the table admits read every member.
    async fn own_member(&self, who: &crate::auth::Principal, member: &str) -> Result<(), Status> {
        if who.role != crate::auth::Role::RouterClient || who.open || member.is_empty() {
            return Ok(());
        }
        let (a, m, k) = (
            self.attribution.clone(),
            member.to_string(),
            who.name.clone(),
        );
        let mine = tokio::task::spawn_blocking(move || a.recorded_for(&m, &k))
            .await
            .map_err(|e| Status::internal(format!("the call failed: {e}")))?
            .map_err(|e| status::attribution(&e))?;
        if mine {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "key {:?} (router_client) reads the trails of members it recorded events for; another key recorded this member's (an analyst or admin key reads every trail)",
                who.name
            )))
        }
    }
}

#[tonic::async_trait]
impl attribution_server::Attribution for AttributionSvc {
    async fn record_touch(
        &self,
        request: Request<pb::RecordTouchRequest>,
    ) -> Result<Response<pb::RecordTouchResponse>, Status> {
        let who = status::principal(&request)?;
        let mut input = w::touch_from_pb(request.into_inner()).map_err(|e| status::invalid(&e))?;
        input.touch.recorded_by = (!who.open).then(|| who.name.clone());
        let r = self
            .call(RECORD_TOUCH, Mode::Inline, move |a| a.record_touch(input))
            .await?;
        Ok(Response::new(pb::RecordTouchResponse {
            event: Some(w::event_to_pb(&r.event)),
            replayed: r.replayed,
        }))
    }

    async fn record_order(
        &self,
        request: Request<pb::RecordOrderRequest>,
    ) -> Result<Response<pb::RecordOrderResponse>, Status> {
        let who = status::principal(&request)?;
        let mut input = w::order_from_pb(request.into_inner()).map_err(|e| status::invalid(&e))?;
        input.recorded_by = (!who.open).then(|| who.name.clone());
        let r = self
            .call(RECORD_ORDER, Mode::Durable, move |a| {
                a.record_order_unflushed(input)
            })
            .await?;
        let o = r
            .event
            .order()
            .ok_or_else(|| Status::internal("the stored event is not an order"))?;
        Ok(Response::new(pb::RecordOrderResponse {
            order_id: o.facts.order_id.clone(),
            member_id: r.event.member_id.clone(),
            ownership: Some(w::ownership_to_pb(&o.ownership)),
            split_version: o.split_version.clone(),
            entries: w::entries_to_pb(&o.entries),
            replayed: r.replayed,
            event: Some(w::event_to_pb(&r.event)),
        }))
    }

    async fn record_refund(
        &self,
        request: Request<pb::RecordRefundRequest>,
    ) -> Result<Response<pb::RecordRefundResponse>, Status> {
        let who = status::principal(&request)?;
        let mut input = w::refund_from_pb(request.into_inner()).map_err(|e| status::invalid(&e))?;
        input.recorded_by = (!who.open).then(|| who.name.clone());
        let r = self
            .call(RECORD_REFUND, Mode::Durable, move |a| {
                a.record_refund_unflushed(input)
            })
            .await?;
        let f = r
            .event
            .refund()
            .ok_or_else(|| Status::internal("the stored event is not a refund"))?;
        Ok(Response::new(pb::RecordRefundResponse {
            refund_id: f.refund_id.clone(),
            order_id: f.order_id.clone(),
            amount_cents: f.amount_cents,
            entries: w::entries_to_pb(&f.entries),
            replayed: r.replayed,
            event: Some(w::event_to_pb(&r.event)),
        }))
    }

    async fn get_trail(
        &self,
        request: Request<pb::GetTrailRequest>,
    ) -> Result<Response<pb::GetTrailResponse>, Status> {
        let who = status::principal(&request)?;
        let q = w::trail_query_from_pb(request.get_ref()).map_err(|e| status::invalid(&e))?;
        self.own_member(&who, &q.member_id).await?;
        let page = self
            .call(GET_TRAIL, Mode::Blocking, move |a| {
                a.trail(&q.member_id, q.from_seq, q.window, q.limit)
            })
            .await?;
        let mut events: Vec<_> = page.events.iter().map(w::event_to_pb).collect();
        let fits = status::fitting(&events);
        let next_seq = events.get(fits).map(|e| e.seq).or(page.next_seq);
        events.truncate(fits);
        Ok(Response::new(pb::GetTrailResponse {
            events,
            next_page_token: next_seq.map(|s| s.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_ownership(
        &self,
        request: Request<pb::GetOwnershipRequest>,
    ) -> Result<Response<pb::GetOwnershipResponse>, Status> {
        let who = status::principal(&request)?;
        let order_id = request.into_inner().order_id;
        let v = self
            .call(GET_OWNERSHIP, Mode::Blocking, move |a| a.order(&order_id))
            .await?;
        if who.role == crate::auth::Role::RouterClient
            && !who.open
            && v.order.recorded_by().is_some_and(|k| k != who.name)
        {
            return Err(Status::permission_denied(format!(
                "key {:?} (router_client) reads the orders it recorded; this one was recorded by another key (an analyst or admin key reads every order)",
                who.name
            )));
        }
        Ok(Response::new(w::order_view_to_pb(&v)))
    }

    async fn verify_trail(
        &self,
        request: Request<pb::VerifyTrailRequest>,
    ) -> Result<Response<pb::VerifyTrailResponse>, Status> {
        let member = request.into_inner().member_id;
        let c = self
            .call(VERIFY_TRAIL, Mode::Blocking, move |a| {
                if member.is_empty() {
                    a.verify_all()
                } else {
                    a.verify_trail(&member)
                }
            })
            .await?;
        let (broken_member_id, broken_seq, chain_error) = match &c.chain {
            Ok(()) => (String::new(), 0, String::new()),
            Err(b) => (b.member_id.clone(), b.seq, b.why.clone()),
        };
        Ok(Response::new(pb::VerifyTrailResponse {
            ok: c.ok(),
            members: c.members as u64,
            events: c.events as u64,
            broken_member_id,
            broken_seq,
            chain_error,
            orders: c.recomputed.orders as u32,
            refunds: c.recomputed.refunds as u32,
            mismatches: c
                .recomputed
                .mismatches
                .iter()
                .map(|m| m.to_string())
                .collect(),
        }))
    }

    async fn list_ledger(
        &self,
        request: Request<pb::ListLedgerRequest>,
    ) -> Result<Response<pb::ListLedgerResponse>, Status> {
        let r = request.into_inner();
        let (from, to) = w::ledger_window(&r).map_err(|e| status::invalid(&e))?;
        let after = w::ledger_cursor(&r.page_token).map_err(|e| status::invalid(&e))?;
        let limit = match r.page_size {
            0 => 200,
            n => n as usize,
        };
        let party = (!r.party.is_empty()).then_some(r.party);
        let page = self
            .call(LIST_LEDGER, Mode::Blocking, move |a| {
                a.ledger(from, to, party.as_deref(), after.as_ref(), limit)
            })
            .await?;
        Ok(Response::new(pb::ListLedgerResponse {
            lines: page.lines.iter().map(w::ledger_line_to_pb).collect(),
            next_page_token: page.next.as_ref().map(w::ledger_token).unwrap_or_default(),
        }))
    }

    async fn get_binding_history(
        &self,
        request: Request<pb::GetBindingHistoryRequest>,
    ) -> Result<Response<pb::GetBindingHistoryResponse>, Status> {
        let who = status::principal(&request)?;
        let member = request.into_inner().member_id;
        self.own_member(&who, &member).await?;
        let intervals = self
            .call(GET_BINDING_HISTORY, Mode::Blocking, move |a| {
                a.binding_history(&member)
            })
            .await?;
        Ok(Response::new(pb::GetBindingHistoryResponse {
            intervals: intervals.iter().map(w::interval_to_pb).collect(),
        }))
    }
}
