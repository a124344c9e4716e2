//! Recomputes every order's ownership and split, and every refund's reversing entries, from
//! exported trails and the rule book, and reports each difference from what was stored. With
//! the hash chain this makes the ledger auditable offline: the chain proves the trail was not
//! altered, the recomputation proves the stored decisions follow from it.

use super::{RuleBook, TrailCheck};
use super::{restate, split};
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
                let owner = restate::ownership(rules, &e, o, trail, self.book.history_limit);
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
                        let want = restate::split_as(p, o, owner);
                        if want.entries != o.entries || want.rounding_role != o.rounding_role {
                            self.summary.mismatches.push(mismatch(format!(
                                "order {:?}: stored entries {:?}, recomputed {:?}",
                                o.facts.order_id, o.entries, want.entries
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
            EventBody::Adjustment(a) => match restate::adjustment(a, trail) {
                Err(what) => self.summary.mismatches.push(mismatch(what)),
                Ok(want) if want.from_party != a.from_party || want.entries != a.entries => {
                    self.summary.mismatches.push(mismatch(format!(
                        "adjustment {:?}: stored {} -> {} {:?}, recomputed {} -> {} {:?}",
                        a.adjustment_id,
                        a.from_party,
                        a.to_party,
                        a.entries,
                        want.from_party,
                        a.to_party,
                        want.entries
                    )))
                }
                Ok(_) => {}
            },
            EventBody::Refund(r) => {
                self.summary.refunds += 1;
                match restate::refund(r, trail) {
                    Err(what) => self.summary.mismatches.push(mismatch(what)),
                    Ok(want) if want.entries != r.entries => {
                        self.summary.mismatches.push(mismatch(format!(
                            "refund {:?}: stored entries {:?}, recomputed {:?}",
                            r.refund_id, r.entries, want.entries
                        )))
                    }
                    Ok(_) => {}
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
