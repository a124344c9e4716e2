//! What the pages show: the templates' structs, and the contract's messages turned into the
//! words, amounts and times a reviewer reads.

use super::text::Texts;
use askama::Template;
use leadrouter_proto::v1 as pb;

/// The queue's filters as given.
#[derive(Debug, Default)]
pub struct Filters {
    pub status: String,
    pub store: String,
    pub guide: String,
    pub claimant: String,
    pub older_than_days: String,
}

#[derive(Template)]
#[template(path = "review/login.html")]
pub struct LoginPage {
    pub t: &'static Texts,
    pub who: Option<String>,
    pub csrf: String,
    pub open: bool,
    pub failed: bool,
}

#[derive(Template)]
#[template(path = "review/error.html")]
pub struct ErrorPage {
    pub t: &'static Texts,
    pub who: Option<String>,
    pub csrf: String,
    pub message: String,
}

pub struct QueueRow {
    pub id: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub order_id: String,
    pub amount: String,
    pub claimant: String,
    pub claimed_owner: String,
    pub owner_at_open: String,
    pub opened_by: String,
    pub age: String,
}

#[derive(Template)]
#[template(path = "review/queue.html")]
pub struct QueuePage {
    pub t: &'static Texts,
    pub who: Option<String>,
    pub csrf: String,
    pub f: Filters,
    pub statuses: Vec<(&'static str, &'static str)>,
    pub counts: (usize, usize, usize),
    pub rows: Vec<QueueRow>,
    pub error: Option<String>,
}

pub struct EventRow {
    pub seq: u64,
    pub at: String,
    pub what: String,
    pub deciding: bool,
}

pub struct DecisionRow {
    pub lead_id: String,
    pub at: String,
    pub policy: String,
    pub pick: String,
    pub reasons: String,
    pub score: String,
    pub alternatives: Vec<String>,
}

pub struct DisputeView {
    pub id: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub open: bool,
    pub order_id: String,
    pub member_id: String,
    pub claimant: String,
    pub claimed_owner: String,
    pub owner_at_open: String,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: String,
    pub reviewer: String,
    pub resolution_reason: String,
    pub resolved_at: String,
    pub amount: String,
    pub refunded: String,
    pub owner_party: String,
    pub rule: String,
    pub rule_version: String,
    pub explanation: String,
    pub split_version: String,
    pub chain_ok: bool,
    pub chain_error: String,
    pub mismatches: Vec<String>,
    pub rule_sets: Vec<(String, String, String)>,
    pub trail: Vec<EventRow>,
    pub entries: Vec<(String, String, String)>,
    pub net: Vec<(String, String, String)>,
    pub refunds: Vec<(String, String, String)>,
    pub adjustments: Vec<EventRow>,
    pub decisions: Vec<DecisionRow>,
}

#[derive(Template)]
#[template(path = "review/dispute.html")]
pub struct DisputePage {
    pub t: &'static Texts,
    pub who: Option<String>,
    pub csrf: String,
    pub d: DisputeView,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "review/preview.html")]
pub struct PreviewPage {
    pub t: &'static Texts,
    pub who: Option<String>,
    pub csrf: String,
    pub id: String,
    pub verdict: String,
    pub entries: Vec<(String, String, String)>,
    pub expected_owner: String,
    pub outcome: String,
    pub new_owner: String,
    pub correct_binding: String,
    pub reason: String,
}

pub use crate::domain::money::yuan;

/// A time in the brand's time zone, to the minute.
pub fn time(ts: Option<&leadrouter_proto::Timestamp>, tz: chrono_tz::Tz) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub fn entry_row(e: &pb::LedgerEntry) -> (String, String, String) {
    (e.party.clone(), e.role.clone(), yuan(e.amount_cents))
}

fn status_of(t: &'static Texts, s: i32) -> (&'static str, &'static str) {
    match pb::DisputeStatus::try_from(s) {
        Ok(pb::DisputeStatus::DisputeUpheld) => (t.upheld, "upheld"),
        Ok(pb::DisputeStatus::DisputeReassigned) => (t.reassigned, "reassigned"),
        _ => (t.open, "open"),
    }
}

impl QueueRow {
    pub fn of(t: &'static Texts, d: &pb::Dispute, amount: Option<i64>, now_ms: i64) -> Self {
        let (status, status_class) = status_of(t, d.status);
        let opened = d.opened_at.as_ref().map_or(now_ms, |o| o.seconds * 1000);
        let hours = (now_ms - opened).max(0) / 3_600_000;
        let age = if hours < 48 {
            format!("{hours} h")
        } else {
            format!("{} {}", hours / 24, t.days)
        };
        Self {
            id: d.dispute_id.clone(),
            status,
            status_class,
            order_id: d.order_id.clone(),
            amount: amount.map(yuan).unwrap_or_default(),
            claimant: d.claimant.clone(),
            claimed_owner: d.claimed_owner.clone(),
            owner_at_open: d.owner_at_open.clone(),
            opened_by: d.opened_by.clone(),
            age,
        }
    }
}

fn channel(c: i32) -> &'static str {
    pb::Channel::try_from(c).map_or("?", |c| c.as_str_name())
}

/// One trail event in a sentence.
pub fn what(e: &pb::TrailEvent) -> String {
    use pb::trail_event::Body;
    let at = |guide: &str, store: &str| match (guide.is_empty(), store.is_empty()) {
        (false, _) => format!(" guide:{guide}"),
        (true, false) => format!(" store:{store}"),
        _ => String::new(),
    };
    match &e.body {
        Some(Body::Touch(x)) => format!(
            "touch {} via {}{}",
            pb::TouchKind::try_from(x.kind).map_or("?", |k| k.as_str_name()),
            channel(x.channel),
            at(&x.guide_id, &x.store_id)
        ),
        Some(Body::Order(x)) => format!(
            "order {} {} paid via {}{}",
            x.order_id,
            yuan(x.amount_cents),
            channel(x.paid_channel),
            x.ownership
                .as_ref()
                .map(|o| format!(" → owner {} ({})", o.party, o.rule))
                .unwrap_or_default()
        ),
        Some(Body::Refund(x)) => format!(
            "refund {} of {} {}",
            x.refund_id,
            x.order_id,
            yuan(x.amount_cents)
        ),
        Some(Body::Binding(x)) => format!(
            "binding {}{}{} ({})",
            x.change,
            at(&x.guide_id, &x.store_id),
            if x.previous_guide_id.is_empty() {
                String::new()
            } else {
                format!(" from guide:{}", x.previous_guide_id)
            },
            x.rule_version
        ),
        Some(Body::Offer(x)) => format!(
            "offer {} lead {}{}",
            x.action,
            x.lead_id,
            at(&x.guide_id, &x.store_id)
        ),
        Some(Body::Adjustment(x)) => format!(
            "adjustment {} → {} by {}: {}",
            x.from_party, x.to_party, x.actor, x.reason
        ),
        None => e.r#type.clone(),
    }
}

impl DisputeView {
    pub fn of(t: &'static Texts, got: &pb::GetDisputeResponse, tz: chrono_tz::Tz) -> Self {
        let d = got.dispute.clone().unwrap_or_default();
        let order = got.order.clone().unwrap_or_default();
        let ownership = order.ownership.clone().unwrap_or_default();
        let (status, status_class) = status_of(t, d.status);
        let deciding = &ownership.deciding_events;
        let row = |e: &pb::TrailEvent| EventRow {
            seq: e.seq,
            at: time(e.occurred_at.as_ref(), tz),
            what: what(e),
            deciding: deciding.contains(&e.seq),
        };
        Self {
            id: d.dispute_id.clone(),
            status,
            status_class,
            open: d.status == pb::DisputeStatus::DisputeOpen as i32,
            order_id: d.order_id.clone(),
            member_id: d.member_id.clone(),
            claimant: d.claimant.clone(),
            claimed_owner: d.claimed_owner.clone(),
            owner_at_open: d.owner_at_open.clone(),
            reason: d.reason.clone(),
            opened_by: d.opened_by.clone(),
            opened_at: time(d.opened_at.as_ref(), tz),
            reviewer: d.reviewer_id.clone(),
            resolution_reason: d.resolution_reason.clone(),
            resolved_at: time(d.resolved_at.as_ref(), tz),
            amount: yuan(order.amount_cents),
            refunded: yuan(order.refunded_cents),
            owner_party: order.owner_party.clone(),
            rule: ownership.rule.clone(),
            rule_version: ownership.rule_version.clone(),
            explanation: ownership.explanation.clone(),
            split_version: order.split_version.clone(),
            chain_ok: got.chain_ok && got.mismatches.is_empty(),
            chain_error: got.chain_error.clone(),
            mismatches: got.mismatches.clone(),
            rule_sets: got
                .rule_sets
                .iter()
                .map(|r| {
                    let o = r.ownership.clone().unwrap_or_default();
                    (r.rule_version.clone(), o.party, o.rule)
                })
                .collect(),
            trail: got.trail.iter().map(row).collect(),
            entries: order.entries.iter().map(entry_row).collect(),
            net: order.net.iter().map(entry_row).collect(),
            refunds: order
                .refunds
                .iter()
                .map(|r| {
                    (
                        r.refund_id.clone(),
                        yuan(r.amount_cents),
                        time(r.occurred_at.as_ref(), tz),
                    )
                })
                .collect(),
            adjustments: order.adjustments.iter().map(row).collect(),
            decisions: got
                .decisions
                .iter()
                .map(|x| DecisionRow {
                    lead_id: x.lead_id.clone(),
                    at: time(x.decided_at.as_ref(), tz),
                    policy: format!("{} {}", x.policy, x.policy_version),
                    pick: if x.guide_id.is_empty() {
                        x.store_id.clone()
                    } else {
                        format!("{} / {}", x.store_id, x.guide_id)
                    },
                    reasons: x.reasons.join(" "),
                    score: format!("{:.3}", x.score),
                    alternatives: x
                        .alternatives
                        .iter()
                        .map(|a| format!("{} / {} · {:.3}", a.store_id, a.guide_id, a.score))
                        .collect(),
                })
                .collect(),
        }
    }
}
