//! Recomputes every order's ownership and split, and every refund's reversing entries, from
//! exported trails and the rule book, and reports each difference from what was stored. With
//! the hash chain this makes the ledger auditable offline: the chain proves the trail was not
//! altered, the recomputation proves the stored decisions follow from it.

use super::split;
use super::{RuleBook, TrailCheck};
use crate::domain::trail::{ChainBreak, ChainVerifier, EventBody, TrailEvent};
use std::collections::HashMap;

/// One order or refund whose stored result differs from the recomputed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub member_id: String,
    pub seq: u64,
    pub what: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "member {:?} event seq {}: {}",
            self.member_id, self.seq, self.what
        )
    }
}

/// What a recomputation checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub orders: usize,
    pub refunds: usize,
    pub mismatches: Vec<Mismatch>,
}

/// Feeds events one at a time, each member's in `seq` order (members may interleave).
#[derive(Debug)]
pub struct Recomputer<'a> {
    book: &'a RuleBook,
    /// Each member's events so far, oldest first.
    trails: HashMap<String, Vec<TrailEvent>>,
    /// Each member's events come together: only the current member's are kept.
    grouped: bool,
    pub summary: Summary,
}

impl<'a> Recomputer<'a> {
    pub fn new(book: &'a RuleBook) -> Self {
        Self {
            book,
            trails: HashMap::new(),
            grouped: false,
            summary: Summary::default(),
        }
    }

    /// For input where each member's events are contiguous (a store scan): memory holds one
    /// member's trail at a time.
    pub fn grouped(book: &'a RuleBook) -> Self {
        Self {
            grouped: true,
            ..Self::new(book)
        }
    }

    pub fn push(&mut self, e: TrailEvent) {
        if self.grouped && !self.trails.contains_key(&e.member_id) {
            self.trails.clear();
        }
        let trail = self.trails.entry(e.member_id.clone()).or_default();
        let mismatch = |what: String| Mismatch {
            member_id: e.member_id.clone(),
            seq: e.seq,
            what,
        };
        match &e.body {
            EventBody::Touch(_) | EventBody::Binding(_) | EventBody::Offer(_) => {}
            EventBody::Order(o) => {
                self.summary.orders += 1;
                let Some(rules) = self.book.ownership_version(&o.ownership.rule_version) else {
                    self.summary.mismatches.push(mismatch(format!(
                        "order {:?}: ownership rule set {:?} is not in the rule book",
                        o.facts.order_id, o.ownership.rule_version
                    )));
                    trail.push(e);
                    return;
                };
                let history = rules.history(
                    e.occurred_at_ms,
                    trail.iter().rev(),
                    self.book.history_limit,
                );
                let binding = trail.iter().rev().find(|x| x.binding().is_some());
                let departed = |g: &str| o.departed_guide_ids.iter().any(|d| d == g);
                let owner = rules.decide(
                    &o.facts,
                    o.sharing_guide_store_id.as_deref(),
                    e.occurred_at_ms,
                    &history,
                    binding,
                    &departed,
                );
                if owner != o.ownership {
                    self.summary.mismatches.push(mismatch(format!(
                        "order {:?}: stored owner {} by {} (events {:?}), recomputed {} by {} (events {:?})",
                        o.facts.order_id,
                        split::owner_party(&o.ownership),
                        o.ownership.rule.as_str(),
                        o.ownership.deciding_events,
                        split::owner_party(&owner),
                        owner.rule.as_str(),
                        owner.deciding_events
                    )));
                }
                match self.book.split_version(&o.split_version) {
                    None => self.summary.mismatches.push(mismatch(format!(
                        "order {:?}: split policy {:?} is not in the rule book",
                        o.facts.order_id, o.split_version
                    ))),
                    Some(p) => {
                        let (entries, rounding) =
                            p.split_excluding(&o.facts, &owner, &o.departed_guide_ids);
                        if entries != o.entries || rounding != o.rounding_role {
                            self.summary.mismatches.push(mismatch(format!(
                                "order {:?}: stored entries {:?}, recomputed {:?}",
                                o.facts.order_id, o.entries, entries
                            )));
                        }
                        let sum: i64 = o.entries.iter().map(|x| x.amount_cents).sum();
                        if sum != o.facts.amount_cents {
                            self.summary.mismatches.push(mismatch(format!(
                                "order {:?}: entries sum to {sum}, not the amount {}",
                                o.facts.order_id, o.facts.amount_cents
                            )));
                        }
                    }
                }
            }
            EventBody::Adjustment(a) => {
                let order = trail
                    .iter()
                    .find(|x| x.seq == a.order_seq)
                    .and_then(|x| x.order());
                match order {
                    None => self.summary.mismatches.push(mismatch(format!(
                        "adjustment {:?}: its order (event {}) is not earlier in the trail",
                        a.adjustment_id, a.order_seq
                    ))),
                    Some(o) => {
                        let earlier = || {
                            trail.iter().filter(|x| {
                                x.refund().is_some_and(|r| r.order_id == a.order_id)
                                    || x.adjustment().is_some_and(|y| y.order_id == a.order_id)
                            })
                        };
                        let from =
                            split::current_owner(o, earlier().filter_map(|x| x.adjustment()));
                        let net = split::owner_net(o, earlier().filter_map(|x| x.refund()));
                        let want = split::adjustment_entries(&from, &a.to_party, net);
                        if from != a.from_party || want != a.entries {
                            self.summary.mismatches.push(mismatch(format!(
                                "adjustment {:?}: stored {} -> {} {:?}, recomputed {from} -> {} {want:?}",
                                a.adjustment_id, a.from_party, a.to_party, a.entries, a.to_party
                            )));
                        }
                    }
                }
            }
            EventBody::Refund(r) => {
                self.summary.refunds += 1;
                let order = trail
                    .iter()
                    .find(|x| x.seq == r.order_seq)
                    .and_then(|x| x.order());
                match order {
                    None => self.summary.mismatches.push(mismatch(format!(
                        "refund {:?}: its order (event {}) is not earlier in the trail",
                        r.refund_id, r.order_seq
                    ))),
                    Some(o) => {
                        let already: i64 = trail
                            .iter()
                            .filter_map(|x| x.refund())
                            .filter(|x| x.order_id == r.order_id)
                            .map(|x| x.amount_cents)
                            .sum();
                        let owner = split::current_owner(
                            o,
                            trail
                                .iter()
                                .filter_map(|x| x.adjustment())
                                .filter(|x| x.order_id == r.order_id),
                        );
                        let want = split::reverse_to(o, already, r.amount_cents, &owner);
                        if want != r.entries || already + r.amount_cents > o.facts.amount_cents {
                            self.summary.mismatches.push(mismatch(format!(
                                "refund {:?}: stored entries {:?}, recomputed {:?} (refunded before: {already} of {})",
                                r.refund_id, r.entries, want, o.facts.amount_cents
                            )));
                        }
                    }
                }
            }
        }
        trail.push(e);
    }
}

/// Checks events as they come: the hash chain (first break kept) and the recomputation.
#[derive(Debug)]
pub struct TrailChecker<'a> {
    chain: ChainVerifier,
    recompute: Recomputer<'a>,
    broken: Result<(), ChainBreak>,
}

impl<'a> TrailChecker<'a> {
    pub fn new(book: &'a RuleBook) -> Self {
        Self {
            chain: ChainVerifier::new(),
            recompute: Recomputer::new(book),
            broken: Ok(()),
        }
    }

    /// For input where each member's events are contiguous (a store scan): memory holds one
    /// member at a time.
    pub fn grouped(book: &'a RuleBook) -> Self {
        Self {
            chain: ChainVerifier::grouped(),
            recompute: Recomputer::grouped(book),
            broken: Ok(()),
        }
    }

    /// Checks one event; `position` replaces the break's position (a file's line number).
    pub fn push(&mut self, e: TrailEvent, position: Option<usize>) {
        if self.broken.is_ok()
            && let Err(mut b) = self.chain.check(&e)
        {
            if let Some(p) = position {
                b.position = p;
            }
            self.broken = Err(b);
        }
        self.recompute.push(e);
    }

    pub fn finish(self) -> TrailCheck {
        TrailCheck {
            members: self.chain.members(),
            events: self.chain.checked(),
            chain: self.broken,
            recomputed: self.recompute.summary,
        }
    }
}
