//! Attribution requests and replies ⇄ domain.

use super::{channel_from_pb, channel_to_pb, ms_to_timestamp, required_time, timestamp_to_ms};
use crate::attribution::split::owner_party;
use crate::attribution::{OrderInput, OrderView, RefundInput, TouchInput, TrailQuery};
use crate::domain::trail::{
    EventBody, LedgerEntry, OrderFacts, Ownership, Touch, TouchKind, TrailEvent,
};
use crate::domain::{FieldError, check_id};
use leadrouter_proto::v1 as pb;

pub fn touch_kind_from_pb(v: i32) -> Result<TouchKind, FieldError> {
    use pb::TouchKind as K;
    match K::try_from(v) {
        Ok(K::ShareLinkClick) => Ok(TouchKind::ShareLinkClick),
        Ok(K::LivestreamView) => Ok(TouchKind::LivestreamView),
        Ok(K::StoreVisit) => Ok(TouchKind::StoreVisit),
        Ok(K::EcommerceVisit) => Ok(TouchKind::EcommerceVisit),
        Ok(K::CouponClaim) => Ok(TouchKind::CouponClaim),
        Ok(K::GuideChat) => Ok(TouchKind::GuideChat),
        Ok(K::Binding) => Ok(TouchKind::Binding),
        Ok(K::Unspecified) => Err(FieldError::new(
            "kind",
            "must be set (TOUCH_KIND_UNSPECIFIED is not a kind)",
        )),
        Err(_) => Err(FieldError::new("kind", format!("unknown enum value {v}"))),
    }
}

pub fn touch_kind_to_pb(k: TouchKind) -> pb::TouchKind {
    use pb::TouchKind as K;
    match k {
        TouchKind::ShareLinkClick => K::ShareLinkClick,
        TouchKind::LivestreamView => K::LivestreamView,
        TouchKind::StoreVisit => K::StoreVisit,
        TouchKind::EcommerceVisit => K::EcommerceVisit,
        TouchKind::CouponClaim => K::CouponClaim,
        TouchKind::GuideChat => K::GuideChat,
        TouchKind::Binding => K::Binding,
    }
}

fn paid_channel(v: i32) -> Result<crate::domain::Channel, FieldError> {
    channel_from_pb(v).map_err(|e| FieldError::new(format!("paid_{}", e.field), e.rule))
}

pub fn touch_from_pb(r: pb::RecordTouchRequest) -> Result<TouchInput, FieldError> {
    Ok(TouchInput {
        touch: Touch {
            kind: touch_kind_from_pb(r.kind)?,
            channel: channel_from_pb(r.channel)?,
            touch_id: r.touch_id,
            guide_id: r.guide_id,
            store_id: r.store_id,
            lead_id: r.lead_id,
            recorded_by: None,
        },
        member_id: r.member_id,
        occurred_at_ms: required_time("occurred_at", r.occurred_at.as_ref())?,
    })
}

pub fn order_from_pb(r: pb::RecordOrderRequest) -> Result<OrderInput, FieldError> {
    Ok(OrderInput {
        facts: OrderFacts {
            order_id: r.order_id,
            amount_cents: r.amount_cents,
            paid_channel: paid_channel(r.paid_channel)?,
            fulfilling_store_id: r.fulfilling_store_id,
            sharing_guide_id: r.sharing_guide_id,
            referrer_guide_ids: r.referrer_guide_ids,
        },
        member_id: r.member_id,
        occurred_at_ms: required_time("occurred_at", r.occurred_at.as_ref())?,
        recorded_by: None,
    })
}

pub fn refund_from_pb(r: pb::RecordRefundRequest) -> Result<RefundInput, FieldError> {
    Ok(RefundInput {
        refund_id: r.refund_id,
        order_id: r.order_id,
        amount_cents: r.amount_cents,
        occurred_at_ms: required_time("occurred_at", r.occurred_at.as_ref())?,
        recorded_by: None,
    })
}

/// A trail request. The page token is the next `seq`.
pub fn trail_query_from_pb(r: &pb::GetTrailRequest) -> Result<TrailQuery, FieldError> {
    check_id("member_id", &r.member_id)?;
    let from_seq = if r.page_token.is_empty() {
        1
    } else {
        r.page_token
            .parse::<u64>()
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| {
                FieldError::new(
                    "page_token",
                    "must be a next_page_token from an earlier reply",
                )
            })?
    };
    let from = r
        .from
        .as_ref()
        .map(|t| timestamp_to_ms("from", t))
        .transpose()?;
    let to =
        r.to.as_ref()
            .map(|t| timestamp_to_ms("to", t))
            .transpose()?;
    let limit = match r.page_size {
        0 => 100,
        n => n as usize,
    };
    Ok(TrailQuery {
        member_id: r.member_id.clone(),
        from_seq,
        window: (from, to),
        limit,
    })
}

pub fn ownership_to_pb(o: &Ownership) -> pb::Ownership {
    pb::Ownership {
        guide_id: o.guide_id.clone().unwrap_or_default(),
        store_id: o.store_id.clone().unwrap_or_default(),
        channel: o.channel.map_or(0, |c| channel_to_pb(c) as i32),
        rule: o.rule.as_str().into(),
        rule_version: o.rule_version.clone(),
        deciding_events: o.deciding_events.clone(),
        explanation: o.explanation.clone(),
        party: owner_party(o),
    }
}

pub fn entries_to_pb(entries: &[LedgerEntry]) -> Vec<pb::LedgerEntry> {
    entries
        .iter()
        .map(|e| pb::LedgerEntry {
            party: e.party.clone(),
            role: e.role.as_str().into(),
            amount_cents: e.amount_cents,
        })
        .collect()
}

pub fn event_to_pb(e: &TrailEvent) -> pb::TrailEvent {
    use pb::trail_event::Body;
    let body = match &e.body {
        EventBody::Touch(t) => Body::Touch(pb::Touch {
            touch_id: t.touch_id.clone(),
            kind: touch_kind_to_pb(t.kind) as i32,
            channel: channel_to_pb(t.channel) as i32,
            guide_id: t.guide_id.clone().unwrap_or_default(),
            store_id: t.store_id.clone().unwrap_or_default(),
            lead_id: t.lead_id.clone().unwrap_or_default(),
        }),
        EventBody::Order(o) => Body::Order(pb::OrderEvent {
            order_id: o.facts.order_id.clone(),
            amount_cents: o.facts.amount_cents,
            paid_channel: channel_to_pb(o.facts.paid_channel) as i32,
            fulfilling_store_id: o.facts.fulfilling_store_id.clone().unwrap_or_default(),
            sharing_guide_id: o.facts.sharing_guide_id.clone().unwrap_or_default(),
            referrer_guide_ids: o.facts.referrer_guide_ids.clone(),
            ownership: Some(ownership_to_pb(&o.ownership)),
            split_version: o.split_version.clone(),
            entries: entries_to_pb(&o.entries),
        }),
        EventBody::Binding(b) => Body::Binding(pb::BindingEvent {
            change: b.change.as_str().into(),
            actor: b.actor.clone(),
            reason: b.reason.clone(),
            cause_id: b.cause_id.clone(),
            previous_guide_id: b.previous_guide_id.clone().unwrap_or_default(),
            guide_id: b.state.guide_id.clone(),
            store_id: b.state.store_id.clone(),
            since: Some(ms_to_timestamp(b.state.since_ms)),
            expires_at: b.state.expires_at_ms.map(ms_to_timestamp),
            protected_until: Some(ms_to_timestamp(b.state.protected_until_ms)),
            rule_version: b.state.rule_version.clone(),
        }),
        EventBody::Offer(o) => Body::Offer(pb::OfferEvent {
            action: o.action.as_str().into(),
            lead_id: o.lead_id.clone(),
            decision_id: o.decision_id.clone(),
            guide_id: o.guide_id.clone(),
            store_id: o.store_id.clone(),
            hop: o.hop,
            expires_at: o.expires_at_ms.map(ms_to_timestamp),
            actor: o.actor.clone(),
            reason: o.reason.clone(),
            rule: o.rule.clone(),
        }),
        EventBody::Adjustment(a) => Body::Adjustment(pb::AdjustmentEvent {
            adjustment_id: a.adjustment_id.clone(),
            order_id: a.order_id.clone(),
            order_seq: a.order_seq,
            from_party: a.from_party.clone(),
            to_party: a.to_party.clone(),
            actor: a.actor.clone(),
            reason: a.reason.clone(),
            entries: entries_to_pb(&a.entries),
        }),
        EventBody::Refund(r) => Body::Refund(pb::RefundEvent {
            refund_id: r.refund_id.clone(),
            order_id: r.order_id.clone(),
            amount_cents: r.amount_cents,
            order_seq: r.order_seq,
            entries: entries_to_pb(&r.entries),
        }),
    };
    pb::TrailEvent {
        member_id: e.member_id.clone(),
        seq: e.seq,
        r#type: e.body.kind().into(),
        occurred_at: Some(ms_to_timestamp(e.occurred_at_ms)),
        recorded_at: Some(ms_to_timestamp(e.recorded_at_ms)),
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
        body: Some(body),
        canonical_json: e.to_line(),
    }
}

pub fn order_view_to_pb(v: &OrderView) -> pb::GetOwnershipResponse {
    let o = v.order.order();
    pb::GetOwnershipResponse {
        order_id: o.map(|o| o.facts.order_id.clone()).unwrap_or_default(),
        member_id: v.order.member_id.clone(),
        ownership: o.map(|o| ownership_to_pb(&o.ownership)),
        split_version: o.map(|o| o.split_version.clone()).unwrap_or_default(),
        entries: o.map(|o| entries_to_pb(&o.entries)).unwrap_or_default(),
        refunds: v
            .refunds
            .iter()
            .filter_map(|e| {
                e.refund().map(|r| pb::Refund {
                    refund_id: r.refund_id.clone(),
                    amount_cents: r.amount_cents,
                    entries: entries_to_pb(&r.entries),
                    occurred_at: Some(ms_to_timestamp(e.occurred_at_ms)),
                    seq: e.seq,
                })
            })
            .collect(),
        net: entries_to_pb(&v.net),
        amount_cents: o.map_or(0, |o| o.facts.amount_cents),
        refunded_cents: v.refunded_cents,
        event: Some(event_to_pb(&v.order)),
        adjustments: v.adjustments.iter().map(event_to_pb).collect(),
        owner_party: v.owner_party.clone(),
    }
}

/// The ledger page token: `<occurred_at ms>.<o|r>.<id>` of the last order or refund read.
pub fn ledger_token(c: &crate::storage::LedgerCursor) -> String {
    format!("{}.{}.{}", c.occurred_at_ms, c.tag as char, c.id)
}

pub fn ledger_cursor(token: &str) -> Result<Option<crate::storage::LedgerCursor>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        FieldError::new(
            "page_token",
            "must be a next_page_token from an earlier reply",
        )
    };
    let mut parts = token.splitn(3, '.');
    let ms = parts
        .next()
        .and_then(|p| p.parse::<i64>().ok())
        .ok_or_else(bad)?;
    let tag = match parts.next() {
        Some("o") => b'o',
        Some("r") => b'r',
        Some("a") => b'a',
        _ => return Err(bad()),
    };
    let id = parts.next().filter(|i| !i.is_empty()).ok_or_else(bad)?;
    Ok(Some(crate::storage::LedgerCursor {
        occurred_at_ms: ms,
        tag,
        id: id.to_string(),
    }))
}

pub fn ledger_line_to_pb(l: &crate::attribution::LedgerLine) -> pb::LedgerLine {
    pb::LedgerLine {
        occurred_at: Some(ms_to_timestamp(l.occurred_at_ms)),
        member_id: l.member_id.clone(),
        order_id: l.order_id.clone(),
        refund_id: l.refund_id.clone().unwrap_or_default(),
        adjustment_id: l.adjustment_id.clone().unwrap_or_default(),
        party: l.entry.party.clone(),
        role: l.entry.role.as_str().into(),
        amount_cents: l.entry.amount_cents,
    }
}

/// `(from_ms, to_ms)` of a ledger request: both required.
pub fn ledger_window(r: &pb::ListLedgerRequest) -> Result<(i64, i64), FieldError> {
    Ok((
        super::window_time("from", r.from.as_ref())?,
        super::window_time("to", r.to.as_ref())?,
    ))
}

pub fn interval_to_pb(i: &crate::domain::binding::Interval) -> pb::BindingInterval {
    pb::BindingInterval {
        guide_id: i.guide_id.clone(),
        store_id: i.store_id.clone(),
        from: Some(ms_to_timestamp(i.from_ms)),
        to: i.to_ms.map(ms_to_timestamp),
        began: i.began.as_str().into(),
        why: i.why.clone(),
        ended: i.ended.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_fields() {
        let r = pb::RecordTouchRequest {
            touch_id: "T".into(),
            member_id: "M".into(),
            kind: 0,
            channel: 1,
            ..Default::default()
        };
        assert_eq!(touch_from_pb(r.clone()).unwrap_err().field, "kind");
        let r = pb::RecordTouchRequest { kind: 99, ..r };
        assert!(touch_from_pb(r.clone()).unwrap_err().rule.contains("99"));
        let r = pb::RecordTouchRequest { kind: 1, ..r };
        assert_eq!(touch_from_pb(r).unwrap_err().field, "occurred_at");
        let o = pb::RecordOrderRequest {
            order_id: "O".into(),
            member_id: "M".into(),
            amount_cents: 1,
            paid_channel: 0,
            ..Default::default()
        };
        assert_eq!(order_from_pb(o).unwrap_err().field, "paid_channel");
        let q = pb::GetTrailRequest {
            member_id: "M".into(),
            page_token: "zero".into(),
            ..Default::default()
        };
        assert_eq!(trail_query_from_pb(&q).unwrap_err().field, "page_token");
        let q = pb::GetTrailRequest {
            member_id: "M".into(),
            ..Default::default()
        };
        assert_eq!(trail_query_from_pb(&q).unwrap().limit, 100);
        let c = crate::storage::LedgerCursor {
            occurred_at_ms: -5,
            tag: b'r',
            id: "R.1".into(),
        };
        assert_eq!(ledger_cursor(&ledger_token(&c)).unwrap(), Some(c));
        assert_eq!(ledger_cursor("").unwrap(), None);
        for bad in ["x.o.O1", "5.z.O1", "5.o.", "5"] {
            assert_eq!(ledger_cursor(bad).unwrap_err().field, "page_token", "{bad}");
        }
    }
}
