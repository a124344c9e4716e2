//! The guides' side: a guide's leads of a day, a store's queue of leads whose offers all
//! failed, and a guide of that store claiming one. A claim is one conditional commit that
//! replaces the queued decision at its version and takes the guide's capacity of today, with its
//! trail event and notices: of two guides claiming one lead at once, on any replicas, one wins
//! and the other is told who has it.

use super::{Attempt, Engine, OfferError, OfferReply, bind, business_day};
use crate::catalog::GuideStatus;
use crate::domain::offer::{Offer, OfferAction, OfferStatus};
use crate::domain::{Day, Decision, Reasons, check_id};
use crate::storage::{Chain, MAX_ATTEMPTS, StorageError, backoff};
use std::sync::Arc;

/// Most leads one queue read returns.
pub const MAX_QUEUE_PAGE: usize = 500;

impl Engine {
    /// The store of a guide the network knows.
    fn store_of_guide(&self, guide_id: &str) -> Result<String, OfferError> {
        check_id("guide_id", guide_id).map_err(OfferError::Invalid)?;
        let snap = self.snapshot();
        let net = &snap.network;
        let g = net.guide_index(guide_id).ok_or_else(|| {
            OfferError::NotFound(format!("guide_id: the network has no guide {guide_id:?}"))
        })?;
        Ok(net.store(net.guide(g).store).id.to_string())
    }

    /// A guide's leads of business day `day` (today when `None`), oldest first: routed,
    /// offered, accepted or claimed, as stored now.
    pub fn guide_leads(
        &self,
        guide_id: &str,
        day: Option<Day>,
    ) -> Result<Vec<Arc<Decision>>, OfferError> {
        self.store_of_guide(guide_id)?;
        let day = day.unwrap_or_else(|| self.today());
        Ok(self.store.guide_leads(guide_id, day)?)
    }

    /// The leads waiting in a store's queue, oldest first, at most `limit` (and
    /// [`MAX_QUEUE_PAGE`]).
    pub fn store_queue(
        &self,
        store_id: &str,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, OfferError> {
        check_id("store_id", store_id).map_err(OfferError::Invalid)?;
        if self.snapshot().network.store_index(store_id).is_none() {
            return Err(OfferError::NotFound(format!(
                "store_id: the network has no store {store_id:?}"
            )));
        }
        Ok(self
            .store
            .store_queue(store_id, limit.clamp(1, MAX_QUEUE_PAGE))?)
    }

    /// A guide takes a lead from their store's queue: it is theirs, on today's capacity.
    /// Claiming again the lead one holds returns it (`replayed`).
    pub fn claim_queued(
        &self,
        lead_id: &str,
        guide_id: &str,
        reason: &str,
        recorded_by: Option<&str>,
    ) -> Result<OfferReply, OfferError> {
        super::offers::check_answer(lead_id, guide_id, reason)?;
        let snap = self.snapshot();
        let net = &snap.network;
        let g = net.guide_index(guide_id).ok_or_else(|| {
            OfferError::NotFound(format!("guide_id: the network has no guide {guide_id:?}"))
        })?;
        let guide = net.guide(g);
        if guide.status != GuideStatus::Active {
            return Err(OfferError::Precondition(format!(
                "guide {guide_id} is not active: a queued lead is claimed by an active guide"
            )));
        }
        let store_id = net.store(guide.store).id.clone();
        for attempt in 0..MAX_ATTEMPTS {
            let now = self.clock.now_ms();
            let (d, offer, holder) = self.stored_offer(lead_id, ", so it is in no queue")?;
            match (offer.status, offer.queued_store_id.as_deref()) {
                (OfferStatus::Claimed, _) if holder == guide_id => {
                    return Ok(OfferReply {
                        decision: d,
                        replayed: true,
                    });
                }
                (OfferStatus::Claimed, _) => {
                    return Err(OfferError::Precondition(format!(
                        "lead {lead_id:?} was claimed by {holder} already"
                    )));
                }
                (OfferStatus::Exhausted, Some(queue)) if *queue == *store_id => {}
                (OfferStatus::Exhausted, Some(queue)) => {
                    return Err(OfferError::Precondition(format!(
                        "lead {lead_id:?} waits in the queue of store {queue}; guide {guide_id} \
                         is of store {store_id}"
                    )));
                }
                (status, _) => {
                    return Err(OfferError::Precondition(format!(
                        "lead {lead_id:?} is in no queue: its offer is {}{}",
                        status.as_str(),
                        if holder.is_empty() {
                            String::new()
                        } else {
                            format!(" (with {holder})")
                        }
                    )));
                }
            }
            let day = business_day(now, self.cfg.time_zone);
            let bindings = self.bindings();
            let member = self.member_for(bindings.for_day(day), &snap, &d, now)?;
            let mut chain = member
                .as_ref()
                .map(|m| Chain::new(m.member_id, m.head.clone()));
            let binding = match (&member, chain.as_mut()) {
                (Some(m), Some(c)) => Some(bind::commit(c, m, net, &d.lead, Some(g), now)),
                _ => None,
            };
            let next = Arc::new(Decision {
                assigned: Some((store_id.clone(), guide.id.clone())),
                unrouted: None,
                reasons: d.reasons.with(Reasons::CLAIMED_FROM_QUEUE),
                decided_at_ms: now,
                day,
                offer: Some(Offer {
                    status: OfferStatus::Claimed,
                    ..offer
                }),
                binding,
                replayed: false,
                version: d.version + 1,
                ..Decision::clone(&d)
            });
            if let Some(c) = chain.as_mut() {
                self.offer_event(
                    c,
                    &next,
                    OfferAction::Claimed,
                    (&store_id, guide_id),
                    (guide_id, recorded_by),
                    reason,
                );
            }
            let take = Some((g, guide.daily_capacity));
            match self.commit(&snap, &next, Some(d.version), take, None, chain.as_ref())? {
                Attempt::Done(next) => {
                    self.sync()?;
                    return Ok(OfferReply {
                        decision: next,
                        replayed: false,
                    });
                }
                Attempt::Full => {
                    return Err(OfferError::Precondition(format!(
                        "guide {guide_id} has used today's capacity of {}",
                        guide.daily_capacity
                    )));
                }
                // Claimed or changed by someone else, or the member's head moved: read again.
                Attempt::Again(_) => backoff(attempt),
            }
        }
        Err(StorageError::Contended(format!(
            "lead {}: it kept changing while it was claimed",
            crate::domain::short(lead_id)
        ))
        .into())
    }
}
