//! Disputes (DESIGN §5): a claim that an order belongs to someone else, the evidence to settle
//! it, and a resolution that moves the books with compensating entries, never edits. A resolved
//! dispute is immutable; reopening creates a new dispute linked to the old one.

use super::{Attribution, AttributionError, OrderView, ReassignInput, TrailCheck};
use crate::domain::audit::MAX_REASON_LEN;
use crate::domain::trail::{EventBody, Ownership, TrailEvent};
use crate::domain::{Decision, FieldError, check_id};
use crate::storage::{Chain, DisputeOpened, StorageError, Written, append_retrying};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Events read on each side of the order for the evidence.
const AROUND: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    Open,
    /// The owner stands.
    Upheld,
    /// The owner credit moved to `resolution.new_owner`.
    Reassigned,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Upheld => "upheld",
            Self::Reassigned => "reassigned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    pub reviewer: String,
    pub reason: String,
    pub decided_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_owner: Option<String>,
    /// The member's trail event holding the compensating entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment_seq: Option<u64>,
    /// The member's trail event binding them to the new owner guide, when the reviewer
    /// corrected the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispute {
    /// `D<seq>`.
    pub dispute_id: String,
    pub seq: u64,
    pub order_id: String,
    pub member_id: String,
    /// Who disputes: a party (`store:S1`, `channel:ECOMMERCE`, `o2o:centre`, `guide:G1`).
    pub claimant: String,
    /// Who the claimant says should own the order (a party that can own).
    pub claimed_owner: String,
    pub reason: String,
    pub opened_by: String,
    pub opened_at_ms: i64,
    /// The owner party when the dispute was opened.
    pub owner_at_open: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilling_store_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopens: Option<String>,
    /// The opener's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub status: DisputeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// A resolution decided and being applied, the status still open: stored first, so that
    /// of two reviewers (on any replicas) one resolves; completed by recovery after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolving: Option<Resolving>,
}

/// What a reviewer decided, while it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolving {
    pub reviewer: String,
    pub reason: String,
    pub decided_at_ms: i64,
    /// Set for a reassignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_owner: Option<String>,
    #[serde(default)]
    pub rebind: bool,
}

/// A claim older than this is taken to be its resolver's that stopped: another call completes
/// it as decided.
pub const STALE_CLAIM_MS: i64 = 30_000;

/// What a reviewer decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Uphold,
    /// Move the owner credit to this party; with `rebind`, also bind the member to it (a
    /// guide party only).
    Reassign {
        to: String,
        rebind: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInput {
    pub order_id: String,
    pub claimant: String,
    pub claimed_owner: String,
    pub reason: String,
    pub opened_by: String,
    pub reopens: Option<String>,
    /// The caller's idempotency key: the same key with the same content returns the dispute
    /// opened first.
    pub request_id: Option<String>,
}

/// `ListDisputes` filters; every set filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisputeFilter {
    pub status: Option<DisputeStatus>,
    /// Matches the owner at opening, the claimed owner or the fulfilling store.
    pub store_id: Option<String>,
    /// Matches the owner at opening or the claimed owner.
    pub guide_id: Option<String>,
    pub claimant: Option<String>,
    /// `opened_at` in `[from_ms, to_ms)`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl DisputeFilter {
    fn matches(&self, d: &Dispute) -> bool {
        let parties = [d.owner_at_open.as_str(), d.claimed_owner.as_str()];
        self.status.is_none_or(|s| s == d.status)
            && self.store_id.as_ref().is_none_or(|s| {
                let p = format!("store:{s}");
                parties.contains(&p.as_str()) || d.fulfilling_store_id.as_ref() == Some(s)
            })
            && self
                .guide_id
                .as_ref()
                .is_none_or(|g| parties.contains(&format!("guide:{g}").as_str()))
            && self.claimant.as_ref().is_none_or(|c| *c == d.claimant)
            && self.from_ms.is_none_or(|t| d.opened_at_ms >= t)
            && self.to_ms.is_none_or(|t| d.opened_at_ms < t)
    }
}

/// What a rule set would have decided for the order.
#[derive(Debug, Clone, PartialEq)]
pub struct AlternativeOwner {
    pub rule_version: String,
    pub ownership: Ownership,
}

/// Everything a reviewer needs in one place.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The member's trail around the order, in order.
    pub trail: Vec<TrailEvent>,
    /// The whole trail's hash chain and recomputation.
    pub check: TrailCheck,
    /// The stored ownership (rule, version, deciding events, explanation) is in `order`; this
    /// is what the rules give again from the trail.
    pub recomputed: Ownership,
    /// What each ownership rule set in the book would have decided.
    pub alternatives: Vec<AlternativeOwner>,
    /// The split, refunds, adjustments and net per party.
    pub order: OrderView,
    /// The routing decisions of leads the trail names around the order.
    pub decisions: Vec<Arc<Decision>>,
}

fn line_of(d: &Dispute) -> Result<String, AttributionError> {
    serde_json::to_string(d).map_err(|e| StorageError::Backend(e.to_string()).into())
}

fn dispute_id(seq: u64) -> String {
    format!("D{seq}")
}

fn parse_id(id: &str) -> Result<u64, FieldError> {
    id.strip_prefix('D')
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| FieldError::new("dispute_id", format!("must look like D123, got {id:?}")))
}

fn check_text(field: &str, text: &str) -> Result<(), FieldError> {
    if text.trim().is_empty() || text.len() > MAX_REASON_LEN {
        return Err(FieldError::new(
            field,
            format!("must be 1..={MAX_REASON_LEN} bytes and not blank"),
        ));
    }
    Ok(())
}

impl Attribution {
    /// Every dispute from `from_seq` on, in order, until `f` returns false.
    fn for_each_dispute(
        &self,
        from_seq: u64,
        f: &mut dyn FnMut(Dispute) -> bool,
    ) -> Result<(), AttributionError> {
        let mut from = from_seq;
        loop {
            let chunk = self.engine.store().disputes_from(from, 256)?;
            let Some(&(last, _)) = chunk.last() else {
                return Ok(());
            };
            for (seq, line) in chunk {
                let d: Dispute =
                    serde_json::from_str(&line).map_err(|e| StorageError::Corrupt {
                        key: format!("dispute/{seq}"),
                        why: e.to_string(),
                    })?;
                if !f(d) {
                    return Ok(());
                }
            }
            from = last + 1;
        }
    }

    fn load_dispute(&self, seq: u64) -> Result<Option<Dispute>, AttributionError> {
        Ok(self.load_dispute_line(seq)?.map(|(d, _)| d))
    }

    /// Dispute `seq` with its record as stored (what a replacement is conditional on).
    fn load_dispute_line(&self, seq: u64) -> Result<Option<(Dispute, String)>, AttributionError> {
        let store = self.engine.store();
        match store.disputes_from(seq, 1)?.into_iter().next() {
            Some((s, line)) if s == seq => match serde_json::from_str(&line) {
                Ok(d) => Ok(Some((d, line))),
                Err(e) => Err(StorageError::Corrupt {
                    key: format!("dispute/{seq}"),
                    why: e.to_string(),
                }
                .into()),
            },
            _ => Ok(None),
        }
    }

    /// Replaces the dispute whose record was `previous` by `d`; false when it changed first.
    fn replace_dispute(&self, previous: &str, d: &Dispute) -> Result<bool, AttributionError> {
        let line = line_of(d)?;
        Ok(self.engine.store().replace_dispute(
            d.seq,
            &d.order_id,
            previous,
            &line,
            d.status == DisputeStatus::Open,
        )?)
    }

    /// The dispute `id`.
    pub fn dispute(&self, id: &str) -> Result<Dispute, AttributionError> {
        let seq = parse_id(id)?;
        self.load_dispute(seq)?
            .ok_or_else(|| AttributionError::NotFound {
                what: "dispute",
                id: id.to_string(),
            })
    }

    /// Opens a dispute about an order's owner. Durable before it returns. An order has at most
    /// one open dispute, and a resolved one is final unless a new dispute names it in
    /// `reopens`; so a retried request never opens a second dispute. With `request_id`, the
    /// same request again returns the dispute it opened (`.1` is true).
    pub fn open_dispute(&self, input: OpenInput) -> Result<(Dispute, bool), AttributionError> {
        self.open_dispute_try(input, 0)
    }

    fn open_dispute_try(
        &self,
        input: OpenInput,
        tries: u8,
    ) -> Result<(Dispute, bool), AttributionError> {
        check_id("order_id", &input.order_id)?;
        if let Some(r) = &input.request_id {
            check_id("request_id", r)?;
        }
        if let Some(old) = &input.reopens {
            parse_id(old).map_err(|f| FieldError::new("reopens", f.rule))?;
        }
        check_id("opened_by", &input.opened_by)?;
        check_text("reason", &input.reason)?;
        if input.claimant != "o2o:centre" {
            self.check_party("claimant", &input.claimant)?;
        }
        self.check_party("claimed_owner", &input.claimed_owner)?;
        let view = self.order(&input.order_id)?;
        let (same_request, of_order) = self.disputes_like(&input)?;
        if let Some(d) = same_request {
            let stored = [
                ("order_id", d.order_id.as_str()),
                ("claimant", &d.claimant),
                ("claimed_owner", &d.claimed_owner),
                ("reason", &d.reason),
                ("opened_by", &d.opened_by),
                ("reopens", d.reopens.as_deref().unwrap_or("")),
            ];
            let got = [
                input.order_id.as_str(),
                &input.claimant,
                &input.claimed_owner,
                &input.reason,
                &input.opened_by,
                input.reopens.as_deref().unwrap_or(""),
            ];
            let differences: Vec<String> = stored
                .iter()
                .zip(got)
                .filter(|((_, a), b)| a != b)
                .map(|((k, a), b)| {
                    format!(
                        "{k}: stored {}, got {}",
                        crate::domain::short(a),
                        crate::domain::short(b)
                    )
                })
                .collect();
            if differences.is_empty() {
                return Ok((d, true));
            }
            return Err(AttributionError::Conflict {
                what: "dispute request",
                id: input.request_id.clone().unwrap_or_default(),
                differences,
            });
        }
        if view.owner_party == input.claimed_owner {
            return Err(AttributionError::Precondition(format!(
                "order {:?} is already owned by {}",
                input.order_id, input.claimed_owner
            )));
        }
        if let Some(open) = of_order.iter().find(|d| d.status == DisputeStatus::Open) {
            return Err(AttributionError::Precondition(format!(
                "order {:?} already has dispute {} open (opened by {}): resolve it first",
                input.order_id, open.dispute_id, open.opened_by
            )));
        }
        if let Some(last) = of_order.last()
            && input.reopens.as_deref() != Some(last.dispute_id.as_str())
        {
            return Err(AttributionError::Precondition(format!(
                "order {:?}: dispute {} resolved it and is final; to reopen, set reopens = {}",
                input.order_id, last.dispute_id, last.dispute_id
            )));
        }
        if let Some(old) = &input.reopens {
            let prev = self.dispute(old)?;
            if prev.status == DisputeStatus::Open {
                return Err(AttributionError::Precondition(format!(
                    "dispute {old} is still open: resolve it before reopening"
                )));
            }
            if prev.order_id != input.order_id {
                return Err(FieldError::new(
                    "reopens",
                    format!("dispute {old} is about order {:?}", prev.order_id),
                )
                .into());
            }
        }
        let facts = &view.order.order().map(|o| o.facts.clone());
        let d = Dispute {
            dispute_id: String::new(),
            seq: 0,
            order_id: input.order_id.clone(),
            member_id: view.order.member_id.clone(),
            claimant: input.claimant.clone(),
            claimed_owner: input.claimed_owner.clone(),
            reason: input.reason.clone(),
            opened_by: input.opened_by.clone(),
            opened_at_ms: self.engine.clock().now_ms(),
            owner_at_open: view.owner_party,
            fulfilling_store_id: facts.as_ref().and_then(|f| f.fulfilling_store_id.clone()),
            reopens: input.reopens.clone(),
            request_id: input.request_id.clone(),
            status: DisputeStatus::Open,
            resolution: None,
            resolving: None,
        };
        let numbered = |seq| Dispute {
            dispute_id: dispute_id(seq),
            seq,
            ..d.clone()
        };
        // The checks above read; storage keeps them true: one open dispute per order, one
        // dispute per request id, numbers handed out once.
        let opened = self.engine.store().open_dispute(
            &input.order_id,
            input.request_id.as_deref(),
            &|seq| serde_json::to_string(&numbered(seq)).unwrap_or_default(),
        )?;
        match opened {
            DisputeOpened::Opened(seq) => {
                self.engine.store().flush()?;
                Ok((numbered(seq), false))
            }
            // Another request won meanwhile: answered as if it had come first.
            DisputeOpened::SameRequest(_) | DisputeOpened::OrderHasOpen(_) if tries < 3 => {
                self.open_dispute_try(input, tries + 1)
            }
            DisputeOpened::SameRequest(seq) | DisputeOpened::OrderHasOpen(seq) => {
                Err(StorageError::Contended(format!(
                    "order {}: dispute {} is being opened at the same time; retry",
                    crate::domain::short(&input.order_id),
                    dispute_id(seq)
                ))
                .into())
            }
        }
    }

    /// The dispute opened with `input`'s request id, if any, and every dispute of its order,
    /// oldest first. A scan: disputes are few (one per contested order).
    fn disputes_like(
        &self,
        input: &OpenInput,
    ) -> Result<(Option<Dispute>, Vec<Dispute>), AttributionError> {
        let (mut same, mut of_order) = (None, Vec::new());
        self.for_each_dispute(1, &mut |d| {
            if input.request_id.is_some() && d.request_id == input.request_id {
                same = Some(d.clone());
            }
            if d.order_id == input.order_id {
                of_order.push(d);
            }
            true
        })?;
        Ok((same, of_order))
    }

    /// Disputes matching `filter` with `seq > after_seq`, at most `limit`, and the seq to go on
    /// from when there may be more.
    pub fn list_disputes(
        &self,
        filter: &DisputeFilter,
        after_seq: u64,
        limit: usize,
    ) -> Result<(Vec<Dispute>, Option<u64>), AttributionError> {
        if !(1..=500).contains(&limit) {
            return Err(
                FieldError::new("page_size", format!("must be in 1..=500, got {limit}")).into(),
            );
        }
        let mut out = Vec::new();
        let mut next = None;
        self.for_each_dispute(after_seq + 1, &mut |d| {
            if filter.matches(&d) {
                let seq = d.seq;
                out.push(d);
                if out.len() == limit {
                    next = Some(seq);
                    return false;
                }
            }
            true
        })?;
        Ok((out, next))
    }

    /// Resolves an open dispute. A reassignment adds compensating entries to the order (never
    /// edits). Durable before it returns. Exactly one of two concurrent resolutions wins; the
    /// other gets [`AttributionError::Precondition`].
    pub fn resolve_dispute(
        &self,
        id: &str,
        verdict: Verdict,
        reviewer: &str,
        reason: &str,
    ) -> Result<Dispute, AttributionError> {
        let seq = parse_id(id)?;
        check_id("reviewer_id", reviewer)?;
        check_text("reason", reason)?;
        if let Verdict::Reassign { to, rebind } = &verdict {
            self.check_party("new_owner", to)?;
            if *rebind && !to.starts_with("guide:") {
                return Err(FieldError::new(
                    "correct_binding",
                    format!("a binding is to a guide; {to} is not one"),
                )
                .into());
            }
        }
        let _held = self.stripe(&self.id_locks, (b'd', id)).lock();
        let not_found = || AttributionError::NotFound {
            what: "dispute",
            id: id.to_string(),
        };
        for _ in 0..8 {
            let (mut d, line) = self.load_dispute_line(seq)?.ok_or_else(not_found)?;
            let now = self.engine.clock().now_ms();
            // An earlier resolution that stopped after moving the credit is completed first,
            // as it was decided: the adjustment is the resolution's commit point.
            if d.status == DisputeStatus::Open
                && d.resolving.is_none()
                && self.complete_interrupted(&mut d, &line)?
            {
                self.engine.store().flush()?;
            }
            if let Some(r) = d.resolving.clone()
                && now - r.decided_at_ms >= STALE_CLAIM_MS
            {
                // Its resolver stopped: finished as decided.
                let done = self.apply_resolution(d, line.clone())?;
                self.engine.store().flush()?;
                d = done;
            }
            if d.status != DisputeStatus::Open {
                return Err(AttributionError::Precondition(format!(
                    "dispute {id} is already {} by {}; open a new dispute that reopens it",
                    d.status.as_str(),
                    d.resolution.as_ref().map_or("?", |r| r.reviewer.as_str())
                )));
            }
            if let Some(r) = &d.resolving {
                return Err(AttributionError::Precondition(format!(
                    "dispute {id} is being resolved by {}",
                    r.reviewer
                )));
            }
            let claim = Dispute {
                resolving: Some(Resolving {
                    reviewer: reviewer.to_string(),
                    reason: reason.to_string(),
                    decided_at_ms: now,
                    new_owner: match &verdict {
                        Verdict::Uphold => None,
                        Verdict::Reassign { to, .. } => Some(to.clone()),
                    },
                    rebind: matches!(verdict, Verdict::Reassign { rebind: true, .. }),
                }),
                ..d
            };
            // The claim is the commit point: of two reviewers one stores it.
            if !self.replace_dispute(&line, &claim)? {
                continue;
            }
            let claim_line = line_of(&claim)?;
            let done = self.apply_resolution(claim, claim_line)?;
            self.engine.store().flush()?;
            return Ok(done);
        }
        Err(StorageError::Contended(format!("dispute {id} kept changing; retry")).into())
    }

    /// Applies a stored claim (`d.resolving`, whose record is `line`): the adjustment and
    /// binding correction of a reassignment (each written once, however often this runs), the
    /// audit entry holding the resolved dispute, then the resolved record. Returns the dispute
    /// as stored after.
    fn apply_resolution(&self, d: Dispute, line: String) -> Result<Dispute, AttributionError> {
        let Some(r) = d.resolving.clone() else {
            return Ok(d);
        };
        let id = d.dispute_id.clone();
        let (status, adjustment_seq, binding_seq) = match &r.new_owner {
            None => (DisputeStatus::Upheld, None, None),
            Some(to) => {
                // Its decision time, or the order's own when the caller's clock ran ahead.
                let at = r
                    .decided_at_ms
                    .max(self.order(&d.order_id)?.order.occurred_at_ms);
                let adjusted = self.reassign(ReassignInput {
                    adjustment_id: format!("dispute:{id}"),
                    order_id: d.order_id.clone(),
                    to_party: to.clone(),
                    actor: r.reviewer.clone(),
                    reason: r.reason.clone(),
                    occurred_at_ms: at,
                    rebind: r.rebind,
                });
                let adjustment = match adjusted {
                    Ok(a) => a.event.seq,
                    // Already owned by `to`: moved by this resolution's earlier run.
                    Err(AttributionError::Precondition(_)) => self
                        .engine
                        .store()
                        .trail_event(crate::storage::TrailKey::Adjustment(&format!(
                            "dispute:{id}"
                        )))?
                        .map(|e| e.seq)
                        .ok_or_else(|| {
                            AttributionError::Precondition(format!(
                                "order {:?} is already owned by {to}",
                                d.order_id
                            ))
                        })?,
                    Err(e) => return Err(e),
                };
                let binding_seq = if r.rebind {
                    let guide = to.trim_start_matches("guide:");
                    Some(self.rebind(&d, guide, &r.reviewer, &r.reason, r.decided_at_ms)?)
                } else {
                    None
                };
                (DisputeStatus::Reassigned, Some(adjustment), binding_seq)
            }
        };
        let done = Dispute {
            status,
            resolution: Some(Resolution {
                reviewer: r.reviewer.clone(),
                reason: r.reason.clone(),
                decided_at_ms: r.decided_at_ms,
                new_owner: r.new_owner.clone(),
                adjustment_seq,
                binding_seq,
            }),
            resolving: None,
            ..d
        };
        // The audit entry, holding the resolved dispute, goes before the dispute's own record:
        // other calls' flushes may make any prefix of these writes durable, and recovery
        // completes a dispute from its audit entry (see `recover_disputes`). Once per dispute,
        // however many calls (a second resolver, replicas' recoveries) complete it.
        self.engine.record_audit_once(
            &format!("resolve_dispute:{id}"),
            "resolve_dispute",
            &format!("dispute:{id}"),
            &r.reviewer,
            &r.reason,
            serde_json::to_value(&done).unwrap_or_default(),
        )?;
        if self.replace_dispute(&line, &done)? {
            return Ok(done);
        }
        // Completed by another call meanwhile (recovery, a second resolver after the claim
        // went stale): what is stored stands.
        Ok(self.load_dispute(done.seq)?.unwrap_or(done))
    }

    /// Completes a resolution interrupted after its adjustment was written (a crash between
    /// the adjustment and the dispute's own record): the binding correction, the dispute's
    /// resolution and its audit entry, from what the adjustment recorded. Returns whether
    /// there was one. The caller holds the dispute's lock and flushes.
    fn complete_interrupted(&self, d: &mut Dispute, line: &str) -> Result<bool, AttributionError> {
        let adjustment_id = format!("dispute:{}", d.dispute_id);
        let key = crate::storage::TrailKey::Adjustment(&adjustment_id);
        let Some(e) = self.engine.store().trail_event(key)? else {
            return Ok(false);
        };
        let Some(a) = e.adjustment().cloned() else {
            return Ok(false);
        };
        let binding_seq = if a.rebind {
            let guide = a.to_party.trim_start_matches("guide:");
            Some(self.rebind(d, guide, &a.actor, &a.reason, e.recorded_at_ms)?)
        } else {
            None
        };
        d.status = DisputeStatus::Reassigned;
        d.resolution = Some(Resolution {
            reviewer: a.actor.clone(),
            reason: a.reason.clone(),
            decided_at_ms: e.recorded_at_ms,
            new_owner: Some(a.to_party.clone()),
            adjustment_seq: Some(e.seq),
            binding_seq,
        });
        self.engine.record_audit_once(
            &format!("resolve_dispute:{}", d.dispute_id),
            "resolve_dispute",
            &format!("dispute:{}", d.dispute_id),
            &a.actor,
            &format!("{} (completed after an interruption)", a.reason),
            serde_json::to_value(&*d).unwrap_or_default(),
        )?;
        if !self.replace_dispute(line, d)? {
            *d = self.load_dispute(d.seq)?.unwrap_or_else(|| d.clone());
        }
        tracing::warn!(dispute = %d.dispute_id, "an interrupted resolution was completed");
        Ok(true)
    }

    /// Completes every resolution interrupted by a crash; run at start, before calls. A
    /// resolution's writes are, in order: the adjustment and binding correction (a
    /// reassignment), the audit entry holding the resolved dispute, the dispute's record. An
    /// open dispute with an audit entry is restored from it; an open dispute with only an
    /// adjustment is completed from the adjustment (see `complete_interrupted`). Reads the
    /// whole audit log once, and only when a dispute is open. Returns how many were completed.
    pub fn recover_disputes(&self) -> Result<usize, AttributionError> {
        let mut open = Vec::new();
        self.for_each_dispute(1, &mut |d| {
            if d.status == DisputeStatus::Open {
                open.push(d.seq);
            }
            true
        })?;
        if open.is_empty() {
            return Ok(0);
        }
        let mut audited: std::collections::HashMap<String, Dispute> = Default::default();
        let mut from = 1;
        loop {
            let chunk = self.engine.audit(from, 512)?;
            let Some(last) = chunk.last().map(|e| e.seq) else {
                break;
            };
            for e in chunk {
                if e.action == "resolve_dispute"
                    && let Ok(d) = serde_json::from_value::<Dispute>(e.after)
                {
                    audited.insert(d.dispute_id.clone(), d);
                }
            }
            from = last + 1;
        }
        let mut n = 0;
        for seq in open {
            let id = dispute_id(seq);
            let _held = self.stripe(&self.id_locks, (b'd', &id)).lock();
            let Some((mut d, line)) = self.load_dispute_line(seq)? else {
                continue;
            };
            if d.status != DisputeStatus::Open {
                continue;
            }
            if let Some(resolved) = audited.remove(&id) {
                self.replace_dispute(&line, &resolved)?;
                tracing::warn!(dispute = %id, "an interrupted resolution was completed from its audit entry");
                n += 1;
            } else if d.resolving.is_some() {
                self.apply_resolution(d, line)?;
                tracing::warn!(dispute = %id, "an interrupted resolution was completed as it was decided");
                n += 1;
            } else if self.complete_interrupted(&mut d, &line)? {
                n += 1;
            }
        }
        if n > 0 {
            self.engine.store().flush()?;
        }
        Ok(n)
    }

    /// Binds the dispute's member to `guide` (a transfer by the reviewer, a fresh binding by
    /// the rule set in force). Returns the binding event's seq; an earlier attempt's event is
    /// returned again.
    fn rebind(
        &self,
        d: &Dispute,
        guide: &str,
        reviewer: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64, AttributionError> {
        let cause = format!("dispute:{}", d.dispute_id);
        let store = self.engine.store();
        let mut earlier = None;
        let written = append_retrying(store.as_ref(), || {
            // The head before the binding: a binding appended in between is caught.
            let head = store.trail_head(&d.member_id)?;
            let latest = store.latest_binding(&d.member_id)?;
            if let Some(e) = &latest
                && e.binding().is_some_and(|b| b.cause_id == cause)
            {
                earlier = Some(e.seq);
                return Ok(None);
            }
            let day = crate::engine::business_day(now, self.engine.config().time_zone);
            let bindings = self.engine.bindings();
            let rules = bindings.for_day(day).ok_or_else(|| {
                AttributionError::Precondition(format!("no binding rule set is in force on {day}"))
            })?;
            let store_id = self.check_guide("new_owner", guide)?;
            let state = rules.state(
                crate::domain::binding::GuideRef {
                    guide_id: guide,
                    store_id: &store_id,
                },
                now,
                now,
            );
            let record = crate::domain::binding::BindingRecord {
                change: crate::domain::binding::BindingChange::Transfer,
                actor: reviewer.to_string(),
                reason: format!("dispute {}: {reason}", d.dispute_id),
                cause_id: cause.clone(),
                previous_guide_id: latest
                    .as_ref()
                    .and_then(|e| e.binding())
                    .filter(|b| b.state.live_at(now))
                    .map(|b| b.state.guide_id.clone()),
                state,
            };
            let mut chain = Chain::new(&d.member_id, head);
            chain.push(now, now, EventBody::Binding(record), None);
            Ok::<_, AttributionError>(Some(chain))
        })?;
        match written {
            Written::Stored(events) => Ok(events[0].seq),
            Written::Replayed(e) => Ok(e.seq),
            Written::Nothing => earlier.ok_or_else(|| {
                AttributionError::Precondition("the member's binding could not be read".into())
            }),
        }
    }

    /// The evidence for dispute `id`.
    pub fn evidence(&self, d: &Dispute) -> Result<Evidence, AttributionError> {
        let store = self.engine.store();
        let order = self.order(&d.order_id)?;
        let o = order
            .order
            .order()
            .ok_or_else(|| AttributionError::NotFound {
                what: "order",
                id: d.order_id.clone(),
            })?;
        let seq = order.order.seq;
        let trail = store.trail_from(
            &d.member_id,
            seq.saturating_sub(AROUND).max(1),
            2 * AROUND as usize + 1,
        )?;
        let check = self.verify_trail(&d.member_id)?;
        // The rules again, on the trail as it stood before the order.
        let before: Vec<TrailEvent> = {
            let mut all = Vec::new();
            crate::storage::for_each_in_trail(store.as_ref(), &d.member_id, 1, 1024, &mut |e| {
                if e.seq >= seq {
                    return false;
                }
                all.push(e);
                true
            })?;
            all
        };
        let decide = |rules: &super::rules::OwnershipRuleSet| {
            super::restate::ownership(rules, &order.order, o, &before, self.config.history_limit)
        };
        let book = self.rules();
        let recomputed = match book.ownership_version(&o.ownership.rule_version) {
            Some(rules) => decide(rules),
            None => o.ownership.clone(),
        };
        let alternatives = book
            .ownership
            .iter()
            .map(|(_, rules)| AlternativeOwner {
                rule_version: rules.version.clone(),
                ownership: decide(rules),
            })
            .collect();
        let mut leads: Vec<String> = Vec::new();
        for e in &trail {
            let lead = match &e.body {
                EventBody::Touch(t) => t.lead_id.clone(),
                EventBody::Binding(b) => b.cause_id.strip_prefix("lead:").map(str::to_string),
                EventBody::Offer(x) => Some(x.lead_id.clone()),
                _ => None,
            };
            if let Some(l) = lead
                && !leads.contains(&l)
            {
                leads.push(l);
            }
        }
        let mut decisions = Vec::new();
        for l in leads {
            if let Some(dec) = store.decision(&l)? {
                decisions.push(dec);
            }
        }
        Ok(Evidence {
            trail,
            check,
            recomputed,
            alternatives,
            order,
            decisions,
        })
    }
}
