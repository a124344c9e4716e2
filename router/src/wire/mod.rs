//! The mapping between domain types and the contract's messages, in one place: the server uses it
//! for requests and replies, the store for its record format.

pub mod attribution;
pub mod catalog;
pub mod guides;

use crate::domain::binding::{BindingChange, BindingState, ReferralOutcome, RouteBinding};
use crate::domain::offer::{Offer, OfferStatus};
use crate::domain::{
    Alternative, Channel, Day, Decision, FieldError, Interest, Lead, Level, Location, Reasons,
    Unrouted,
};
use leadrouter_proto::Timestamp;
use leadrouter_proto::v1 as pb;

/// Newest accepted `occurred_at` (year 9999) and oldest (year 2000), in Unix seconds.
const MAX_SECONDS: i64 = 253_402_300_799;
const MIN_SECONDS: i64 = 946_684_800;

pub fn channel_from_pb(v: i32) -> Result<Channel, FieldError> {
    match pb::Channel::try_from(v) {
        Ok(pb::Channel::MiniProgram) => Ok(Channel::MiniProgram),
        Ok(pb::Channel::Livestream) => Ok(Channel::Livestream),
        Ok(pb::Channel::Ecommerce) => Ok(Channel::Ecommerce),
        Ok(pb::Channel::Partner) => Ok(Channel::Partner),
        Ok(pb::Channel::Booking) => Ok(Channel::Booking),
        Ok(pb::Channel::Community) => Ok(Channel::Community),
        Ok(pb::Channel::StoreQr) => Ok(Channel::StoreQr),
        Ok(pb::Channel::Unspecified) => Err(FieldError::new(
            "channel",
            "must be set (CHANNEL_UNSPECIFIED is not a channel)",
        )),
        Err(_) => Err(FieldError::new(
            "channel",
            format!("unknown enum value {v}"),
        )),
    }
}

pub fn channel_to_pb(c: Channel) -> pb::Channel {
    match c {
        Channel::MiniProgram => pb::Channel::MiniProgram,
        Channel::Livestream => pb::Channel::Livestream,
        Channel::Ecommerce => pb::Channel::Ecommerce,
        Channel::Partner => pb::Channel::Partner,
        Channel::Booking => pb::Channel::Booking,
        Channel::Community => pb::Channel::Community,
        Channel::StoreQr => pb::Channel::StoreQr,
    }
}

/// As [`timestamp_to_ms`] for a field that must be set.
pub fn required_time(field: &str, t: Option<&Timestamp>) -> Result<i64, FieldError> {
    match t {
        Some(t) => timestamp_to_ms(field, t),
        None => Err(FieldError::new(field, "must be set")),
    }
}

/// The bound of a query window: any instant from 1970 to 9999, so that a window around the
/// first accepted day (2000-01-01 in any time zone) can be asked for.
pub fn window_time(field: &str, t: Option<&Timestamp>) -> Result<i64, FieldError> {
    let t = t.ok_or_else(|| FieldError::new(field, "must be set"))?;
    checked_ms(field, t, 0, "1970-01-01")
}

/// Checks a timestamp's own ranges and converts it to Unix milliseconds.
pub fn timestamp_to_ms(field: &str, t: &Timestamp) -> Result<i64, FieldError> {
    checked_ms(field, t, MIN_SECONDS, "2000-01-01")
}

fn checked_ms(field: &str, t: &Timestamp, min: i64, min_day: &str) -> Result<i64, FieldError> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(FieldError::new(
            format!("{field}.nanos"),
            format!("must be in 0..1000000000, got {}", t.nanos),
        ));
    }
    if !(min..=MAX_SECONDS).contains(&t.seconds) {
        return Err(FieldError::new(
            format!("{field}.seconds"),
            format!(
                "must lie between {min_day} and 9999-12-31, got {}",
                t.seconds
            ),
        ));
    }
    Ok(unchecked_ms(t))
}

fn unchecked_ms(t: &Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

pub fn ms_to_timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A request as a domain lead: checks what the message's types leave open (enums, timestamps,
/// coordinates); the engine checks the rest against the network.
pub fn lead_from_pb(r: pb::RouteRequest) -> Result<Lead, FieldError> {
    let channel = channel_from_pb(r.channel)?;
    let location = r
        .location
        .map(|l| Location::new(l.lat, l.lon, "location"))
        .transpose()?;
    let occurred_at_ms = required_time("occurred_at", r.occurred_at.as_ref())?;
    Ok(Lead {
        lead_id: r.lead_id,
        member_id: r.member_id,
        channel,
        region_code: r.region_code,
        location,
        interests: r
            .interests
            .into_iter()
            .map(|i| Interest {
                category: i.category,
                weight: i.weight,
            })
            .collect(),
        referrer_guide_id: r.referrer_guide_id,
        occurred_at_ms,
    })
}

pub fn lead_to_pb(l: &Lead) -> pb::RouteRequest {
    pb::RouteRequest {
        lead_id: l.lead_id.clone(),
        member_id: l.member_id.clone(),
        channel: channel_to_pb(l.channel) as i32,
        region_code: l.region_code.clone(),
        location: l.location.map(|l| pb::Location {
            lat: l.lat,
            lon: l.lon,
        }),
        interests: l
            .interests
            .iter()
            .map(|i| pb::Interest {
                category: i.category.clone(),
                weight: i.weight,
            })
            .collect(),
        referrer_guide_id: l.referrer_guide_id.clone(),
        occurred_at: Some(ms_to_timestamp(l.occurred_at_ms)),
        max_alternatives: None,
    }
}

fn unrouted_to_pb(u: Option<Unrouted>) -> pb::UnroutedReason {
    match u {
        None => pb::UnroutedReason::Unspecified,
        Some(Unrouted::NoCandidate) => pb::UnroutedReason::NoCandidate,
        Some(Unrouted::AllAtCapacity) => pb::UnroutedReason::AllAtCapacity,
        Some(Unrouted::NoActiveGuide) => pb::UnroutedReason::NoActiveGuide,
        Some(Unrouted::OffersExhausted) => pb::UnroutedReason::OffersExhausted,
    }
}

fn unrouted_from_pb(v: i32) -> Option<Unrouted> {
    match pb::UnroutedReason::try_from(v) {
        Ok(pb::UnroutedReason::NoCandidate) => Some(Unrouted::NoCandidate),
        Ok(pb::UnroutedReason::AllAtCapacity) => Some(Unrouted::AllAtCapacity),
        Ok(pb::UnroutedReason::NoActiveGuide) => Some(Unrouted::NoActiveGuide),
        Ok(pb::UnroutedReason::OffersExhausted) => Some(Unrouted::OffersExhausted),
        _ => None,
    }
}

pub fn decision_to_pb(d: &Decision) -> pb::RouteResponse {
    decision_to_pb_with(d, usize::MAX)
}

/// As [`decision_to_pb`] with at most `max_alternatives` alternatives.
pub fn decision_to_pb_with(d: &Decision, max_alternatives: usize) -> pb::RouteResponse {
    let (store_id, guide_id) = match (&d.assigned, &d.offer) {
        (Some((s, g)), _) => (s.to_string(), g.to_string()),
        (None, Some(o)) => (
            o.queued_store_id.as_deref().unwrap_or_default().to_string(),
            String::new(),
        ),
        (None, None) => Default::default(),
    };
    let offer = d.offer.as_ref();
    pb::RouteResponse {
        decision_id: d.decision_id.clone(),
        lead_id: d.lead.lead_id.clone(),
        store_id,
        guide_id,
        policy: d.policy.clone(),
        policy_version: d.policy_version.clone(),
        score: d.score,
        reasons: d.reasons.names().map(str::to_string).collect(),
        alternatives: d
            .alternatives
            .iter()
            .take(max_alternatives)
            .map(|a| pb::Alternative {
                store_id: a.store_id.to_string(),
                guide_id: a.guide_id.to_string(),
                score: a.score,
                reasons: a.reasons.names().map(str::to_string).collect(),
                propensity: a.propensity,
            })
            .collect(),
        propensity: d.propensity,
        offer_expires_at: offer.map(|o| ms_to_timestamp(o.expires_at_ms)),
        replayed: d.replayed,
        unrouted_reason: unrouted_to_pb(d.unrouted) as i32,
        candidate_level: d.level.map(|l| l.as_str().to_string()).unwrap_or_default(),
        decided_at: Some(ms_to_timestamp(d.decided_at_ms)),
        business_day: d.day.to_string(),
        binding: d.binding.as_ref().map(route_binding_to_pb),
        offer_status: match offer.map(|o| o.status) {
            None => pb::OfferStatus::OfferNone,
            Some(OfferStatus::Open) => pb::OfferStatus::OfferOpen,
            Some(OfferStatus::Accepted) => pb::OfferStatus::OfferAccepted,
            Some(OfferStatus::Exhausted) => pb::OfferStatus::OfferExhausted,
            Some(OfferStatus::Claimed) => pb::OfferStatus::OfferClaimed,
        } as i32,
        offer_hop: offer.map_or(0, |o| o.hop),
        declined_guide_ids: offer
            .map(|o| o.declined.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default(),
        model_versions: d.model_versions.clone(),
        experiment: d.arm.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
        arm: d.arm.as_ref().map(|a| a.1.clone()).unwrap_or_default(),
    }
}

fn referral_to_pb(o: Option<ReferralOutcome>) -> pb::ReferralOutcome {
    match o {
        None => pb::ReferralOutcome::ReferralNone,
        Some(ReferralOutcome::Bound) => pb::ReferralOutcome::ReferralBound,
        Some(ReferralOutcome::Extended) => pb::ReferralOutcome::ReferralExtended,
        Some(ReferralOutcome::Snatched) => pb::ReferralOutcome::ReferralSnatched,
        Some(ReferralOutcome::Kept) => pb::ReferralOutcome::ReferralKept,
        Some(ReferralOutcome::Ignored) => pb::ReferralOutcome::ReferralIgnored,
    }
}

fn referral_from_pb(v: i32) -> Option<ReferralOutcome> {
    match pb::ReferralOutcome::try_from(v).ok()? {
        pb::ReferralOutcome::ReferralNone => None,
        pb::ReferralOutcome::ReferralBound => Some(ReferralOutcome::Bound),
        pb::ReferralOutcome::ReferralExtended => Some(ReferralOutcome::Extended),
        pb::ReferralOutcome::ReferralSnatched => Some(ReferralOutcome::Snatched),
        pb::ReferralOutcome::ReferralKept => Some(ReferralOutcome::Kept),
        pb::ReferralOutcome::ReferralIgnored => Some(ReferralOutcome::Ignored),
    }
}

pub fn route_binding_to_pb(b: &RouteBinding) -> pb::RouteBinding {
    let state = b.state.as_ref();
    pb::RouteBinding {
        referral: referral_to_pb(b.referral) as i32,
        change: b.change.map(|c| c.as_str().to_string()).unwrap_or_default(),
        guide_id: state.map(|s| s.guide_id.clone()).unwrap_or_default(),
        store_id: state.map(|s| s.store_id.clone()).unwrap_or_default(),
        expires_at: state.and_then(|s| s.expires_at_ms).map(ms_to_timestamp),
        protected_until: state.map(|s| ms_to_timestamp(s.protected_until_ms)),
        rule_version: state.map(|s| s.rule_version.clone()).unwrap_or_default(),
        event_seq: b.event_seq.unwrap_or(0),
        why: b.why.clone(),
        decided_by_rule_version: b.decided_by.clone(),
    }
}

/// The inverse of [`route_binding_to_pb`] (stored decisions).
pub fn route_binding_from_pb(b: pb::RouteBinding) -> RouteBinding {
    RouteBinding {
        referral: referral_from_pb(b.referral),
        change: BindingChange::parse(&b.change),
        state: (!b.guide_id.is_empty()).then(|| BindingState {
            guide_id: b.guide_id,
            store_id: b.store_id,
            since_ms: 0,
            expires_at_ms: b.expires_at.map(|t| unchecked_ms(&t)),
            protected_until_ms: b.protected_until.map_or(0, |t| unchecked_ms(&t)),
            rule_version: b.rule_version,
        }),
        event_seq: (b.event_seq > 0).then_some(b.event_seq),
        why: b.why,
        decided_by: b.decided_by_rule_version,
    }
}

/// The inverse of [`decision_to_pb`] given the stored request and day.
pub fn decision_from_pb(r: pb::RouteResponse, lead: Lead, day: Day) -> Decision {
    let status = match pb::OfferStatus::try_from(r.offer_status) {
        Ok(pb::OfferStatus::OfferOpen) => Some(OfferStatus::Open),
        Ok(pb::OfferStatus::OfferAccepted) => Some(OfferStatus::Accepted),
        Ok(pb::OfferStatus::OfferExhausted) => Some(OfferStatus::Exhausted),
        Ok(pb::OfferStatus::OfferClaimed) => Some(OfferStatus::Claimed),
        _ => None,
    };
    let offer = status.map(|status| Offer {
        status,
        expires_at_ms: r.offer_expires_at.map_or(0, |t| unchecked_ms(&t)),
        hop: r.offer_hop,
        declined: r
            .declined_guide_ids
            .iter()
            .map(|g| g.as_str().into())
            .collect(),
        queued_store_id: (r.guide_id.is_empty() && !r.store_id.is_empty())
            .then(|| r.store_id.as_str().into()),
    });
    let assigned = if r.guide_id.is_empty() {
        None
    } else {
        Some((r.store_id.into(), r.guide_id.into()))
    };
    Decision {
        decision_id: r.decision_id,
        lead,
        assigned,
        unrouted: unrouted_from_pb(r.unrouted_reason),
        policy: r.policy,
        policy_version: r.policy_version,
        score: r.score,
        reasons: Reasons::from_names(r.reasons.iter().map(String::as_str)),
        alternatives: r
            .alternatives
            .into_iter()
            .map(|a| Alternative {
                store_id: a.store_id.into(),
                guide_id: a.guide_id.into(),
                score: a.score,
                reasons: Reasons::from_names(a.reasons.iter().map(String::as_str)),
                propensity: a.propensity,
            })
            .collect(),
        propensity: r.propensity,
        level: Level::parse(&r.candidate_level),
        decided_at_ms: r.decided_at.map_or(0, |t| unchecked_ms(&t)),
        day,
        replayed: r.replayed,
        binding: r.binding.map(route_binding_from_pb),
        offer,
        model_versions: r.model_versions,
        arm: (!r.experiment.is_empty()).then_some((r.experiment, r.arm)),
        recorded_by: None,
        version: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rules() {
        assert_eq!(channel_from_pb(2).unwrap(), Channel::Livestream);
        assert!(channel_from_pb(0).unwrap_err().rule.contains("must be set"));
        assert_eq!(
            channel_from_pb(99).unwrap_err().rule,
            "unknown enum value 99"
        );
        for c in Channel::ALL {
            assert_eq!(channel_from_pb(channel_to_pb(c) as i32).unwrap(), c);
        }
    }

    #[test]
    fn timestamps() {
        let t = ms_to_timestamp(1_763_900_000_123);
        assert_eq!(timestamp_to_ms("t", &t).unwrap(), 1_763_900_000_123);
        let bad = Timestamp {
            seconds: 1_763_900_000,
            nanos: -1,
        };
        assert_eq!(
            timestamp_to_ms("occurred_at", &bad).unwrap_err().field,
            "occurred_at.nanos"
        );
        let old = Timestamp {
            seconds: 5,
            nanos: 0,
        };
        assert_eq!(
            timestamp_to_ms("occurred_at", &old).unwrap_err().field,
            "occurred_at.seconds"
        );
    }
}
