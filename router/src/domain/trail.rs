//! A member's attribution trail (归因轨迹): append-only events, each hash-chained to the one before.
//!
//! An event is stored and exported as one line of canonical JSON (the field order of
//! [`TrailEvent`]). Its `hash` is SHA-256 over `prev_hash`, a newline, and the canonical JSON of the
//! event without `hash`; the first event of a trail has a `prev_hash` of 64 zeros. Changing,
//! removing or reordering any event breaks every hash after it, which [`verify_chain`] reports.
//!
//! Money is integer cents (`i64`); time is Unix milliseconds.

use super::Channel;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// `prev_hash` of a trail's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown channel {s:?}")))
    }
}

/// What kind of touch (触点) a member had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TouchKind {
    /// Opened a guide's share link (needs `guide_id`).
    ShareLinkClick,
    /// Watched a livestream; `guide_id` is the host guide (needs `guide_id`).
    LivestreamView,
    /// Visited a store (needs `store_id`).
    StoreVisit,
    /// Visited the brand's e-commerce shop.
    EcommerceVisit,
    /// Claimed a coupon, from a guide or store when one is named.
    CouponClaim,
    /// Chatted with a guide (needs `guide_id`).
    GuideChat,
    /// Bound a guide as their own guide (专属导购), e.g. added them on WeCom (needs `guide_id`).
    Binding,
}

impl TouchKind {
    pub const ALL: [TouchKind; 7] = [
        TouchKind::ShareLinkClick,
        TouchKind::LivestreamView,
        TouchKind::StoreVisit,
        TouchKind::EcommerceVisit,
        TouchKind::CouponClaim,
        TouchKind::GuideChat,
        TouchKind::Binding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TouchKind::ShareLinkClick => "SHARE_LINK_CLICK",
            TouchKind::LivestreamView => "LIVESTREAM_VIEW",
            TouchKind::StoreVisit => "STORE_VISIT",
            TouchKind::EcommerceVisit => "ECOMMERCE_VISIT",
            TouchKind::CouponClaim => "COUPON_CLAIM",
            TouchKind::GuideChat => "GUIDE_CHAT",
            TouchKind::Binding => "BINDING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the kind must name a guide.
    pub fn needs_guide(self) -> bool {
        matches!(
            self,
            TouchKind::ShareLinkClick
                | TouchKind::LivestreamView
                | TouchKind::GuideChat
                | TouchKind::Binding
        )
    }

    /// Whether the kind must name a store.
    pub fn needs_store(self) -> bool {
        matches!(self, TouchKind::StoreVisit)
    }
}

/// A touch as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Touch {
    /// Caller-chosen idempotency key.
    pub touch_id: String,
    pub kind: TouchKind,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide_id: Option<String>,
    /// The store named by the caller, or the guide's store when only a guide was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The routed lead this touch followed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// The caller's key that recorded it (absent when the service runs without keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
}

/// An order's facts, as sent by the caller: what idempotency compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderFacts {
    pub order_id: String,
    pub amount_cents: i64,
    pub paid_channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilling_store_id: Option<String>,
    /// The guide who shared the product or served the sale (服务导购), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_guide_id: Option<String>,
    /// Guides credited for the referral, nearest first; only two levels earn credit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrer_guide_ids: Vec<String>,
}

/// The ownership rule that decided an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OwnershipRule {
    /// The member's bound guide, within the protection period.
    BoundGuide,
    /// The guide who shared or served the sale (`sharing_guide_id`).
    ServiceGuide,
    /// The last qualifying touch within the look-back window.
    LastTouch,
    /// Nobody earned it: the channel where the order was paid.
    PaidChannel,
}

impl OwnershipRule {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnershipRule::BoundGuide => "BOUND_GUIDE",
            OwnershipRule::ServiceGuide => "SERVICE_GUIDE",
            OwnershipRule::LastTouch => "LAST_TOUCH",
            OwnershipRule::PaidChannel => "PAID_CHANNEL",
        }
    }
}

/// Who an order counts for (业绩归属), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ownership {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// Set when the order went to its paid channel (no guide or store earned it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub rule: OwnershipRule,
    /// Version of the ownership rule set that decided.
    pub rule_version: String,
    /// `seq` of the trail events that decided (empty when the order's own fields did).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deciding_events: Vec<u64>,
    /// One sentence a reviewer can read.
    pub explanation: String,
}

/// The part an entry's party plays in a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The order's owner: front guide (前端导购), owning store or paid channel.
    Owner,
    /// The store that fulfilled the order.
    FulfillingStore,
    /// The brand's O2O centre.
    O2oCentre,
    /// First referral level.
    Referrer1,
    /// Second referral level (the last that earns credit).
    Referrer2,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::FulfillingStore,
        Role::O2oCentre,
        Role::Referrer1,
        Role::Referrer2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::FulfillingStore => "fulfilling_store",
            Role::O2oCentre => "o2o_centre",
            Role::Referrer1 => "referrer_1",
            Role::Referrer2 => "referrer_2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One ledger line: a party's credit (positive) or reversal (negative) for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// `guide:ID`, `store:ID`, `channel:NAME` or `o2o:centre`.
    pub party: String,
    pub role: Role,
    pub amount_cents: i64,
}

/// What an order event holds: the facts, their owner and the split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRecord {
    pub facts: OrderFacts,
    /// The sharing guide's store when the order was recorded (what the service-guide rule
    /// credits), so that ownership can be recomputed without the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_guide_store_id: Option<String>,
    /// Guides the rules would have credited who had left the brand when the order was
    /// recorded: never credited (see `OwnershipRuleSet::departed`), kept so that ownership and
    /// split can be recomputed without the network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departed_guide_ids: Vec<String>,
    pub ownership: Ownership,
    /// Version of the split policy applied.
    pub split_version: String,
    /// The role that took rounding leftovers; refunds reverse through it.
    pub rounding_role: Role,
    /// Sums exactly to `facts.amount_cents`.
    pub entries: Vec<LedgerEntry>,
    /// The caller's key that recorded it (absent when the service runs without keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
}

/// A refund and its reversing entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRecord {
    pub refund_id: String,
    pub order_id: String,
    pub amount_cents: i64,
    /// `seq` of the order's event in the same trail.
    pub order_seq: u64,
    /// Negative amounts summing exactly to `-amount_cents`.
    pub entries: Vec<LedgerEntry>,
    /// The caller's key that recorded it (absent when the service runs without keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<String>,
}

/// A compensating entry set: an order's owner credit moves from one party to another (a
/// dispute's reassignment). Never an edit: the order's own entries stay as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRecord {
    /// Idempotency key, e.g. `dispute:D1`.
    pub adjustment_id: String,
    pub order_id: String,
    /// `seq` of the order's event in the same trail.
    pub order_seq: u64,
    /// The owner party before (the order's, or the last adjustment's) and after.
    pub from_party: String,
    pub to_party: String,
    /// Who decided it (a reviewer id) and why.
    pub actor: String,
    pub reason: String,
    /// The reviewer also bound the member to the new owner (a dispute's `correct_binding`):
    /// kept here so that an interrupted resolution is completed as it was decided.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebind: bool,
    /// The owner role's net credit moved: `-x` for `from_party`, `+x` for `to_party`; they sum
    /// to zero. Empty when the owner had no credit left.
    pub entries: Vec<LedgerEntry>,
}

/// The line an export writes after a member's events: how many the member had and the hash of
/// the last, so that a file cut short (events missing at the end of a trail, or whole members
/// after the cut) is reported by `trail verify` rather than passing as a shorter trail.
/// `{"member_head":{"member_id":"m-42","events":17,"head_hash":"…"}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberHead {
    pub member_id: String,
    /// The member's events (the last one's `seq`).
    pub events: u64,
    pub head_hash: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadLine {
    member_head: MemberHead,
}

impl MemberHead {
    const PREFIX: &'static str = "{\"member_head\":";

    /// The head of a trail whose last event is `last`.
    pub fn of(last: &TrailEvent) -> Self {
        Self {
            member_id: last.member_id.clone(),
            events: last.seq,
            head_hash: last.hash.clone(),
        }
    }

    pub fn is_head(line: &str) -> bool {
        line.trim_start().starts_with(Self::PREFIX)
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(&HeadLine {
            member_head: self.clone(),
        })
        .unwrap_or_default()
    }

    pub fn from_line(line: &str) -> Result<Self, String> {
        serde_json::from_str::<HeadLine>(line)
            .map(|h| h.member_head)
            .map_err(|e| format!("not a member head line: {e}"))
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    Touch(Touch),
    Order(Box<OrderRecord>),
    Refund(RefundRecord),
    /// A binding changed (bind, extend, snatch, transfer): see [`super::binding`].
    Binding(super::binding::BindingRecord),
    /// An offer was made, accepted, declined, expired or exhausted: see [`super::offer`].
    Offer(super::offer::OfferRecord),
    /// An order's owner credit moved to another party.
    Adjustment(AdjustmentRecord),
}

impl EventBody {
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Touch(_) => "touch",
            EventBody::Order(_) => "order",
            EventBody::Refund(_) => "refund",
            EventBody::Binding(_) => "binding",
            EventBody::Offer(_) => "offer",
            EventBody::Adjustment(_) => "adjustment",
        }
    }
}

/// One event of a member's trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailEvent {
    pub member_id: String,
    /// 1 for a trail's first event, then +1 per event.
    pub seq: u64,
    /// When it happened, per the caller (Unix ms).
    pub occurred_at_ms: i64,
    /// When the service recorded it (Unix ms, the service's clock).
    pub recorded_at_ms: i64,
    pub body: EventBody,
    /// Hex SHA-256 of the previous event ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this event (see the module docs).
    pub hash: String,
}

/// The part of an event its hash covers: everything but `hash`, in the same order.
#[derive(Serialize)]
struct Hashed<'a> {
    member_id: &'a str,
    seq: u64,
    occurred_at_ms: i64,
    recorded_at_ms: i64,
    body: &'a EventBody,
    prev_hash: &'a str,
}

#[cfg(test)]
impl TrailEvent {
    /// An event outside any chain (empty hashes), for tests of what reads trails.
    pub(crate) fn unchained(member: &str, seq: u64, at: i64, body: EventBody) -> Self {
        Self {
            member_id: member.into(),
            seq,
            occurred_at_ms: at,
            recorded_at_ms: at,
            body,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

impl TrailEvent {
    /// Builds the event that follows `prev` (`None` for a trail's first), with its hash.
    pub fn next(
        member_id: &str,
        prev: Option<(u64, &str)>,
        occurred_at_ms: i64,
        recorded_at_ms: i64,
        body: EventBody,
    ) -> Self {
        Self::next_with_line(member_id, prev, occurred_at_ms, recorded_at_ms, body).0
    }

    /// As [`TrailEvent::next`], with the event's canonical line, serialised once for both.
    pub fn next_with_line(
        member_id: &str,
        prev: Option<(u64, &str)>,
        occurred_at_ms: i64,
        recorded_at_ms: i64,
        body: EventBody,
    ) -> (Self, String) {
        let (seq, prev_hash) = match prev {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, GENESIS.to_string()),
        };
        let mut e = Self {
            member_id: member_id.to_string(),
            seq,
            occurred_at_ms,
            recorded_at_ms,
            body,
            prev_hash,
            hash: String::new(),
        };
        let mut json = e.hashed_json();
        e.hash = Self::digest(&e.prev_hash, &json);
        // The line is the hashed object with `hash` appended as its last member.
        json.pop();
        json.extend_from_slice(b",\"hash\":\"");
        json.extend_from_slice(e.hash.as_bytes());
        json.extend_from_slice(b"\"}");
        let line = String::from_utf8(json).unwrap_or_else(|_| e.to_line());
        (e, line)
    }

    /// The canonical JSON of everything but `hash`.
    fn hashed_json(&self) -> Vec<u8> {
        let hashed = Hashed {
            member_id: &self.member_id,
            seq: self.seq,
            occurred_at_ms: self.occurred_at_ms,
            recorded_at_ms: self.recorded_at_ms,
            body: &self.body,
            prev_hash: &self.prev_hash,
        };
        // Serializing plain structs and strings cannot fail.
        serde_json::to_vec(&hashed).unwrap_or_default()
    }

    fn digest(prev_hash: &str, hashed_json: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(hashed_json);
        hex::encode(h.finalize())
    }

    /// The hash this event's content gives.
    pub fn compute_hash(&self) -> String {
        Self::digest(&self.prev_hash, &self.hashed_json())
    }

    /// The canonical JSON line (no trailing newline): how the event is stored and exported.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A line of an export: an event, or `None` for a member's head line ([`MemberHead`]).
    pub fn from_export_line(line: &str) -> Result<Option<Self>, String> {
        if MemberHead::is_head(line) {
            MemberHead::from_line(line).map(|_| None)
        } else {
            Self::from_line(line).map(Some)
        }
    }

    /// Parses one line; unknown fields are refused (they would not be covered by the hash).
    pub fn from_line(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    /// The caller's key that recorded the event (touches, orders, refunds recorded with keys).
    pub fn recorded_by(&self) -> Option<&str> {
        match &self.body {
            EventBody::Touch(t) => t.recorded_by.as_deref(),
            EventBody::Order(o) => o.recorded_by.as_deref(),
            EventBody::Refund(r) => r.recorded_by.as_deref(),
            _ => None,
        }
    }

    /// The order this event records, when it is an order.
    pub fn order(&self) -> Option<&OrderRecord> {
        match &self.body {
            EventBody::Order(o) => Some(&**o),
            _ => None,
        }
    }

    pub fn refund(&self) -> Option<&RefundRecord> {
        match &self.body {
            EventBody::Refund(r) => Some(r),
            _ => None,
        }
    }

    pub fn touch(&self) -> Option<&Touch> {
        match &self.body {
            EventBody::Touch(t) => Some(t),
            _ => None,
        }
    }

    pub fn adjustment(&self) -> Option<&AdjustmentRecord> {
        match &self.body {
            EventBody::Adjustment(a) => Some(a),
            _ => None,
        }
    }

    pub fn offer(&self) -> Option<&super::offer::OfferRecord> {
        match &self.body {
            EventBody::Offer(o) => Some(o),
            _ => None,
        }
    }

    pub fn binding(&self) -> Option<&super::binding::BindingRecord> {
        match &self.body {
            EventBody::Binding(b) => Some(b),
            _ => None,
        }
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub member_id: String,
    pub seq: u64,
    /// 1-based position of the event among those checked (a file's line number when checking
    /// an export of one trail).
    pub position: usize,
    pub why: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "member {:?} event seq {} (item {}): {}",
            self.member_id, self.seq, self.position, self.why
        )
    }
}

/// Checks events of any number of trails, given in trail order (each member's events in `seq`
/// order; members may interleave). Returns the first event whose chain breaks.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    heads: std::collections::HashMap<String, (u64, String)>,
    checked: usize,
    /// Each member's events come together (a store scan): only the current member is kept.
    grouped: bool,
    members: usize,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// For input where each member's events are contiguous, as a store scan gives them: memory
    /// holds one member at a time.
    pub fn grouped() -> Self {
        Self {
            grouped: true,
            ..Self::default()
        }
    }

    /// Events checked so far.
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// Members seen so far.
    pub fn members(&self) -> usize {
        self.members
    }

    pub fn check(&mut self, e: &TrailEvent) -> Result<(), ChainBreak> {
        self.checked += 1;
        if !self.heads.contains_key(&e.member_id) {
            self.members += 1;
            if self.grouped {
                self.heads.clear();
            }
        }
        let brk = |why: String| ChainBreak {
            member_id: e.member_id.clone(),
            seq: e.seq,
            position: self.checked,
            why,
        };
        let (want_seq, want_prev) = match self.heads.get(&e.member_id) {
            Some((seq, hash)) => (seq + 1, hash.as_str()),
            None => (1, GENESIS),
        };
        if e.seq != want_seq {
            return Err(brk(format!(
                "seq is {}, expected {want_seq} (an event is missing or out of order)",
                e.seq
            )));
        }
        if e.prev_hash != want_prev {
            return Err(brk(format!(
                "prev_hash {} does not match the previous event's hash {want_prev}",
                e.prev_hash
            )));
        }
        let actual = e.compute_hash();
        if e.hash != actual {
            return Err(brk(format!(
                "hash {} does not match the event's content (content hashes to {actual}): the event was altered",
                e.hash
            )));
        }
        self.heads
            .insert(e.member_id.clone(), (e.seq, e.hash.clone()));
        Ok(())
    }
}

/// Checks whole trails; see [`ChainVerifier`].
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a TrailEvent>,
) -> Result<usize, ChainBreak> {
    let mut v = ChainVerifier::new();
    for e in events {
        v.check(e)?;
    }
    Ok(v.checked())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(id: &str) -> EventBody {
        EventBody::Touch(Touch {
            touch_id: id.into(),
            kind: TouchKind::ShareLinkClick,
            channel: Channel::MiniProgram,
            guide_id: Some("G1".into()),
            store_id: Some("S1".into()),
            lead_id: None,
            recorded_by: None,
        })
    }

    fn chain(n: usize) -> Vec<TrailEvent> {
        let mut out: Vec<TrailEvent> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let e = TrailEvent::next(
                "M1",
                prev,
                1000 + i as i64,
                2000 + i as i64,
                touch(&format!("T{i}")),
            );
            out.push(e);
        }
        out
    }

    #[test]
    fn a_chain_verifies_and_round_trips_through_its_line() {
        let c = chain(5);
        assert_eq!(c[0].prev_hash, GENESIS);
        assert_eq!(c[1].prev_hash, c[0].hash);
        assert_eq!(verify_chain(&c).unwrap(), 5);
        for e in &c {
            // The line built with the hash is the event's serialisation.
            let (again, line) = TrailEvent::next_with_line(
                &e.member_id,
                (e.seq > 1).then(|| (e.seq - 1, e.prev_hash.as_str())),
                e.occurred_at_ms,
                e.recorded_at_ms,
                e.body.clone(),
            );
            assert_eq!(&again, e);
            assert_eq!(line, e.to_line());
            let back = TrailEvent::from_line(&e.to_line()).unwrap();
            assert_eq!(&back, e);
            assert_eq!(back.compute_hash(), e.hash);
        }
    }

    #[test]
    fn altering_removing_or_reordering_is_named() {
        let mut c = chain(5);
        if let EventBody::Touch(t) = &mut c[2].body {
            t.guide_id = Some("G2".into());
        }
        let e = verify_chain(&c).unwrap_err();
        assert_eq!((e.seq, e.position), (3, 3));
        assert!(e.why.contains("altered"), "{e}");

        let mut c = chain(5);
        c.remove(1);
        let e = verify_chain(&c).unwrap_err();
        assert_eq!(e.seq, 3);
        assert!(e.why.contains("missing"), "{e}");

        // Re-hashing an altered event does not help: the next event's prev_hash names the old one.
        let mut c = chain(5);
        c[2].occurred_at_ms += 1;
        c[2].hash = c[2].compute_hash();
        let e = verify_chain(&c).unwrap_err();
        assert_eq!(e.seq, 4);
        assert!(e.why.contains("prev_hash"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused_on_read() {
        let c = chain(1);
        let line = c[0].to_line().replacen('{', "{\"extra\":1,", 1);
        assert!(TrailEvent::from_line(&line).unwrap_err().contains("extra"));
    }

    #[test]
    fn interleaved_members_are_checked_separately() {
        let a = chain(3);
        let mut b = chain(3);
        for e in &mut b {
            e.member_id = "M2".into();
        }
        // Re-chain b under its own member id.
        let mut b2: Vec<TrailEvent> = Vec::new();
        for e in b {
            let prev = b2.last().map(|p| (p.seq, p.hash.as_str()));
            b2.push(TrailEvent::next(
                "M2",
                prev,
                e.occurred_at_ms,
                e.recorded_at_ms,
                e.body,
            ));
        }
        let mixed = [&a[0], &b2[0], &a[1], &b2[1], &b2[2], &a[2]];
        let mut v = ChainVerifier::new();
        for e in mixed {
            v.check(e).unwrap();
        }
        assert_eq!((v.checked(), v.members()), (6, 2));
    }
}
