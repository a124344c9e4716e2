//! Routing decisions and the capacity they hold: one part of the storage contract.

use super::{Append, StorageError};
use crate::domain::{Day, Decision};
use std::sync::Arc;

/// The capacity a decision takes: one of `guide_id`'s leads on `day`, taken only while the
/// guide's count is below `capacity`.
#[derive(Debug, Clone, Copy)]
pub struct Take<'a> {
    pub guide_id: &'a str,
    pub day: Day,
    pub capacity: u32,
}

/// One conditional write of a routing decision ([`Decisions::commit_route`]).
#[derive(Debug, Clone, Copy)]
pub struct RouteCommit<'a> {
    pub decision: &'a Arc<Decision>,
    /// `None`: a new lead (stored only if the lead has no decision yet). `Some(v)`: replaces the
    /// stored decision only while it is still at version `v` (an offer that moved on, was
    /// accepted or exhausted); the new decision's `version` is `v + 1`.
    pub replaces: Option<u32>,
    /// The capacity the decision takes.
    pub take: Option<Take<'a>>,
    /// The capacity the replaced version held and gives back: `(guide_id, day)`.
    pub release: Option<(&'a str, Day)>,
    /// The member's events the route appends (a binding, an offer event), chained onto the head
    /// read: written with the decision or not at all.
    pub events: &'a [Append<'a>],
    /// The member's head the decision was made on: stored only while the head is still there
    /// (with or without events), so that a binding another writer changed meanwhile is never
    /// used.
    pub head: Option<HeadAt<'a>>,
    /// What the guides' and stores' apps are told of the change ([`super::Desks::notices`]):
    /// written with the decision or not at all.
    pub notices: &'a [super::OfferNotice],
}

impl RouteCommit<'_> {
    /// What every backend checks before it writes: the events chain one member's, follow the
    /// head named, and carry no id key.
    pub fn check(&self) -> Result<(), StorageError> {
        super::check_chain(self.events)?;
        if self.events.iter().any(|a| a.key.is_some()) {
            return Err(StorageError::Backend(
                "a route's events carry no id key".into(),
            ));
        }
        if let (Some(at), Some(first)) = (self.head, self.events.first())
            && (first.event.member_id != at.member_id || first.event.seq != at.seq + 1)
        {
            return Err(StorageError::Backend(
                "a route's events do not follow the head it names".into(),
            ));
        }
        Ok(())
    }
}

/// A member's head as a writer read (or assumed) it: `seq` 0 for a member with no events yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadAt<'a> {
    pub member_id: &'a str,
    pub seq: u64,
}

impl<'a> HeadAt<'a> {
    /// The head `chain` was started on.
    pub fn of(chain: &'a super::Chain<'_>) -> Self {
        Self {
            member_id: chain.member_id(),
            seq: chain.base_seq(),
        }
    }

    /// Whether a member's stored head (`None`: no events) is this one.
    pub fn is(&self, head: Option<u64>) -> bool {
        head.unwrap_or(0) == self.seq
    }
}

/// What [`Decisions::commit_route`] did. Anything but `Stored` wrote nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Written. `used`: the taken guide's count on the day, this decision included.
    Stored { used: Option<u32> },
    /// The lead had a decision already (a retry, or another replica routed it first).
    Replayed(Arc<Decision>),
    /// The decision to replace is no longer at the version read (or is gone).
    Moved(Option<Arc<Decision>>),
    /// The guide is at capacity: `used` is its count.
    Full { used: u32 },
    /// The member's head moved since it was read (or assumed): with what the route reads now
    /// where the backend read it in the same step ([`super::Storage::route_guess`]), else read
    /// the binding again.
    HeadMoved(Option<Box<super::RouteState>>),
}

/// `(expires_at_ms, lead_id)` when `d` holds an open offer: how backends index open offers.
pub fn open_offer(d: &Decision) -> Option<(i64, String)> {
    let o = d.offer.as_ref()?;
    (o.status == crate::domain::offer::OfferStatus::Open)
        .then(|| (o.expires_at_ms, d.lead.lead_id.clone()))
}

/// Leases the open offers due at `now_ms` that no one holds (`leases`: lead id → lease end)
/// until `lease_until_ms`, at most `limit`, by expiry; returns their lead ids. The rule of
/// [`Decisions::claim_due_offers`] for backends that keep the offers in memory under a lock.
pub fn lease_due(
    offers: &std::collections::BTreeSet<(i64, String)>,
    leases: &mut std::collections::HashMap<String, i64>,
    now_ms: i64,
    lease_until_ms: i64,
    limit: usize,
) -> Vec<String> {
    let due: Vec<String> = offers
        .range(..(now_ms + 1, String::new()))
        .filter(|(_, lead)| leases.get(lead).is_none_or(|&until| until <= now_ms))
        .take(limit)
        .map(|(_, lead)| lead.clone())
        .collect();
    for lead in &due {
        leases.insert(lead.clone(), lease_until_ms);
    }
    due
}

/// Decisions by lead id, the capacity they hold, and the open offers among them.
pub trait Decisions: Send + Sync {
    /// The decision stored for `lead_id`, if any.
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError>;

    /// Inserts or replaces a decision, takes and gives back capacity and appends the member's
    /// events, all in one step or not at all (see [`RouteCommit`], [`Committed`]). Visible at
    /// once; durable within the flush interval, or after [`super::Storage::flush`].
    fn commit_route(&self, commit: &RouteCommit<'_>) -> Result<Committed, StorageError>;

    /// [`Decisions::commit_route`] for a caller on an async runtime: waits without blocking the
    /// thread where the backend waits on the network.
    fn commit_route_async<'a>(
        &'a self,
        commit: &'a RouteCommit<'a>,
    ) -> super::Pending<'a, Committed> {
        Box::pin(std::future::ready(self.commit_route(commit)))
    }

    /// One guide's count on `day`.
    fn guide_count(&self, guide_id: &str, day: Day) -> Result<u32, StorageError>;

    /// Every guide's count for one business day.
    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError>;

    /// Open offers due at `now_ms` (expired) that no one holds, leased to the caller until
    /// `lease_until_ms`, at most `limit`, by expiry: so that of several replicas' sweepers one
    /// moves each offer. A lease lapses by itself; the replacing commit ends it.
    fn claim_due_offers(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError>;

    /// How many decisions hold an open offer.
    fn open_offer_count(&self) -> Result<usize, StorageError>;

    /// Number of stored decisions.
    fn decision_count(&self) -> Result<u64, StorageError>;

    /// Every stored decision (after a flush), in lead-id order, until `f` returns false.
    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StorageError>;
}
