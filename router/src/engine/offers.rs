//! Offers (DESIGN §4 step 7): a route on an offer channel holds the guide's capacity until the
//! guide accepts, declines, or the offer expires. Declines and expiries move the offer on to the
//! next candidate — never back to a guide who had it — up to `max_hops` times, then to the last
//! store's queue or unrouted. Each step is an event in the member's trail, committed with the
//! decision it changes, and each change replaces the decision only at the version read: of a
//! guide's answer and a sweeper's expiry (on any replica) exactly one wins. Due offers are
//! claimed under a lease, so that of several replicas' sweepers one moves each.

use super::{Attempt, Engine, Placed, Snapshot, bind, business_day, validate};
use crate::domain::audit::MAX_REASON_LEN;
use crate::domain::offer::{Offer, OfferAction, OfferRecord, OfferStatus, OnExhausted};
use crate::domain::trail::EventBody;
use crate::domain::{Decision, FieldError, Reasons, Unrouted, check_id};
use crate::engine::RouteError;
use crate::storage::{Chain, MAX_ATTEMPTS, StorageError, backoff};
use std::sync::Arc;

/// Why an answer to an offer was refused: the same kinds as a catalog request's. Nothing
/// changed (except an offer found expired, which moved on as the sweeper would have moved it).
pub type OfferError = super::CatalogError;

impl From<RouteError> for OfferError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::Invalid(f) => Self::Invalid(f),
            RouteError::Storage(s) => Self::Storage(s),
        }
    }
}

/// The decision after an answer; `replayed` when the same answer had been given before.
#[derive(Debug, Clone)]
pub struct OfferReply {
    pub decision: Arc<Decision>,
    pub replayed: bool,
}

impl Engine {
    /// Adds an offer event to `chain` (committed with the decision it belongs to).
    pub(super) fn offer_event(
        &self,
        chain: &mut Chain<'_>,
        d: &Decision,
        action: OfferAction,
        guide: (&str, &str),
        actor: (&str, Option<&str>),
        reason: &str,
    ) {
        let Some(offer) = &d.offer else {
            return;
        };
        let record = OfferRecord {
            action,
            lead_id: d.lead.lead_id.clone(),
            decision_id: d.decision_id.clone(),
            guide_id: guide.1.to_string(),
            store_id: guide.0.to_string(),
            hop: offer.hop,
            expires_at_ms: (action == OfferAction::Offered).then_some(offer.expires_at_ms),
            actor: actor.0.to_string(),
            recorded_by: actor.1.map(str::to_string),
            reason: reason.to_string(),
            rule: self.cfg.offers.describe(),
        };
        let now = self.clock.now_ms();
        chain.push(now, now, EventBody::Offer(record), None);
    }

    /// A guide's answer to the offer they hold for `lead_id`; `recorded_by` names the key that
    /// sent it (kept in the trail event).
    pub fn respond_to_offer(
        &self,
        lead_id: &str,
        guide_id: &str,
        accept: bool,
        reason: &str,
        recorded_by: Option<&str>,
    ) -> Result<OfferReply, OfferError> {
        check_answer(lead_id, guide_id, reason)?;
        let snap = self.snapshot();
        for attempt in 0..MAX_ATTEMPTS {
            let now = self.clock.now_ms();
            let (d, offer, holder) = self.stored_offer(lead_id, "")?;
            let replay = |d: Arc<Decision>| {
                Ok(OfferReply {
                    decision: d,
                    replayed: true,
                })
            };
            match (accept, offer.status) {
                (true, OfferStatus::Accepted) if holder == guide_id => return replay(d),
                (false, _) if offer.declined.iter().any(|g| &**g == guide_id) => return replay(d),
                (_, OfferStatus::Open) if holder == guide_id => {}
                (_, OfferStatus::Open) => {
                    return Err(OfferError::Precondition(format!(
                        "the offer for lead {lead_id:?} is with {holder}, not {guide_id}"
                    )));
                }
                (_, status) => {
                    return Err(OfferError::Precondition(format!(
                        "the offer for lead {lead_id:?} is {} (with {}), not open",
                        status.as_str(),
                        if holder.is_empty() { "nobody" } else { &holder }
                    )));
                }
            }
            if now >= offer.expires_at_ms {
                // Moved on here as the sweeper would (or by it, first): either way, too late.
                self.expire(&snap, &d, now)?;
                return Err(OfferError::Precondition(format!(
                    "the offer for lead {lead_id:?} expired at {} ms; it has moved on",
                    offer.expires_at_ms
                )));
            }
            if !accept {
                match self.move_on(
                    &snap,
                    &d,
                    OfferAction::Declined,
                    (guide_id, recorded_by),
                    reason,
                    now,
                )? {
                    Some(next) => {
                        return Ok(OfferReply {
                            decision: next,
                            replayed: false,
                        });
                    }
                    None => {
                        backoff(attempt);
                        continue;
                    }
                }
            }
            let net = &snap.network;
            let g = net
                .guide_index(guide_id)
                .filter(|&g| net.guide(g).status == crate::catalog::GuideStatus::Active)
                .ok_or_else(|| {
                    OfferError::Precondition(format!(
                        "guide {guide_id} is not active: an offer is accepted by an active guide"
                    ))
                })?;
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
                offer: Some(Offer {
                    status: OfferStatus::Accepted,
                    ..offer.clone()
                }),
                binding,
                replayed: false,
                version: d.version + 1,
                ..Decision::clone(&d)
            });
            if let Some(c) = chain.as_mut() {
                let store_id = net.store(net.guide(g).store).id.clone();
                self.offer_event(
                    c,
                    &next,
                    OfferAction::Accepted,
                    (&store_id, guide_id),
                    (guide_id, recorded_by),
                    reason,
                );
            }
            match self.commit(&snap, &next, Some(d.version), None, None, chain.as_ref())? {
                Attempt::Done(next) => {
                    self.sync()?;
                    return Ok(OfferReply {
                        decision: next,
                        replayed: false,
                    });
                }
                Attempt::Full | Attempt::Again(_) => backoff(attempt),
            }
        }
        Err(StorageError::Contended(format!(
            "lead {}: its offer kept changing while it was answered",
            crate::domain::short(lead_id)
        ))
        .into())
    }

    /// Moves on every open offer whose time is up and that no other sweeper holds; returns
    /// how many this call moved.
    pub fn expire_due(&self) -> Result<usize, StorageError> {
        let now = self.clock.now_ms();
        let due = self
            .store
            .claim_due_offers(now, now + OFFER_LEASE_MS, 1024)?;
        let snap = self.snapshot();
        let mut moved = 0;
        for d in due {
            let still_open = d
                .offer
                .as_ref()
                .is_some_and(|o| o.status == OfferStatus::Open && o.expires_at_ms <= now);
            if !still_open {
                continue;
            }
            match self.expire(&snap, &d, now) {
                Ok(Some(_)) => moved += 1,
                // Answered or moved by someone else first.
                Ok(None) => {}
                Err(RouteError::Storage(e)) => return Err(e),
                // The stored lead no longer validates (the network changed): it was
                // exhausted instead; nothing else can fail here.
                Err(RouteError::Invalid(_)) => {}
            }
        }
        Ok(moved)
    }

    /// Decisions holding an open offer.
    pub fn open_offer_count(&self) -> Result<usize, StorageError> {
        self.store.open_offer_count()
    }

    /// The member context of a stored decision's lead, as read now.
    pub(super) fn member_for<'a>(
        &'a self,
        rules: Option<&'a crate::domain::binding::BindingRuleSet>,
        snap: &Snapshot,
        d: &'a Decision,
        now: i64,
    ) -> Result<Option<bind::Member<'a>>, StorageError> {
        match (d.lead.member_id.as_deref(), rules) {
            (Some(m), Some(rules)) => Ok(Some(bind::Member::read(
                self.store.as_ref(),
                m,
                rules,
                &snap.network,
                &d.lead,
                now,
            )?)),
            _ => Ok(None),
        }
    }

    /// Moves on an offer whose time is up (see [`Engine::move_on`]).
    fn expire(
        &self,
        snap: &Snapshot,
        d: &Arc<Decision>,
        now: i64,
    ) -> Result<Option<Arc<Decision>>, RouteError> {
        self.move_on(
            snap,
            d,
            OfferAction::Expired,
            ("expiry", None),
            "not answered in time",
            now,
        )
    }

    /// Gives back the holder's capacity and offers the lead to the next candidate, or exhausts
    /// it: one commit that replaces `d` at its version. `None` when `d` changed first (someone
    /// answered or moved it): nothing was written.
    fn move_on(
        &self,
        snap: &Snapshot,
        d: &Arc<Decision>,
        action: OfferAction,
        actor: (&str, Option<&str>),
        reason: &str,
        now: i64,
    ) -> Result<Option<Arc<Decision>>, RouteError> {
        let Some(offer) = d.offer.clone() else {
            return Ok(Some(d.clone()));
        };
        let Some((store_id, guide_id)) = d.assigned.clone() else {
            return Ok(Some(d.clone()));
        };
        let net = &snap.network;
        let day = business_day(now, self.cfg.time_zone);
        let bindings = self.bindings();
        let member = self.member_for(bindings.for_day(day), snap, d, now)?;
        let release = Some((&*guide_id, d.day));
        // The holder's event opens every version of the commit.
        let chain_of = || {
            member.as_ref().map(|m| {
                let mut c = Chain::new(m.member_id, m.head.clone());
                self.offer_event(&mut c, d, action, (&store_id, &guide_id), actor, reason);
                c
            })
        };
        let mut declined = offer.declined.clone();
        declined.push(guide_id.clone());
        let hop = offer.hop + 1;
        let placed = if offer.hop < self.cfg.offers.max_hops
            && let Ok(valid) = validate(net, &d.lead, now)
        {
            let stages = bind::plan(net, &d.lead, member.as_ref(), now);
            self.pick(snap, &d.lead, &valid, &stages, &declined, day, |p| {
                let next = Arc::new(Decision {
                    assigned: Some((net.store(p.store).id.clone(), net.guide(p.guide).id.clone())),
                    unrouted: None,
                    score: p.score,
                    reasons: p.reasons.with(Reasons::REOFFERED),
                    alternatives: p.alternatives,
                    propensity: p.propensity,
                    level: Some(p.level),
                    decided_at_ms: now,
                    day,
                    replayed: false,
                    offer: Some(Offer {
                        status: OfferStatus::Open,
                        expires_at_ms: now + i64::from(self.cfg.offers.expire_secs) * 1000,
                        hop,
                        declined: declined.clone(),
                        queued_store_id: None,
                    }),
                    version: d.version + 1,
                    ..Decision::clone(d)
                });
                let mut chain = chain_of();
                if let Some(c) = chain.as_mut() {
                    let (s, g) = next.assigned.clone().unwrap_or_default();
                    self.offer_event(
                        c,
                        &next,
                        OfferAction::Offered,
                        (&s, &g),
                        ("route", None),
                        &format!("re-offered after {} {}", guide_id, action.as_str()),
                    );
                }
                Ok(self.commit(
                    snap,
                    &next,
                    Some(d.version),
                    Some((p.guide, p.capacity)),
                    release,
                    chain.as_ref(),
                )?)
            })?
        } else {
            Placed::Nowhere(Unrouted::OffersExhausted)
        };
        let next = match placed {
            Placed::Done(next) => next,
            Placed::Again(_) => return Ok(None),
            Placed::Nowhere(_) => {
                let queued = (self.cfg.offers.on_exhausted == OnExhausted::StoreQueue)
                    .then(|| store_id.clone());
                let next = Arc::new(Decision {
                    assigned: None,
                    unrouted: Some(Unrouted::OffersExhausted),
                    reasons: Reasons::OFFERS_EXHAUSTED,
                    alternatives: vec![],
                    decided_at_ms: now,
                    replayed: false,
                    offer: Some(Offer {
                        status: OfferStatus::Exhausted,
                        hop: offer.hop,
                        declined,
                        queued_store_id: queued.clone(),
                        ..offer
                    }),
                    version: d.version + 1,
                    ..Decision::clone(d)
                });
                let mut chain = chain_of();
                if let Some(c) = chain.as_mut() {
                    let why = match &queued {
                        Some(s) => format!("no guide accepted: queued at store {s}"),
                        None => "no guide accepted: unrouted".to_string(),
                    };
                    self.offer_event(
                        c,
                        &next,
                        OfferAction::Exhausted,
                        (queued.as_deref().unwrap_or_default(), ""),
                        actor,
                        &why,
                    );
                }
                match self.commit(snap, &next, Some(d.version), None, release, chain.as_ref())? {
                    Attempt::Done(next) => next,
                    Attempt::Full | Attempt::Again(_) => return Ok(None),
                }
            }
        };
        self.sync()?;
        Ok(Some(next))
    }
}

impl Engine {
    /// The stored decision of an offered lead, its offer, and the guide holding it (empty when
    /// none). `no_offer` ends the message when the lead was not routed as an offer.
    pub(super) fn stored_offer(
        &self,
        lead_id: &str,
        no_offer: &str,
    ) -> Result<(Arc<Decision>, Offer, String), OfferError> {
        let d = self
            .store
            .decision(lead_id)?
            .ok_or_else(|| OfferError::NotFound(format!("lead_id: no decision for {lead_id:?}")))?;
        let Some(offer) = d.offer.clone() else {
            return Err(OfferError::Precondition(format!(
                "lead {lead_id:?} was not routed as an offer{no_offer}"
            )));
        };
        let holder = d.guide_id().unwrap_or_default().to_string();
        Ok((d, offer, holder))
    }
}

/// The fields of a guide's answer or claim: the ids, and a reason of at most
/// [`MAX_REASON_LEN`] bytes.
pub(super) fn check_answer(lead_id: &str, guide_id: &str, reason: &str) -> Result<(), OfferError> {
    check_id("lead_id", lead_id).map_err(OfferError::Invalid)?;
    check_id("guide_id", guide_id).map_err(OfferError::Invalid)?;
    if reason.len() > MAX_REASON_LEN {
        return Err(OfferError::Invalid(FieldError::new(
            "reason",
            format!(
                "must be at most {MAX_REASON_LEN} bytes, got {}",
                reason.len()
            ),
        )));
    }
    Ok(())
}

/// How long a sweeper holds the offers it claimed before another may take them over.
pub const OFFER_LEASE_MS: i64 = 30_000;
