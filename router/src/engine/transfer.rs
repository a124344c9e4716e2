//! Transfers (客户转移 / 离职继承): a guide's members move to a successor by rule — the least
//! loaded active guide of the same store first, the least loaded in the store's city, or a named
//! successor — at most `max_per_member` times in `window_days`. Each move is a binding event in
//! the member's trail naming the operator and the reason; the binding keeps its remaining length
//! and protection.

use super::{CatalogError, Engine, Snapshot};
use crate::catalog::GuideStatus;
use crate::domain::audit::AuditEntry;
use crate::domain::binding::{BindingChange, BindingRecord, BindingState};
use crate::domain::trail::EventBody;
use crate::domain::{FieldError, check_id};
use crate::storage::{Chain, Written, append_retrying};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// How a successor is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuccessorRule {
    /// The least loaded active guide of the same store, else of the store's city.
    SameStore,
    /// The least loaded active guide of the store's city.
    LeastLoaded,
    /// This guide.
    Named(String),
}

impl SuccessorRule {
    pub fn as_str(&self) -> &str {
        match self {
            Self::SameStore => "same_store",
            Self::LeastLoaded => "least_loaded",
            Self::Named(_) => "named",
        }
    }
}

/// `[transfers]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// `same_store` (default) or `least_loaded`: used when a guide leaves or moves store.
    pub rule: String,
    /// Most transfers of one member within `window_days`. Default 2.
    pub max_per_member: u32,
    /// Default 90.
    pub window_days: u32,
    /// Transfer a guide's members when the guide leaves or moves to another store. Default
    /// true.
    pub on_leave: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            rule: "same_store".into(),
            max_per_member: 2,
            window_days: 90,
            on_leave: true,
        }
    }
}

impl TransferConfig {
    pub fn check(&self) -> Result<SuccessorRule, String> {
        if self.window_days == 0 || self.window_days > 3650 {
            return Err(format!(
                "transfers.window_days: must be in 1..=3650, got {}",
                self.window_days
            ));
        }
        match self.rule.as_str() {
            "same_store" => Ok(SuccessorRule::SameStore),
            "least_loaded" => Ok(SuccessorRule::LeastLoaded),
            other => Err(format!(
                "transfers.rule: must be same_store or least_loaded, got {other:?}"
            )),
        }
    }
}

/// What happened to one member.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub member_id: String,
    /// The successor; `None` when the member stayed (then `why` says why).
    pub to_guide_id: Option<String>,
    pub why: String,
    /// The binding event recording the move.
    pub event_seq: Option<u64>,
}

impl Engine {
    /// Moves every member currently bound to `from_guide_id` (whose store was `from_store_id`)
    /// to a successor chosen by `rule`. `transfer_id` makes a retry safe: members it already
    /// moved are reported again, not moved twice.
    pub fn transfer_members(
        &self,
        transfer_id: &str,
        from_guide_id: &str,
        from_store_id: Option<&str>,
        rule: &SuccessorRule,
        actor: &str,
        reason: &str,
    ) -> Result<Vec<Moved>, CatalogError> {
        check_id("transfer_id", transfer_id).map_err(CatalogError::Invalid)?;
        check_id("from_guide_id", from_guide_id).map_err(CatalogError::Invalid)?;
        super::admin::check_actor(actor, reason).map_err(CatalogError::Invalid)?;
        let snap = self.snapshot();
        let net = &snap.network;
        let from_store = match from_store_id {
            Some(s) => s.to_string(),
            None => {
                let g = net.guide_index(from_guide_id).ok_or_else(|| {
                    CatalogError::NotFound(format!(
                        "from_guide_id: no guide {from_guide_id:?} in the network"
                    ))
                })?;
                net.store(net.guide(g).store).id.to_string()
            }
        };
        if let SuccessorRule::Named(to) = rule {
            check_id("to_guide_id", to).map_err(CatalogError::Invalid)?;
            let ok = net
                .guide_index(to)
                .is_some_and(|g| net.guide(g).status == GuideStatus::Active);
            if !ok {
                return Err(CatalogError::Invalid(FieldError::new(
                    "to_guide_id",
                    format!("must be an active guide, got {to:?}"),
                )));
            }
            if to == from_guide_id {
                return Err(CatalogError::Invalid(FieldError::new(
                    "to_guide_id",
                    "must differ from from_guide_id",
                )));
            }
        }
        let cause = format!("transfer:{transfer_id}");
        let now = self.clock.now_ms();
        let today = self.today();
        let window = i64::from(self.cfg.transfers.window_days) * DAY_MS;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .members_of(from_guide_id, after.as_deref(), 256)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for member in page {
                // What happened to a member left alone, and whom a moved one went to.
                let mut skipped: Option<Moved> = None;
                let mut target: Option<String> = None;
                let written = append_retrying(self.store.as_ref(), || {
                    skipped = None;
                    // The head before the binding: a binding appended in between is caught.
                    let head = self.store.trail_head(&member)?;
                    let Some(latest) = self.store.latest_binding(&member)? else {
                        return Ok(None);
                    };
                    let Some(b) = latest.binding() else {
                        return Ok(None);
                    };
                    if b.cause_id == cause {
                        skipped = Some(Moved {
                            member_id: member.clone(),
                            to_guide_id: Some(b.state.guide_id.clone()),
                            why: "moved by this transfer before".into(),
                            event_seq: Some(latest.seq),
                        });
                        return Ok(None);
                    }
                    if b.state.guide_id != from_guide_id || !b.state.live_at(now) {
                        return Ok(None);
                    }
                    let recent = self.transfers_since(&member, now - window)?;
                    if recent >= self.cfg.transfers.max_per_member {
                        skipped = Some(Moved {
                            member_id: member.clone(),
                            to_guide_id: None,
                            why: format!(
                                "already transferred {recent} times in {} days (at most {})",
                                self.cfg.transfers.window_days, self.cfg.transfers.max_per_member
                            ),
                            event_seq: None,
                        });
                        return Ok(None);
                    }
                    let Some((to, to_store)) =
                        successor(&snap, today, from_guide_id, &from_store, rule)
                    else {
                        skipped = Some(Moved {
                            member_id: member.clone(),
                            to_guide_id: None,
                            why: "no active successor".into(),
                            event_seq: None,
                        });
                        return Ok(None);
                    };
                    let record = BindingRecord {
                        change: BindingChange::Transfer,
                        actor: actor.to_string(),
                        reason: format!(
                            "{} (successor rule {})",
                            if reason.is_empty() {
                                format!("{from_guide_id}'s members move to {to}")
                            } else {
                                reason.to_string()
                            },
                            rule.as_str()
                        ),
                        cause_id: cause.clone(),
                        previous_guide_id: Some(from_guide_id.to_string()),
                        state: BindingState {
                            guide_id: to.clone(),
                            store_id: to_store,
                            since_ms: now,
                            ..b.state.clone()
                        },
                    };
                    let mut chain = Chain::new(&member, head);
                    chain.push(now, now, EventBody::Binding(record), None);
                    target = Some(to);
                    Ok::<_, CatalogError>(Some(chain))
                })?;
                match written {
                    Written::Stored(events) => out.push(Moved {
                        member_id: member.clone(),
                        to_guide_id: target,
                        why: "transferred".into(),
                        event_seq: events.first().map(|e| e.seq),
                    }),
                    Written::Replayed(_) | Written::Nothing => out.extend(skipped),
                }
            }
            after = Some(last);
        }
        self.store.flush()?;
        Ok(out)
    }

    /// [`Engine::transfer_members`] asked for by an operator: recorded in the audit log when
    /// it moved anyone (a retry that moves nobody new records nothing).
    pub fn transfer_members_audited(
        &self,
        transfer_id: &str,
        from_guide_id: &str,
        rule: &SuccessorRule,
        actor: &str,
        reason: &str,
    ) -> Result<(Vec<Moved>, Option<AuditEntry>), CatalogError> {
        let _one_at_a_time = self.admin.lock();
        let moved = self.transfer_members(transfer_id, from_guide_id, None, rule, actor, reason)?;
        let fresh = moved
            .iter()
            .filter(|m| m.to_guide_id.is_some() && m.why == "transferred")
            .count();
        if fresh == 0 {
            return Ok((moved, None));
        }
        let entry = self.record_audit(
            "transfer_members",
            &format!("guide:{from_guide_id}"),
            actor,
            reason,
            serde_json::json!({
                "transfer_id": transfer_id,
                "rule": match rule {
                    SuccessorRule::Named(g) => format!("named:{g}"),
                    other => other.as_str().to_string(),
                },
                "moved": fresh,
                "stayed": moved.iter().filter(|m| m.to_guide_id.is_none()).count(),
            }),
        )?;
        self.store.flush()?;
        Ok((moved, Some(entry)))
    }

    /// Transfers of `member` recorded at or after `since_ms` (the caller holds its lock).
    fn transfers_since(&self, member: &str, since_ms: i64) -> Result<u32, CatalogError> {
        let mut n = 0;
        let mut before = u64::MAX;
        loop {
            let chunk = self.store.trail_before(member, before, 256)?;
            let Some(last) = chunk.last().map(|e| e.seq) else {
                return Ok(n);
            };
            for e in &chunk {
                if e.recorded_at_ms < since_ms {
                    return Ok(n);
                }
                if e.binding()
                    .is_some_and(|b| b.change == BindingChange::Transfer)
                {
                    n += 1;
                }
            }
            before = last;
        }
    }
}

/// The successor by `rule`: `(guide_id, store_id)`.
fn successor(
    snap: &Snapshot,
    day: crate::domain::Day,
    from_guide: &str,
    from_store: &str,
    rule: &SuccessorRule,
) -> Option<(String, String)> {
    let net = &snap.network;
    let pick = |guides: &mut dyn Iterator<Item = u32>| {
        guides
            .filter(|&g| {
                let guide = net.guide(g);
                guide.status == GuideStatus::Active
                    && &*guide.id != from_guide
                    && net.store(guide.store).open
            })
            .min_by(|&a, &b| {
                let load = |g: u32| {
                    f64::from(snap.book.used(g, day)) / f64::from(net.guide(g).daily_capacity)
                };
                load(a)
                    .total_cmp(&load(b))
                    .then_with(|| net.guide(a).id.cmp(&net.guide(b).id))
            })
            .map(|g| {
                (
                    net.guide(g).id.to_string(),
                    net.store(net.guide(g).store).id.to_string(),
                )
            })
    };
    let store = net.store_index(from_store);
    let in_city = |s: u32| {
        let regions = net.regions();
        let city = |s: u32| regions.chain(net.store(s).region)[1];
        let want = city(s);
        net.stores_in(want.unwrap_or_else(|| net.store(s).region))
            .flat_map(|t| net.store(t).guides.clone())
            .collect::<Vec<u32>>()
    };
    match rule {
        SuccessorRule::Named(to) => {
            let g = net.guide_index(to)?;
            Some((to.clone(), net.store(net.guide(g).store).id.to_string()))
        }
        SuccessorRule::SameStore => {
            let s = store?;
            pick(&mut net.store(s).guides.clone()).or_else(|| pick(&mut in_city(s).into_iter()))
        }
        SuccessorRule::LeastLoaded => {
            let s = store?;
            pick(&mut in_city(s).into_iter())
        }
    }
}
