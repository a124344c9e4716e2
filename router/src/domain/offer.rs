//! Offers: on configured channels a route is an offer to a guide that must be accepted before it
//! expires. A declined or expired offer goes to the next candidate (never back to a guide who had
//! it), up to `max_hops` times, then to the store's queue or unrouted. Capacity is held while an
//! offer is open and released when it is declined or expires.

use super::Channel;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where an offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// With the decision's guide until `expires_at_ms`.
    Open,
    /// Taken by the decision's guide.
    Accepted,
    /// Every hop was declined or expired: queued at a store or unrouted.
    Exhausted,
    /// Taken from its store's queue by a guide of that store (the decision's guide).
    Claimed,
}

impl OfferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Accepted => "accepted",
            Self::Exhausted => "exhausted",
            Self::Claimed => "claimed",
        }
    }
}

/// The offer state a decision carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub status: OfferStatus,
    /// When the open offer lapses (Unix ms); kept after it closes for the record.
    pub expires_at_ms: i64,
    /// 0 for the first offer, +1 per re-offer.
    pub hop: u32,
    /// Guides who declined it or let it expire, in order. It never returns to them.
    pub declined: Vec<Arc<str>>,
    /// When exhausted under `on_exhausted = store_queue`: the store whose queue holds the lead.
    pub queued_store_id: Option<Arc<str>>,
}

/// What happened to an offer: an event in the member's trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferAction {
    Offered,
    Accepted,
    Declined,
    Expired,
    /// No hop left: queued at `store_id` or unrouted.
    Exhausted,
    /// A guide of the store took the lead from its queue.
    Claimed,
}

impl OfferAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offered => "offered",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Claimed => "claimed",
        }
    }
}

/// An offer event's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferRecord {
    pub action: OfferAction,
    pub lead_id: String,
    pub decision_id: String,
    /// The guide the event is about (empty for an exhausted offer without a queue).
    pub guide_id: String,
    pub store_id: String,
    pub hop: u32,
    /// For `offered`: when it lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// `route`, `expiry`, or the guide who answered.
    pub actor: String,
    /// The key that sent the route or the answer (absent on an open server and for expiries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
    pub reason: String,
    /// The offer rules in force, e.g. `expire 300 s; 3 re-offers; then store_queue`.
    pub rule: String,
}

/// What happens when the last hop is declined or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// The lead waits in the queue of the store of the last guide offered.
    StoreQueue,
    /// The lead is unrouted (`OFFERS_EXHAUSTED`).
    Unrouted,
}

/// `[offers]`: which channels route as offers, and how offers move on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfferConfig {
    /// Channels whose routes are offers (e.g. `["LIVESTREAM", "BOOKING"]`). Default none.
    pub channels: Vec<String>,
    /// Seconds a guide has to accept. Default 300.
    pub expire_secs: u32,
    /// Re-offers after the first; the lead is offered to at most `1 + max_hops` guides.
    /// Default 3.
    pub max_hops: u32,
    /// Default `store_queue`.
    pub on_exhausted: OnExhausted,
    /// How often expiries are checked, in milliseconds. Default 500.
    pub sweep_every_ms: u64,
}

impl Default for OfferConfig {
    fn default() -> Self {
        Self {
            channels: vec![],
            expire_secs: 300,
            max_hops: 3,
            on_exhausted: OnExhausted::StoreQueue,
            sweep_every_ms: 500,
        }
    }
}

impl OfferConfig {
    /// The rules in one line, as offer events record them.
    pub fn describe(&self) -> String {
        format!(
            "expire {} s; {} re-offers; then {}",
            self.expire_secs,
            self.max_hops,
            match self.on_exhausted {
                OnExhausted::StoreQueue => "store_queue",
                OnExhausted::Unrouted => "unrouted",
            }
        )
    }

    /// Checks the settings and returns the offer channels.
    pub fn check(&self) -> Result<Vec<Channel>, String> {
        if !(1..=86_400).contains(&self.expire_secs) {
            return Err(format!(
                "offers.expire_secs: must be in 1..=86400, got {}",
                self.expire_secs
            ));
        }
        if self.max_hops > 20 {
            return Err(format!(
                "offers.max_hops: at most 20, got {}",
                self.max_hops
            ));
        }
        if !(10..=60_000).contains(&self.sweep_every_ms) {
            return Err(format!(
                "offers.sweep_every_ms: must be in 10..=60000, got {}",
                self.sweep_every_ms
            ));
        }
        self.channels
            .iter()
            .map(|c| {
                Channel::ALL
                    .into_iter()
                    .find(|k| k.as_str() == c)
                    .ok_or_else(|| {
                        format!(
                            "offers.channels: unknown channel {c:?} (one of {})",
                            Channel::ALL.map(|k| k.as_str()).join(", ")
                        )
                    })
            })
            .collect()
    }
}
