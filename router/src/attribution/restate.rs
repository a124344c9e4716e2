//! Trails restated under other rules (DESIGN §5): what an ownership rule set and a split
//! policy would have decided for every order of a trail, and so for its refunds and
//! reassignments — by the code that decides them in service, from the trail alone.
//!
//! The recomputation that audits the ledger ([`super::recompute`]) is this restatement under
//! the rule set and policy each order names; an analyst's comparison of a commission change
//! (`leadrouter-sim replay --rules`, and every simulated run) is the same restatement under
//! the alternatives. Pure: the same trail and rules always give the same entries.

use super::rules::OwnershipRuleSet;
use super::split::{self, SplitPolicy};
use crate::domain::trail::{
    AdjustmentRecord, EventBody, OrderRecord, Ownership, RefundRecord, TrailEvent,
};
use std::collections::HashMap;

/// Who owns an order under `rules`, from the member's events before it (`earlier`, oldest
/// first): the same history and binding event the service gave the rules when it recorded the
/// order, and the departed guides the order record kept.
pub fn ownership(
    rules: &OwnershipRuleSet,
    order: &TrailEvent,
    record: &OrderRecord,
    earlier: &[TrailEvent],
    history_limit: usize,
) -> Ownership {
    let history = rules.history(order.occurred_at_ms, earlier.iter().rev(), history_limit);
    let binding = earlier.iter().rev().find(|x| x.binding().is_some());
    let departed = |g: &str| record.departed_guide_ids.iter().any(|d| d == g);
    rules.decide(
        &record.facts,
        record.sharing_guide_store_id.as_deref(),
        order.occurred_at_ms,
        &history,
        binding,
        &departed,
    )
}

/// The order record `rules` and `policy` would have written: its owner, split version,
/// rounding role and entries restated, its facts unchanged.
pub fn order(
    rules: &OwnershipRuleSet,
    policy: &SplitPolicy,
    order: &TrailEvent,
    record: &OrderRecord,
    earlier: &[TrailEvent],
    history_limit: usize,
) -> OrderRecord {
    let owner = ownership(rules, order, record, earlier, history_limit);
    split_as(policy, record, owner)
}

/// `record` split by `policy` for `owner`.
pub fn split_as(policy: &SplitPolicy, record: &OrderRecord, owner: Ownership) -> OrderRecord {
    let (entries, rounding) =
        policy.split_excluding(&record.facts, &owner, &record.departed_guide_ids);
    OrderRecord {
        ownership: owner,
        split_version: policy.version.clone(),
        rounding_role: rounding,
        entries,
        ..record.clone()
    }
}

/// The order a follow-up names (by `seq`) among `earlier`, and the follow-ups of the same order
/// before it.
fn order_of<'a>(
    earlier: &'a [TrailEvent],
    order_seq: u64,
    order_id: &str,
) -> Option<(&'a OrderRecord, Vec<&'a TrailEvent>)> {
    let order = earlier
        .iter()
        .find(|x| x.seq == order_seq)
        .and_then(|x| x.order())?;
    let follow_ups = earlier
        .iter()
        .filter(|x| {
            x.refund().is_some_and(|r| r.order_id == order_id)
                || x.adjustment().is_some_and(|a| a.order_id == order_id)
        })
        .collect();
    Some((order, follow_ups))
}

/// A refund's reversing entries restated on `earlier` (the trail before it, its order and the
/// order's earlier follow-ups as restated): proportional to the order's entries, the owner's
/// share from whoever holds the owner credit then. An error when the order is not among
/// `earlier` or the refund exceeds what was left.
pub fn refund(r: &RefundRecord, earlier: &[TrailEvent]) -> Result<RefundRecord, String> {
    let (o, follow_ups) = order_of(earlier, r.order_seq, &r.order_id).ok_or_else(|| {
        format!(
            "refund {:?}: its order (event {}) is not earlier in the trail",
            r.refund_id, r.order_seq
        )
    })?;
    let already: i64 = follow_ups
        .iter()
        .filter_map(|x| x.refund())
        .map(|x| x.amount_cents)
        .sum();
    if already + r.amount_cents > o.facts.amount_cents {
        return Err(format!(
            "refund {:?}: {} cents exceed what was left of the order ({} of {} cents refunded before)",
            r.refund_id, r.amount_cents, already, o.facts.amount_cents
        ));
    }
    let owner = split::current_owner(o, follow_ups.iter().filter_map(|x| x.adjustment()));
    Ok(RefundRecord {
        entries: split::reverse_to(o, already, r.amount_cents, &owner),
        ..r.clone()
    })
}

/// A reassignment restated on `earlier`: the owner credit left moves from whoever holds it
/// then to the same party; no entries when that party holds it already.
pub fn adjustment(
    a: &AdjustmentRecord,
    earlier: &[TrailEvent],
) -> Result<AdjustmentRecord, String> {
    let (o, follow_ups) = order_of(earlier, a.order_seq, &a.order_id).ok_or_else(|| {
        format!(
            "adjustment {:?}: its order (event {}) is not earlier in the trail",
            a.adjustment_id, a.order_seq
        )
    })?;
    let from = split::current_owner(o, follow_ups.iter().filter_map(|x| x.adjustment()));
    let net = split::owner_net(o, follow_ups.iter().filter_map(|x| x.refund()));
    let entries = if from == a.to_party {
        Vec::new()
    } else {
        split::adjustment_entries(&from, &a.to_party, net)
    };
    Ok(AdjustmentRecord {
        from_party: from,
        entries,
        ..a.clone()
    })
}

/// An alternative to restate trails under: an ownership rule set and a split policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub ownership: OwnershipRuleSet,
    pub split: SplitPolicy,
}

/// A member's trail as received, and its money events as each alternative restates them.
#[derive(Debug, Default)]
struct Member {
    received: Vec<TrailEvent>,
    restated: Vec<Vec<TrailEvent>>,
}

/// Restates trails fed one event at a time (each member's in `seq` order) under every
/// alternative. Each order, refund and reassignment comes back once per alternative, in the
/// alternatives' order, as the event that alternative would have recorded; touches, bindings
/// and offers come back as nothing (no alternative changes them).
#[derive(Debug)]
pub struct Restater {
    alternatives: Vec<Alternative>,
    history_limit: usize,
    grouped: bool,
    members: HashMap<String, Member>,
}

impl Restater {
    pub fn new(alternatives: Vec<Alternative>, history_limit: usize) -> Self {
        Self {
            alternatives,
            history_limit,
            grouped: false,
            members: HashMap::new(),
        }
    }

    /// For input where each member's events are contiguous (a store scan, an export): memory
    /// holds one member's trail at a time.
    pub fn grouped(alternatives: Vec<Alternative>, history_limit: usize) -> Self {
        Self {
            grouped: true,
            ..Self::new(alternatives, history_limit)
        }
    }

    pub fn alternatives(&self) -> &[Alternative] {
        &self.alternatives
    }

    /// Feeds one event; the restated events (one per alternative) when it carries money. An
    /// error names a follow-up whose order is missing or that over-refunds it.
    pub fn push(&mut self, e: TrailEvent) -> Result<Vec<TrailEvent>, String> {
        if self.grouped && !self.members.contains_key(&e.member_id) {
            self.members.clear();
        }
        let k = self.alternatives.len();
        let m = self.members.entry(e.member_id.clone()).or_default();
        if m.restated.len() != k {
            m.restated = vec![Vec::new(); k];
        }
        let mut out = Vec::new();
        for (alt, restated) in self.alternatives.iter().zip(&mut m.restated) {
            let body = match &e.body {
                EventBody::Touch(_) | EventBody::Binding(_) | EventBody::Offer(_) => break,
                EventBody::Order(o) => EventBody::Order(Box::new(order(
                    &alt.ownership,
                    &alt.split,
                    &e,
                    o,
                    &m.received,
                    self.history_limit,
                ))),
                EventBody::Refund(r) => EventBody::Refund(refund(r, restated)?),
                EventBody::Adjustment(a) => EventBody::Adjustment(adjustment(a, restated)?),
            };
            let x = TrailEvent { body, ..e.clone() };
            restated.push(x.clone());
            out.push(x);
        }
        m.received.push(e);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;
    use crate::domain::trail::{LedgerEntry, OrderFacts, OwnershipRule, Role, Touch, TouchKind};

    fn event(member: &str, seq: u64, at: i64, body: EventBody) -> TrailEvent {
        TrailEvent::unchained(member, seq, at, body)
    }

    fn chat(guide: &str, store: &str) -> EventBody {
        EventBody::Touch(Touch {
            touch_id: format!("t-{guide}"),
            kind: TouchKind::GuideChat,
            channel: Channel::MiniProgram,
            guide_id: Some(guide.into()),
            store_id: Some(store.into()),
            lead_id: None,
            recorded_by: None,
        })
    }

    /// An order of 10,001 cents paid on e-commerce, owned by the last touch (G1 of S1), split
    /// 361, fulfilled by S2.
    fn an_order(seq: u64) -> (OrderRecord, EventBody) {
        let facts = OrderFacts {
            order_id: "o1".into(),
            amount_cents: 10_001,
            paid_channel: Channel::Ecommerce,
            fulfilling_store_id: Some("S2".into()),
            sharing_guide_id: None,
            referrer_guide_ids: vec![],
        };
        let owner = Ownership {
            guide_id: Some("G1".into()),
            store_id: Some("S1".into()),
            channel: None,
            rule: OwnershipRule::LastTouch,
            rule_version: "ownership-v1".into(),
            deciding_events: vec![seq - 1],
            explanation: String::new(),
        };
        let record = split_as(
            &SplitPolicy::default(),
            &OrderRecord {
                facts,
                sharing_guide_store_id: None,
                departed_guide_ids: vec![],
                ownership: owner.clone(),
                split_version: String::new(),
                rounding_role: Role::FulfillingStore,
                entries: vec![],
                recorded_by: None,
            },
            owner,
        );
        (record.clone(), EventBody::Order(Box::new(record)))
    }

    fn refund_of(id: &str, seq: u64, cents: i64) -> EventBody {
        EventBody::Refund(RefundRecord {
            refund_id: id.into(),
            order_id: "o1".into(),
            amount_cents: cents,
            order_seq: seq,
            entries: vec![],
            recorded_by: None,
        })
    }

    fn sum(entries: &[LedgerEntry]) -> i64 {
        entries.iter().map(|e| e.amount_cents).sum()
    }

    #[test]
    fn alternatives_restate_owner_split_and_refunds_exactly() {
        const DAY: i64 = 86_400_000;
        let in_service = Alternative {
            ownership: OwnershipRuleSet::default(),
            split: SplitPolicy::default(),
        };
        // A one-day look-back: the chat three days before no longer earns the order.
        let short = Alternative {
            ownership: OwnershipRuleSet {
                version: "lookback-1".into(),
                lookback_days: 1,
                ..Default::default()
            },
            split: SplitPolicy {
                version: "25-70-5".into(),
                owner: 25,
                fulfilling_store: 70,
                o2o_centre: 5,
                ..Default::default()
            },
        };
        let mut r = Restater::grouped(vec![in_service, short], 100);
        assert!(
            r.push(event("m1", 1, 0, chat("G1", "S1")))
                .unwrap()
                .is_empty()
        );
        let (stored, body) = an_order(2);
        let got = r.push(event("m1", 2, 3 * DAY, body)).unwrap();
        assert_eq!(got.len(), 2);
        // Under the rules in service the chat three days before earns the order, split 361.
        let kept = got[0].order().unwrap();
        assert_eq!(kept.ownership.rule, OwnershipRule::LastTouch);
        assert_eq!(kept.ownership.deciding_events, vec![1]);
        assert_eq!(kept.entries, stored.entries);
        let alt = got[1].order().unwrap();
        assert_eq!(alt.ownership.rule, OwnershipRule::PaidChannel);
        assert_eq!(split::owner_party(&alt.ownership), "channel:ECOMMERCE");
        assert_eq!(alt.split_version, "25-70-5");
        assert_eq!(sum(&alt.entries), 10_001);
        let owner = alt.entries.iter().find(|e| e.role == Role::Owner).unwrap();
        assert_eq!(owner.amount_cents, 2_500);
        // Two partial refunds reverse each alternative's own entries, to the cent.
        let a = r
            .push(event("m1", 3, 4 * DAY, refund_of("r1", 2, 3_333)))
            .unwrap();
        let b = r
            .push(event("m1", 4, 5 * DAY, refund_of("r2", 2, 6_668)))
            .unwrap();
        for k in 0..2 {
            let order = got[k].order().unwrap();
            let mut net: HashMap<(String, Role), i64> = HashMap::new();
            for e in order
                .entries
                .iter()
                .chain(&a[k].refund().unwrap().entries)
                .chain(&b[k].refund().unwrap().entries)
            {
                *net.entry((e.party.clone(), e.role)).or_default() += e.amount_cents;
            }
            assert!(net.values().all(|&v| v == 0), "alternative {k}: {net:?}");
        }
        assert_ne!(
            a[0].refund().unwrap().entries,
            a[1].refund().unwrap().entries
        );
        // A third refund would exceed the order: named.
        let e = r
            .push(event("m1", 5, 6 * DAY, refund_of("r3", 2, 1)))
            .unwrap_err();
        assert!(e.contains("r3") && e.contains("exceed"), "{e}");
    }

    #[test]
    fn a_reassignment_moves_the_alternative_owner_credit() {
        let other = Alternative {
            ownership: OwnershipRuleSet {
                version: "lookback-0".into(),
                lookback_days: 0,
                ..Default::default()
            },
            split: SplitPolicy::default(),
        };
        let mut r = Restater::new(vec![other], 100);
        r.push(event("m1", 1, 0, chat("G1", "S1"))).unwrap();
        let (_, body) = an_order(2);
        let got = r.push(event("m1", 2, 86_400_000, body)).unwrap();
        let alt = got[0].order().unwrap();
        assert_eq!(split::owner_party(&alt.ownership), "channel:ECOMMERCE");
        let adj = |to: &str| {
            EventBody::Adjustment(AdjustmentRecord {
                adjustment_id: format!("dispute:{to}"),
                order_id: "o1".into(),
                order_seq: 2,
                from_party: "guide:G1".into(),
                to_party: to.into(),
                actor: "reviewer".into(),
                reason: "test".into(),
                rebind: false,
                entries: vec![],
            })
        };
        // Moving the credit to the party that holds it under the alternative moves nothing.
        let same = r
            .push(event("m1", 3, 86_400_001, adj("channel:ECOMMERCE")))
            .unwrap();
        let same = same[0].adjustment().unwrap();
        assert!(same.entries.is_empty());
        assert_eq!(same.from_party, "channel:ECOMMERCE");
        let moved = r.push(event("m1", 4, 86_400_002, adj("guide:G2"))).unwrap();
        let moved = moved[0].adjustment().unwrap();
        assert_eq!(moved.from_party, "channel:ECOMMERCE");
        assert_eq!(moved.entries[0].amount_cents, -3_000);
        assert_eq!(moved.entries[1].party, "guide:G2");
        assert_eq!(sum(&moved.entries), 0);
    }

    #[test]
    fn a_refund_without_its_order_is_named() {
        let mut r = Restater::new(
            vec![Alternative {
                ownership: OwnershipRuleSet::default(),
                split: SplitPolicy::default(),
            }],
            100,
        );
        let e = r
            .push(event("m1", 1, 0, refund_of("r1", 7, 5)))
            .unwrap_err();
        assert!(e.contains("not earlier in the trail"), "{e}");
    }
}
