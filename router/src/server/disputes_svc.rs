//! The `Disputes` service: open, list, show with evidence, resolve. Calls run on the blocking
//! pool: resolutions write and flush, evidence reads a whole trail.

use super::status;
use crate::attribution::Attribution;
use crate::attribution::disputes::{Dispute, DisputeFilter, DisputeStatus, OpenInput, Verdict};
use crate::auth::Principal;
use crate::domain::FieldError;
use crate::wire::attribution as w;
use crate::wire::{decision_to_pb, ms_to_timestamp, timestamp_to_ms};
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::disputes_server;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct DisputesSvc {
    attribution: Arc<Attribution>,
}

impl std::fmt::Debug for DisputesSvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisputesSvc").finish_non_exhaustive()
    }
}

impl DisputesSvc {
    pub fn new(attribution: Arc<Attribution>) -> Self {
        Self { attribution }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Attribution) -> Result<T, crate::attribution::AttributionError> + Send + 'static,
    ) -> Result<T, Status> {
        let a = self.attribution.clone();
        tokio::task::spawn_blocking(move || f(&a))
            .await
            .map_err(|e| Status::internal(format!("the call did not finish: {e}")))?
            .map_err(|e| status::attribution(&e))
    }
}

fn status_to_pb(s: DisputeStatus) -> pb::DisputeStatus {
    match s {
        DisputeStatus::Open => pb::DisputeStatus::DisputeOpen,
        DisputeStatus::Upheld => pb::DisputeStatus::DisputeUpheld,
        DisputeStatus::Reassigned => pb::DisputeStatus::DisputeReassigned,
    }
}

pub fn dispute_to_pb(d: &Dispute) -> pb::Dispute {
    let r = d.resolution.as_ref();
    pb::Dispute {
        dispute_id: d.dispute_id.clone(),
        order_id: d.order_id.clone(),
        member_id: d.member_id.clone(),
        claimant: d.claimant.clone(),
        claimed_owner: d.claimed_owner.clone(),
        reason: d.reason.clone(),
        opened_by: d.opened_by.clone(),
        opened_at: Some(ms_to_timestamp(d.opened_at_ms)),
        owner_at_open: d.owner_at_open.clone(),
        reopens: d.reopens.clone().unwrap_or_default(),
        status: status_to_pb(d.status) as i32,
        reviewer_id: r.map(|r| r.reviewer.clone()).unwrap_or_default(),
        resolution_reason: r.map(|r| r.reason.clone()).unwrap_or_default(),
        resolved_at: r.map(|r| ms_to_timestamp(r.decided_at_ms)),
        new_owner: r.and_then(|r| r.new_owner.clone()).unwrap_or_default(),
        adjustment_seq: r.and_then(|r| r.adjustment_seq).unwrap_or(0),
        binding_seq: r.and_then(|r| r.binding_seq).unwrap_or(0),
        request_id: d.request_id.clone().unwrap_or_default(),
        replayed: false,
    }
}

/// The stores a dispute concerns: the fulfilling store and the stores of its parties (a guide
/// party's store in the network in service).
fn stores_of(
    engine: &crate::engine::Engine,
    parties: &[&str],
    fulfilling: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = fulfilling.map(str::to_string).into_iter().collect();
    for p in parties {
        if let Some(s) = p.strip_prefix("store:") {
            out.push(s.to_string());
        } else if let Some(g) = p.strip_prefix("guide:")
            && let Some(s) = status::guide_store(engine, g)
        {
            out.push(s);
        }
    }
    out
}

fn dispute_in_scope(a: &Attribution, who: &Principal, d: &Dispute) -> Result<(), Status> {
    if !who.scoped() {
        return Ok(());
    }
    let stores = stores_of(
        a.engine(),
        &[&d.claimant, &d.claimed_owner, &d.owner_at_open],
        d.fulfilling_store_id.as_deref(),
    );
    who.check_any_store(
        &format!("dispute {}", d.dispute_id),
        stores.iter().map(String::as_str),
    )
    .map_err(status::denied)
}

fn optional(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl disputes_server::Disputes for DisputesSvc {
    async fn open_dispute(
        &self,
        request: Request<pb::OpenDisputeRequest>,
    ) -> Result<Response<pb::Dispute>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let opened_by = who
            .actor("opened_by", &r.opened_by)
            .map_err(status::denied)?;
        let input = OpenInput {
            order_id: r.order_id,
            claimant: r.claimant,
            claimed_owner: r.claimed_owner,
            reason: r.reason,
            opened_by,
            reopens: optional(r.reopens),
            request_id: optional(r.request_id),
        };
        let a = self.attribution.clone();
        let d = tokio::task::spawn_blocking(move || {
            if who.scoped() {
                // A store-limited key opens disputes only about orders of its stores.
                let view = a
                    .order(&input.order_id)
                    .map_err(|e| status::attribution(&e))?;
                let record = view.order.order().cloned();
                let owner = record
                    .as_ref()
                    .map(|o| crate::attribution::split::owner_party(&o.ownership))
                    .unwrap_or_default();
                let stores = stores_of(
                    a.engine(),
                    &[&input.claimant, &input.claimed_owner, &owner],
                    record
                        .as_ref()
                        .and_then(|o| o.facts.fulfilling_store_id.as_deref()),
                );
                who.check_any_store(
                    &format!("order {}", crate::domain::short(&input.order_id)),
                    stores.iter().map(String::as_str),
                )
                .map_err(status::denied)?;
            }
            a.open_dispute(input).map_err(|e| status::attribution(&e))
        })
        .await
        .map_err(|e| Status::internal(format!("the call did not finish: {e}")))??;
        let (d, replayed) = d;
        let mut reply = dispute_to_pb(&d);
        reply.replayed = replayed;
        Ok(Response::new(reply))
    }

    async fn list_disputes(
        &self,
        request: Request<pb::ListDisputesRequest>,
    ) -> Result<Response<pb::ListDisputesResponse>, Status> {
        let who = status::principal(&request)?;
        let r = request.into_inner();
        if who.scoped() {
            who.check_store(
                "store_id (a store-limited key lists its own stores' disputes)",
                &r.store_id,
            )
            .map_err(status::denied)?;
        }
        let invalid = |e: FieldError| status::invalid(&e);
        let status = match pb::DisputeStatus::try_from(r.status) {
            Ok(pb::DisputeStatus::Unspecified) => None,
            Ok(pb::DisputeStatus::DisputeOpen) => Some(DisputeStatus::Open),
            Ok(pb::DisputeStatus::DisputeUpheld) => Some(DisputeStatus::Upheld),
            Ok(pb::DisputeStatus::DisputeReassigned) => Some(DisputeStatus::Reassigned),
            Err(_) => {
                return Err(invalid(FieldError::new(
                    "status",
                    format!("unknown enum value {}", r.status),
                )));
            }
        };
        let from_ms = r
            .from
            .as_ref()
            .map(|t| timestamp_to_ms("from", t))
            .transpose()
            .map_err(invalid)?;
        let to_ms =
            r.to.as_ref()
                .map(|t| timestamp_to_ms("to", t))
                .transpose()
                .map_err(invalid)?;
        let after = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse::<u64>().map_err(|_| {
                invalid(FieldError::new(
                    "page_token",
                    "must be a next_page_token from an earlier reply",
                ))
            })?
        };
        let limit = match r.page_size {
            0 => 100,
            n => n as usize,
        };
        let filter = DisputeFilter {
            status,
            store_id: optional(r.store_id),
            guide_id: optional(r.guide_id),
            claimant: optional(r.claimant),
            from_ms,
            to_ms,
        };
        let (disputes, next) = self
            .run(move |a| a.list_disputes(&filter, after, limit))
            .await?;
        let mut page: Vec<_> = disputes.iter().map(dispute_to_pb).collect();
        let fits = status::fitting(&page);
        let next = if fits < page.len() {
            Some(disputes[fits - 1].seq)
        } else {
            next
        };
        page.truncate(fits);
        Ok(Response::new(pb::ListDisputesResponse {
            disputes: page,
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_dispute(
        &self,
        request: Request<pb::GetDisputeRequest>,
    ) -> Result<Response<pb::GetDisputeResponse>, Status> {
        let who = status::principal(&request)?;
        let id = request.into_inner().dispute_id;
        let a = self.attribution.clone();
        let (d, ev) = tokio::task::spawn_blocking(move || {
            let d = a.dispute(&id).map_err(|e| status::attribution(&e))?;
            dispute_in_scope(&a, &who, &d)?;
            let ev = a.evidence(&d).map_err(|e| status::attribution(&e))?;
            Ok::<_, Status>((d, ev))
        })
        .await
        .map_err(|e| Status::internal(format!("the call did not finish: {e}")))??;
        Ok(Response::new(pb::GetDisputeResponse {
            dispute: Some(dispute_to_pb(&d)),
            trail: ev.trail.iter().map(w::event_to_pb).collect(),
            chain_ok: ev.check.chain.is_ok(),
            chain_error: ev
                .check
                .chain
                .as_ref()
                .err()
                .map(|b| b.to_string())
                .unwrap_or_default(),
            mismatches: ev
                .check
                .recomputed
                .mismatches
                .iter()
                .map(|m| m.to_string())
                .collect(),
            order: Some(w::order_view_to_pb(&ev.order)),
            recomputed: Some(w::ownership_to_pb(&ev.recomputed)),
            rule_sets: ev
                .alternatives
                .iter()
                .map(|a| pb::RuleSetOwner {
                    rule_version: a.rule_version.clone(),
                    ownership: Some(w::ownership_to_pb(&a.ownership)),
                })
                .collect(),
            decisions: ev.decisions.iter().map(|d| decision_to_pb(d)).collect(),
        }))
    }

    async fn resolve_dispute(
        &self,
        request: Request<pb::ResolveDisputeRequest>,
    ) -> Result<Response<pb::Dispute>, Status> {
        use pb::resolve_dispute_request::Outcome;
        let who = status::principal(&request)?;
        let r = request.into_inner();
        let reviewer = who
            .actor("reviewer_id", &r.reviewer_id)
            .map_err(status::denied)?;
        let verdict = match Outcome::try_from(r.outcome) {
            Ok(Outcome::Uphold) if r.correct_binding => {
                return Err(status::invalid(&FieldError::new(
                    "correct_binding",
                    "applies to a reassignment only",
                )));
            }
            Ok(Outcome::Uphold) if r.new_owner.is_empty() => Verdict::Uphold,
            Ok(Outcome::Uphold) => {
                return Err(status::invalid(&FieldError::new(
                    "new_owner",
                    "must be empty when upholding",
                )));
            }
            Ok(Outcome::Reassign) if !r.new_owner.is_empty() => Verdict::Reassign {
                to: r.new_owner,
                rebind: r.correct_binding,
            },
            Ok(Outcome::Reassign) => {
                return Err(status::invalid(&FieldError::new(
                    "new_owner",
                    "must name the owner to reassign to (guide:ID, store:ID or channel:NAME)",
                )));
            }
            _ => {
                return Err(status::invalid(&FieldError::new(
                    "outcome",
                    format!("must be UPHOLD or REASSIGN, got {}", r.outcome),
                )));
            }
        };
        let (id, reason) = (r.dispute_id, r.reason);
        let a = self.attribution.clone();
        let d = tokio::task::spawn_blocking(move || {
            let d = a.dispute(&id).map_err(|e| status::attribution(&e))?;
            dispute_in_scope(&a, &who, &d)?;
            if d.opened_by == reviewer {
                return Err(Status::permission_denied(format!(
                    "{reviewer:?} opened dispute {} and cannot resolve it; another reviewer must",
                    d.dispute_id
                )));
            }
            a.resolve_dispute(&id, verdict, &reviewer, &reason)
                .map_err(|e| status::attribution(&e))
        })
        .await
        .map_err(|e| Status::internal(format!("the call did not finish: {e}")))??;
        Ok(Response::new(dispute_to_pb(&d)))
    }
}
