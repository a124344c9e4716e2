//! Attribution (DESIGN §5): members' trails, order ownership, commission splits and the ledger.
//!
//! - [`Attribution::record_touch`] appends a touch to the member's trail (durable within the flush
//!   interval, like routing decisions).
//! - [`Attribution::record_order`] decides the order's owner by the rule set in force
//!   ([`rules`]), splits it by the split policy in force ([`split`]), appends one event holding
//!   all of it, and returns only after the event is flushed to disk (group commit: concurrent
//!   orders share one flush).
//! - [`Attribution::record_refund`] appends proportional reversing entries, durably as well.
//!
//! Every write is idempotent on its caller-chosen id (`touch_id`, `order_id`, `refund_id`): the
//! same id with the same content returns the stored event (`replayed`); with other content it is
//! refused, naming each field that differs. Appends are serialised per member (and per id), so a
//! trail's hash chain has no forks.

pub mod disputes;
pub mod journeys;
pub mod recompute;
pub mod restate;
pub mod rules;
pub mod split;

use crate::domain::binding::{BindingRecord, GuideRef};
use crate::domain::trail::{
    EventBody, LedgerEntry, OrderFacts, OrderRecord, RefundRecord, Touch, TrailEvent,
};
use crate::domain::{Day, FieldError, check_id, check_optional_id};
use crate::engine::{Engine, business_day};
use crate::storage::{Chain, StorageError, TrailKey, Written, append_retrying, for_each_in_trail};
use parking_lot::Mutex;
use rules::OwnershipRuleSet;
use serde::{Deserialize, Serialize};
use split::SplitPolicy;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

const STRIPES: usize = 1024;

/// Parses `YYYY-MM-DD` into a [`Day`].
pub fn parse_date(s: &str) -> Result<Day, String> {
    Day::parse_date(s)
}

/// Settings of attribution (`[attribution]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributionConfig {
    /// Largest accepted order, in cents. Default 100,000,000 (¥1,000,000).
    pub max_order_amount_cents: i64,
    /// How far in the future `occurred_at` may lie (clock skew), in seconds. Default 300, at most
    /// 86,400 (ownership reads history back to a horizon that relies on it).
    pub max_future_secs: u32,
    /// Most earlier events of a member read when deciding ownership (newest first). Default
    /// 10,000.
    pub history_limit: usize,
    /// Ownership rule sets by effective date.
    pub ownership: Vec<OwnershipRuleSet>,
    /// Split policies by effective date.
    pub splits: Vec<SplitPolicy>,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        Self {
            max_order_amount_cents: 100_000_000,
            max_future_secs: 300,
            history_limit: 10_000,
            ownership: vec![OwnershipRuleSet::default()],
            splits: vec![SplitPolicy::default()],
        }
    }
}

/// The checked rule sets and policies, with their first days.
#[derive(Debug, Clone)]
pub struct RuleBook {
    pub ownership: Vec<(Day, OwnershipRuleSet)>,
    pub splits: Vec<(Day, SplitPolicy)>,
    pub history_limit: usize,
}

impl RuleBook {
    pub fn ownership_version(&self, version: &str) -> Option<&OwnershipRuleSet> {
        self.ownership
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.version == version)
    }

    pub fn split_version(&self, version: &str) -> Option<&SplitPolicy> {
        self.splits
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.version == version)
    }
}

impl AttributionConfig {
    /// Checks every key; the message names it.
    pub fn check(&self) -> Result<RuleBook, String> {
        if !(1..=i64::MAX / 100).contains(&self.max_order_amount_cents) {
            return Err(format!(
                "attribution.max_order_amount_cents: must be in 1..={}, got {}",
                i64::MAX / 100,
                self.max_order_amount_cents
            ));
        }
        if self.max_future_secs > 86_400 {
            return Err(format!(
                "attribution.max_future_secs: at most 86400 (a day), got {}",
                self.max_future_secs
            ));
        }
        if !(1..=1_000_000).contains(&self.history_limit) {
            return Err(format!(
                "attribution.history_limit: must be in 1..=1000000, got {}",
                self.history_limit
            ));
        }
        if self.ownership.is_empty() {
            return Err("attribution.ownership: at least one rule set is needed".into());
        }
        if self.splits.is_empty() {
            return Err("attribution.splits: at least one split policy is needed".into());
        }
        let mut ownership = Vec::new();
        let mut seen = HashSet::new();
        for (i, s) in self.ownership.iter().enumerate() {
            let at = format!("attribution.ownership[{i}]");
            let day = s.check(&at)?;
            if !seen.insert(s.version.clone()) {
                return Err(format!("{at}.version: {:?} is used twice", s.version));
            }
            ownership.push((day, s.clone()));
        }
        let mut splits = Vec::new();
        let mut seen = HashSet::new();
        for (i, p) in self.splits.iter().enumerate() {
            let at = format!("attribution.splits[{i}]");
            let day = p.check(&at)?;
            if !seen.insert(p.version.clone()) {
                return Err(format!("{at}.version: {:?} is used twice", p.version));
            }
            splits.push((day, p.clone()));
        }
        Ok(RuleBook {
            ownership,
            splits,
            history_limit: self.history_limit,
        })
    }
}

/// Why an attribution call was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// The id was recorded before with other content.
    #[error("{what} {id:?} was recorded before with other content: {}", differences.join("; "))]
    Conflict {
        what: &'static str,
        id: String,
        differences: Vec<String>,
    },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The request is well-formed but the state does not allow it.
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A touch as received.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchInput {
    pub member_id: String,
    pub touch: Touch,
    pub occurred_at_ms: i64,
}

/// An order as received.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderInput {
    pub member_id: String,
    pub facts: OrderFacts,
    pub occurred_at_ms: i64,
    /// The caller's key (recorded with the order; not compared on a retry).
    pub recorded_by: Option<String>,
}

/// A refund as received; `amount_cents` of `None` refunds what is left.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundInput {
    pub refund_id: String,
    pub order_id: String,
    pub amount_cents: Option<i64>,
    pub occurred_at_ms: i64,
    /// The caller's key (recorded with the refund; not compared on a retry).
    pub recorded_by: Option<String>,
}

/// A reassignment of an order's owner credit (a dispute's outcome).
#[derive(Debug, Clone, PartialEq)]
pub struct ReassignInput {
    /// Idempotency key, e.g. `dispute:D1`.
    pub adjustment_id: String,
    pub order_id: String,
    /// `guide:ID`, `store:ID` or `channel:NAME`.
    pub to_party: String,
    /// The reviewer.
    pub actor: String,
    /// Required: why the owner changes.
    pub reason: String,
    pub occurred_at_ms: i64,
    /// The member is also bound to the new owner (recorded in the adjustment).
    pub rebind: bool,
}

/// A recorded event and whether it was recorded before this call.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub event: TrailEvent,
    pub replayed: bool,
}

/// An order with its refunds, as `GetOwnership` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    pub order: TrailEvent,
    pub refunds: Vec<TrailEvent>,
    /// Compensating entries (reassignments), in trail order.
    pub adjustments: Vec<TrailEvent>,
    /// Per party and role: the order's entries plus every reversal and adjustment.
    pub net: Vec<LedgerEntry>,
    pub refunded_cents: i64,
    /// The party holding the owner credit now.
    pub owner_party: String,
}

/// Which part of a trail to read: events with `seq >= from_seq` whose `occurred_at` lies in
/// `[window.0, window.1)`, at most `limit` (1..=1000).
#[derive(Debug, Clone, PartialEq)]
pub struct TrailQuery {
    pub member_id: String,
    pub from_seq: u64,
    pub window: (Option<i64>, Option<i64>),
    pub limit: usize,
}

/// One ledger line: an order's entry or a refund's reversal, for one party.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerLine {
    pub occurred_at_ms: i64,
    pub member_id: String,
    pub order_id: String,
    /// Set on a refund's reversal.
    pub refund_id: Option<String>,
    /// Set on a compensating entry (a reassignment).
    pub adjustment_id: Option<String>,
    pub entry: LedgerEntry,
}

impl LedgerLine {
    /// About the bytes the line takes on the wire (its strings and a few numbers).
    pub fn size_hint(&self) -> usize {
        32 + self.member_id.len()
            + self.order_id.len()
            + self.refund_id.as_ref().map_or(0, String::len)
            + self.adjustment_id.as_ref().map_or(0, String::len)
            + self.entry.party.len()
    }
}

/// A ledger page stops after about this many bytes of lines (as well as at its count).
pub const LEDGER_PAGE_BYTES: usize = 1 << 20;

/// A page of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerPage {
    pub lines: Vec<LedgerLine>,
    /// Where the next page starts, when there may be more.
    pub next: Option<crate::storage::LedgerCursor>,
}

/// A page of a trail.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailPage {
    pub events: Vec<TrailEvent>,
    /// The `seq` to continue from, when there may be more.
    pub next_seq: Option<u64>,
}

/// The attribution service: trails, ownership, splits, ledger.
#[derive(Debug)]
pub struct Attribution {
    engine: Arc<Engine>,
    config: AttributionConfig,
    /// Replaced whole ([`Attribution::set_rules`]); a step holds the one it started with.
    book: parking_lot::RwLock<Arc<RuleBook>>,
    id_locks: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Attribution {
    /// The configuration it was made with (its rule sets may since have been replaced: see
    /// [`Attribution::rules`]).
    pub fn config(&self) -> &AttributionConfig {
        &self.config
    }

    /// Puts other ownership rule sets and split policies in service, checked as at start first
    /// (bad ones change nothing).
    pub fn set_rules(
        &self,
        ownership: &[OwnershipRuleSet],
        splits: &[SplitPolicy],
    ) -> Result<(), String> {
        let book = AttributionConfig {
            ownership: ownership.to_vec(),
            splits: splits.to_vec(),
            ..self.config.clone()
        }
        .check()?;
        *self.book.write() = Arc::new(book);
        Ok(())
    }

    pub fn new(engine: Arc<Engine>, config: AttributionConfig) -> Result<Self, String> {
        let book = config.check()?;
        Ok(Self {
            engine,
            config,
            book: parking_lot::RwLock::new(Arc::new(book)),
            id_locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        })
    }

    /// The rule sets in service: hold them for as long as one step uses them.
    pub fn rules(&self) -> Arc<RuleBook> {
        self.book.read().clone()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn stripe<'a>(&self, locks: &'a [Mutex<()>], key: impl Hash) -> &'a Mutex<()> {
        &locks[(self.hasher.hash_one(key) as usize) % locks.len()]
    }

    fn check_time(&self, field: &str, ms: i64) -> Result<(), FieldError> {
        let limit = self.engine.clock().now_ms() + i64::from(self.config.max_future_secs) * 1000;
        if ms > limit {
            return Err(FieldError::new(
                field,
                format!(
                    "must not lie more than {} s in the future (got {ms} ms, now {} ms)",
                    self.config.max_future_secs,
                    self.engine.clock().now_ms()
                ),
            ));
        }
        Ok(())
    }

    fn check_guide(&self, field: &str, id: &str) -> Result<String, FieldError> {
        check_id(field, id)?;
        let snap = self.engine.snapshot();
        let g = snap
            .network
            .guide_index(id)
            .ok_or_else(|| FieldError::new(field, format!("unknown guide {id:?}")))?;
        let store = snap.network.guide(g).store;
        Ok(snap.network.store(store).id.to_string())
    }

    fn check_store(&self, field: &str, id: &str) -> Result<(), FieldError> {
        check_id(field, id)?;
        if self.engine.snapshot().network.store_index(id).is_none() {
            return Err(FieldError::new(field, format!("unknown store {id:?}")));
        }
        Ok(())
    }

    /// Appends `body` to `member_id`'s trail under `key`, at the head it reads: when another
    /// writer appends first, reads and builds again ([`append_retrying`]). With `history`
    /// (orders), `body` is also given the member's latest binding event, and an order by a bound
    /// member may extend the binding (a binding event after the order, in the same append).
    /// `None` when `key` was taken meanwhile: the caller looks it up again.
    fn append(
        &self,
        member_id: &str,
        occurred_at_ms: i64,
        key: TrailKey<'_>,
        mut body: impl FnMut(&[TrailEvent], Option<&TrailEvent>) -> Result<EventBody, AttributionError>,
        history: Option<&OwnershipRuleSet>,
    ) -> Result<Option<TrailEvent>, AttributionError> {
        let store = self.engine.store();
        let written = append_retrying(store.as_ref(), || {
            self.build_append(member_id, occurred_at_ms, key, &mut body, history)
        })?;
        Ok(match written {
            Written::Stored(events) => events.into_iter().next(),
            Written::Replayed(_) | Written::Nothing => None,
        })
    }

    /// One attempt of [`Attribution::append`]: the chain from the head read now.
    fn build_append<'k>(
        &self,
        member_id: &str,
        occurred_at_ms: i64,
        key: TrailKey<'k>,
        body: &mut impl FnMut(&[TrailEvent], Option<&TrailEvent>) -> Result<EventBody, AttributionError>,
        history: Option<&OwnershipRuleSet>,
    ) -> Result<Option<Chain<'k>>, AttributionError> {
        let store = self.engine.store();
        let (head, earlier, binding) = match history {
            None => (store.trail_head(member_id)?, Vec::new(), None),
            Some(rules) => {
                let (head, earlier) = self.head_and_history(member_id, occurred_at_ms, rules)?;
                (head, earlier, store.latest_binding(member_id)?)
            }
        };
        let body = body(&earlier, binding.as_ref())?;
        let now = self.engine.clock().now_ms();
        let mut chain = Chain::new(member_id, head);
        let event = chain.push(occurred_at_ms, now, body, Some(key)).clone();
        // What the event does to the member's binding: an order extends it; a BINDING touch
        // binds the touch's guide as a share link would (bind, extend, snatch or keep).
        let day = business_day(occurred_at_ms, self.engine.config().time_zone);
        let bindings = self.engine.bindings();
        let ruling = match (bindings.for_day(day), &event.body) {
            (Some(rules), EventBody::Order(order)) => binding
                .as_ref()
                .and_then(|e| e.binding())
                .and_then(|b| rules.on_order(Some(&b.state), occurred_at_ms).change)
                .map(|(change, state)| {
                    let why = format!(
                        "order {} restarts the binding to {} (rule set {})",
                        order.facts.order_id, state.guide_id, rules.version
                    );
                    (
                        change,
                        state,
                        "order",
                        format!("order:{}", order.facts.order_id),
                        why,
                        None,
                    )
                }),
            (Some(rules), EventBody::Touch(t))
                if t.kind == crate::domain::trail::TouchKind::Binding =>
            {
                let current = store.latest_binding(member_id)?;
                let current = current.as_ref().and_then(|e| e.binding()).map(|b| &b.state);
                let snap = self.engine.snapshot();
                let net = &snap.network;
                t.guide_id
                    .as_deref()
                    .and_then(|g| net.guide_index(g))
                    .filter(|&g| net.guide(g).status != crate::catalog::GuideStatus::Left)
                    .and_then(|g| {
                        let guide = net.guide(g);
                        let r = rules.on_referral(
                            current,
                            GuideRef {
                                guide_id: &guide.id,
                                store_id: &net.store(guide.store).id,
                            },
                            occurred_at_ms,
                        );
                        let previous = current
                            .filter(|b| b.live_at(occurred_at_ms) && b.guide_id != *guide.id)
                            .map(|b| b.guide_id.clone());
                        r.change.map(|(change, state)| {
                            let why = format!("{} (rule set {})", r.why, rules.version);
                            (
                                change,
                                state,
                                "touch",
                                format!("touch:{}", t.touch_id),
                                why,
                                previous,
                            )
                        })
                    })
            }
            _ => None,
        };
        if let Some((change, state, actor, cause, reason, previous)) = ruling {
            let record = BindingRecord {
                change,
                actor: actor.into(),
                reason,
                cause_id: cause,
                previous_guide_id: previous,
                state,
            };
            chain.push(occurred_at_ms, now, EventBody::Binding(record), None);
        }
        Ok(Some(chain))
    }

    /// The member's head and, newest first, the events `rules` may look at (back to their
    /// horizon, at most `history_limit`), read in one scan from the newest event.
    #[allow(clippy::type_complexity)]
    fn head_and_history(
        &self,
        member_id: &str,
        at_ms: i64,
        rules: &OwnershipRuleSet,
    ) -> Result<(Option<(u64, String)>, Vec<TrailEvent>), AttributionError> {
        let store = self.engine.store();
        let horizon = rules.history_horizon_ms(at_ms);
        let limit = self.config.history_limit;
        let mut head = None;
        let mut earlier = Vec::new();
        let mut before = u64::MAX;
        'read: loop {
            let want = (limit - earlier.len()).clamp(1, 256);
            let chunk = store.trail_before(member_id, before, want)?;
            let Some(last) = chunk.last().map(|e| e.seq) else {
                break;
            };
            for e in chunk {
                if head.is_none() {
                    head = Some((e.seq, e.hash.clone()));
                }
                if e.recorded_at_ms < horizon || earlier.len() >= limit {
                    break 'read;
                }
                earlier.push(e);
            }
            if last <= 1 {
                break;
            }
            before = last;
        }
        Ok((head, earlier))
    }

    /// Records a touch. Durable within the flush interval.
    pub fn record_touch(&self, input: TouchInput) -> Result<Recorded, AttributionError> {
        let mut input = input;
        check_id("member_id", &input.member_id)?;
        let t = &mut input.touch;
        check_id("touch_id", &t.touch_id)?;
        check_optional_id("lead_id", t.lead_id.as_deref())?;
        self.check_time("occurred_at", input.occurred_at_ms)?;
        let guide_store = match &t.guide_id {
            Some(g) => Some(self.check_guide("guide_id", g)?),
            None => None,
        };
        if let Some(s) = &t.store_id {
            self.check_store("store_id", s)?;
        }
        if t.kind.needs_guide() && t.guide_id.is_none() {
            return Err(FieldError::new(
                "guide_id",
                format!("must be set for a {} touch", t.kind.as_str()),
            )
            .into());
        }
        if t.kind.needs_store() && t.store_id.is_none() {
            return Err(FieldError::new(
                "store_id",
                format!("must be set for a {} touch", t.kind.as_str()),
            )
            .into());
        }
        if t.store_id.is_none() {
            t.store_id = guide_store;
        }
        let key = TrailKey::Touch(&input.touch.touch_id);
        let _id = self
            .stripe(&self.id_locks, (b't', &input.touch.touch_id))
            .lock();
        let store = self.engine.store();
        loop {
            if let Some(e) = store.trail_event(key)? {
                // Who recorded it is not the touch's content: a retry through another key replays.
                let stored = (
                    e.member_id.clone(),
                    e.touch().cloned().map(|t| Touch {
                        recorded_by: None,
                        ..t
                    }),
                    e.occurred_at_ms,
                );
                let unsigned = Touch {
                    recorded_by: None,
                    ..input.touch.clone()
                };
                let got = (&input.member_id, Some(&unsigned), input.occurred_at_ms);
                return replay(
                    "touch",
                    &input.touch.touch_id,
                    e,
                    &stored,
                    &got,
                    &["member_id", "", "occurred_at_ms"],
                );
            }
            let touch = &input.touch;
            let Some(event) = self.append(
                &input.member_id,
                input.occurred_at_ms,
                key,
                |_, _| Ok(EventBody::Touch(touch.clone())),
                None,
            )?
            else {
                // Recorded meanwhile by another request: replayed as such.
                continue;
            };
            return Ok(Recorded {
                event,
                replayed: false,
            });
        }
    }

    fn check_order(&self, input: &OrderInput) -> Result<Option<String>, AttributionError> {
        check_id("member_id", &input.member_id)?;
        let f = &input.facts;
        check_id("order_id", &f.order_id)?;
        if !(1..=self.config.max_order_amount_cents).contains(&f.amount_cents) {
            return Err(FieldError::new(
                "amount_cents",
                format!(
                    "must be in 1..={} cents, got {}",
                    self.config.max_order_amount_cents, f.amount_cents
                ),
            )
            .into());
        }
        self.check_time("occurred_at", input.occurred_at_ms)?;
        if let Some(s) = &f.fulfilling_store_id {
            self.check_store("fulfilling_store_id", s)?;
        }
        let sharing_store = match &f.sharing_guide_id {
            Some(g) => Some(self.check_guide("sharing_guide_id", g)?),
            None => None,
        };
        if f.referrer_guide_ids.len() > 16 {
            return Err(FieldError::new(
                "referrer_guide_ids",
                format!("at most 16 entries, got {}", f.referrer_guide_ids.len()),
            )
            .into());
        }
        for (i, g) in f.referrer_guide_ids.iter().enumerate() {
            let field = format!("referrer_guide_ids[{i}]");
            self.check_guide(&field, g)?;
            if f.referrer_guide_ids[..i].contains(g) {
                return Err(FieldError::new(
                    field,
                    format!("repeats {g:?}: a chain names each guide once"),
                )
                .into());
            }
        }
        Ok(sharing_store)
    }

    /// Records an order: ownership, split and ledger entries in one trail event, flushed to disk
    /// before this returns.
    pub fn record_order(&self, input: OrderInput) -> Result<Recorded, AttributionError> {
        let r = self.record_order_unflushed(input)?;
        self.engine.store().flush()?;
        Ok(r)
    }

    /// As [`Attribution::record_order`] without the flush: the result is visible at once but not
    /// yet durable. The caller must see [`crate::storage::Storage::flush_then`] succeed before
    /// acknowledging it (a replay too: the first call may have failed before its flush).
    pub fn record_order_unflushed(&self, input: OrderInput) -> Result<Recorded, AttributionError> {
        let sharing_store = self.check_order(&input)?;
        let recorded = loop {
            let _id = self
                .stripe(&self.id_locks, (b'o', &input.facts.order_id))
                .lock();
            let key = TrailKey::Order(&input.facts.order_id);
            let store = self.engine.store();
            if let Some(e) = store.trail_event(key)? {
                let stored = (
                    e.member_id.clone(),
                    e.order().map(|o| o.facts.clone()),
                    e.occurred_at_ms,
                );
                let got = (&input.member_id, Some(&input.facts), input.occurred_at_ms);
                break replay(
                    "order",
                    &input.facts.order_id,
                    e,
                    &stored,
                    &got,
                    &["member_id", "", "occurred_at_ms"],
                )?;
            } else {
                let day = business_day(input.occurred_at_ms, self.engine.config().time_zone);
                let book = self.rules();
                let rules = rules::rule_set_for(&book.ownership, day).ok_or_else(|| {
                    AttributionError::Precondition(format!(
                        "no ownership rule set is in force on {day}"
                    ))
                })?;
                let policy = split::policy_for(&book.splits, day).ok_or_else(|| {
                    AttributionError::Precondition(format!("no split policy is in force on {day}"))
                })?;
                let facts = &input.facts;
                let at = input.occurred_at_ms;
                let Some(event) = self.append(
                    &input.member_id,
                    at,
                    key,
                    |earlier, binding| {
                        // Guides asked about who had left: recorded with the order, so that
                        // recomputation gets the same answers without the network.
                        let snap = self.engine.snapshot();
                        let left = |g: &str| {
                            snap.network.guide_index(g).is_some_and(|i| {
                                snap.network.guide(i).status == crate::catalog::GuideStatus::Left
                            })
                        };
                        let asked = std::cell::RefCell::new(Vec::<String>::new());
                        let departed = |g: &str| {
                            let d = left(g);
                            if d && !asked.borrow().iter().any(|x| x == g) {
                                asked.borrow_mut().push(g.to_string());
                            }
                            d
                        };
                        let facts = facts.clone();
                        let ownership = rules.decide(
                            &facts,
                            sharing_store.as_deref(),
                            at,
                            earlier,
                            binding,
                            &departed,
                        );
                        for g in &facts.referrer_guide_ids {
                            departed(g);
                        }
                        let departed_guide_ids = asked.into_inner();
                        let (entries, rounding) =
                            policy.split_excluding(&facts, &ownership, &departed_guide_ids);
                        Ok(EventBody::Order(Box::new(OrderRecord {
                            facts,
                            sharing_guide_store_id: sharing_store.clone(),
                            departed_guide_ids,
                            ownership,
                            split_version: policy.version.clone(),
                            rounding_role: rounding,
                            entries,
                            recorded_by: input.recorded_by.clone(),
                        })))
                    },
                    Some(rules),
                )?
                else {
                    // Recorded meanwhile by another request: replayed as such.
                    continue;
                };
                break Recorded {
                    event,
                    replayed: false,
                };
            }
        };
        Ok(recorded)
    }

    /// Moves an order's owner credit to `to_party` with compensating entries (the order's own
    /// entries stay as recorded), flushed to disk before this returns. Later refunds debit the
    /// new owner. The same `adjustment_id` again returns the stored event.
    pub fn reassign(&self, input: ReassignInput) -> Result<Recorded, AttributionError> {
        check_id("adjustment_id", &input.adjustment_id)?;
        check_id("order_id", &input.order_id)?;
        check_id("actor", &input.actor)?;
        if input.reason.trim().is_empty() || input.reason.len() > 1000 {
            return Err(FieldError::new("reason", "must be 1..=1000 bytes and not blank").into());
        }
        self.check_party("to_party", &input.to_party)?;
        self.check_time("occurred_at", input.occurred_at_ms)?;
        let recorded = loop {
            let _id = self
                .stripe(&self.id_locks, (b'a', &input.adjustment_id))
                .lock();
            let key = TrailKey::Adjustment(&input.adjustment_id);
            let store = self.engine.store();
            if let Some(e) = store.trail_event(key)? {
                let a = e.adjustment();
                let stored = (a.map(|a| a.order_id.clone()), a.map(|a| a.to_party.clone()));
                let got = (Some(&input.order_id), Some(&input.to_party));
                break replay(
                    "adjustment",
                    &input.adjustment_id,
                    e,
                    &stored,
                    &got,
                    &["order_id", "to_party"],
                )?;
            } else {
                let (order, record) =
                    self.order_for_follow_up(&input.order_id, input.occurred_at_ms)?;
                let member = order.member_id.clone();
                let Some(event) = self.append(
                    &member,
                    input.occurred_at_ms,
                    key,
                    |_, _| {
                        let (from, entries) =
                            self.moving_owner(&input.order_id, &record, &input.to_party)?;
                        Ok(EventBody::Adjustment(
                            crate::domain::trail::AdjustmentRecord {
                                adjustment_id: input.adjustment_id.clone(),
                                order_id: input.order_id.clone(),
                                order_seq: order.seq,
                                entries,
                                from_party: from,
                                to_party: input.to_party.clone(),
                                actor: input.actor.clone(),
                                reason: input.reason.clone(),
                                rebind: input.rebind,
                            },
                        ))
                    },
                    None,
                )?
                else {
                    // Recorded meanwhile by another request: replayed as such.
                    continue;
                };
                break Recorded {
                    event,
                    replayed: false,
                };
            }
        };
        self.engine.store().flush()?;
        Ok(recorded)
    }

    /// The order a refund or adjustment at `at_ms` follows: its event and record. A follow-up
    /// may not precede its order.
    /// Where the owner credit of `order_id` sits now, and the compensating entries that would
    /// move what is left of it to `to`; refused when `to` owns it already.
    fn moving_owner(
        &self,
        order_id: &str,
        record: &OrderRecord,
        to: &str,
    ) -> Result<(String, Vec<LedgerEntry>), AttributionError> {
        let follow_ups = self.engine.store().follow_ups_of(order_id)?;
        let from = split::current_owner(record, follow_ups.iter().filter_map(|e| e.adjustment()));
        if from == to {
            return Err(AttributionError::Precondition(format!(
                "order {order_id:?} is already owned by {from}"
            )));
        }
        let net = split::owner_net(record, follow_ups.iter().filter_map(|e| e.refund()));
        Ok((from.clone(), split::adjustment_entries(&from, to, net)))
    }

    /// What [`Attribution::reassign`] to `to` would write now, without writing it: the owner
    /// party it moves from and the compensating entries (a reviewer's preview).
    pub fn preview_reassign(
        &self,
        order_id: &str,
        to: &str,
    ) -> Result<(String, Vec<LedgerEntry>), AttributionError> {
        check_id("order_id", order_id)?;
        self.check_party("new_owner", to)?;
        let (_, record) = self.order_record(order_id)?;
        self.moving_owner(order_id, &record, to)
    }

    /// An order's trail event and its record.
    fn order_record(&self, order_id: &str) -> Result<(TrailEvent, OrderRecord), AttributionError> {
        let not_found = || AttributionError::NotFound {
            what: "order",
            id: order_id.to_string(),
        };
        let order = self
            .engine
            .store()
            .trail_event(TrailKey::Order(order_id))?
            .ok_or_else(not_found)?;
        let record = order.order().cloned().ok_or_else(not_found)?;
        Ok((order, record))
    }

    fn order_for_follow_up(
        &self,
        order_id: &str,
        at_ms: i64,
    ) -> Result<(TrailEvent, OrderRecord), AttributionError> {
        let (order, record) = self.order_record(order_id)?;
        if at_ms < order.occurred_at_ms {
            return Err(FieldError::new(
                "occurred_at",
                format!(
                    "must not precede the order ({} ms), got {at_ms} ms",
                    order.occurred_at_ms
                ),
            )
            .into());
        }
        Ok((order, record))
    }

    /// A party to credit: a known guide or store, or a channel.
    fn check_party(&self, field: &str, party: &str) -> Result<(), FieldError> {
        match party.split_once(':') {
            Some(("guide", id)) => self.check_guide(field, id).map(|_| ()),
            Some(("store", id)) => self.check_store(field, id),
            Some(("channel", c)) if crate::domain::Channel::ALL.iter().any(|k| k.as_str() == c) => {
                Ok(())
            }
            _ => Err(FieldError::new(
                field,
                format!("must be guide:ID, store:ID or channel:NAME, got {party:?}"),
            )),
        }
    }

    /// Records a refund of an order: reversing entries proportional to the order's split,
    /// flushed to disk before this returns. All refunds together cannot exceed the order.
    pub fn record_refund(&self, input: RefundInput) -> Result<Recorded, AttributionError> {
        let r = self.record_refund_unflushed(input)?;
        self.engine.store().flush()?;
        Ok(r)
    }

    /// As [`Attribution::record_refund`] without the flush; see
    /// [`Attribution::record_order_unflushed`].
    pub fn record_refund_unflushed(
        &self,
        input: RefundInput,
    ) -> Result<Recorded, AttributionError> {
        check_id("refund_id", &input.refund_id)?;
        check_id("order_id", &input.order_id)?;
        if let Some(a) = input.amount_cents
            && !(1..=self.config.max_order_amount_cents).contains(&a)
        {
            return Err(FieldError::new(
                "amount_cents",
                format!(
                    "must be in 1..={} cents when set, got {a}",
                    self.config.max_order_amount_cents
                ),
            )
            .into());
        }
        self.check_time("occurred_at", input.occurred_at_ms)?;
        let recorded = loop {
            let _id = self.stripe(&self.id_locks, (b'r', &input.refund_id)).lock();
            let key = TrailKey::Refund(&input.refund_id);
            let store = self.engine.store();
            if let Some(e) = store.trail_event(key)? {
                let r = e.refund();
                let stored = (
                    r.map(|r| r.order_id.clone()),
                    r.map(|r| r.amount_cents),
                    e.occurred_at_ms,
                );
                // No amount asks for "the rest", which the stored refund was.
                let got_amount = input.amount_cents.or(stored.1);
                let got = (Some(&input.order_id), got_amount, input.occurred_at_ms);
                break replay(
                    "refund",
                    &input.refund_id,
                    e,
                    &stored,
                    &got,
                    &["order_id", "amount_cents", "occurred_at_ms"],
                )?;
            } else {
                let (order, record) =
                    self.order_for_follow_up(&input.order_id, input.occurred_at_ms)?;
                let member = order.member_id.clone();
                let refund_id = &input.refund_id;
                let Some(event) = self.append(
                    &member,
                    input.occurred_at_ms,
                    key,
                    |_, _| {
                        // Refunds and adjustments of this order so far: read under the member's
                        // lock.
                        let follow_ups = self.engine.store().follow_ups_of(&input.order_id)?;
                        let already: i64 = follow_ups
                            .iter()
                            .filter_map(|e| e.refund())
                            .map(|r| r.amount_cents)
                            .sum();
                        let owner = split::current_owner(
                            &record,
                            follow_ups.iter().filter_map(|e| e.adjustment()),
                        );
                        let amount = record.facts.amount_cents;
                        let left = amount - already;
                        let cents = input.amount_cents.unwrap_or(left);
                        if left == 0 {
                            return Err(AttributionError::Precondition(format!(
                                "order {:?} is fully refunded ({amount} cents)",
                                input.order_id
                            )));
                        }
                        if cents > left {
                            return Err(AttributionError::Precondition(format!(
                                "amount_cents: {cents} exceeds what is left to refund of order {:?}: {left} of {amount} cents",
                                input.order_id
                            )));
                        }
                        let entries = split::reverse_to(&record, already, cents, &owner);
                        Ok(EventBody::Refund(RefundRecord {
                            refund_id: refund_id.clone(),
                            order_id: input.order_id.clone(),
                            amount_cents: cents,
                            order_seq: order.seq,
                            entries,
                            recorded_by: input.recorded_by.clone(),
                        }))
                    },
                    None,
                )?
                else {
                    // Recorded meanwhile by another request: replayed as such.
                    continue;
                };
                break Recorded {
                    event,
                    replayed: false,
                };
            }
        };
        Ok(recorded)
    }

    /// An order with its refunds and net entries.
    pub fn order(&self, order_id: &str) -> Result<OrderView, AttributionError> {
        check_id("order_id", order_id)?;
        let store = self.engine.store();
        let order = store
            .trail_event(TrailKey::Order(order_id))?
            .ok_or_else(|| AttributionError::NotFound {
                what: "order",
                id: order_id.to_string(),
            })?;
        let Some(record) = order.order() else {
            return Err(AttributionError::NotFound {
                what: "order",
                id: order_id.to_string(),
            });
        };
        let (refunds, adjustments): (Vec<TrailEvent>, Vec<TrailEvent>) = store
            .follow_ups_of(order_id)?
            .into_iter()
            .partition(|e| e.refund().is_some());
        let mut net: Vec<LedgerEntry> = record.entries.clone();
        let mut refunded = 0;
        let later = refunds
            .iter()
            .chain(&adjustments)
            .flat_map(|e| match &e.body {
                EventBody::Refund(r) => {
                    refunded += r.amount_cents;
                    r.entries.iter()
                }
                EventBody::Adjustment(a) => a.entries.iter(),
                _ => [].iter(),
            })
            .collect::<Vec<_>>();
        for e in later {
            match net
                .iter_mut()
                .find(|n| n.party == e.party && n.role == e.role)
            {
                Some(n) => n.amount_cents += e.amount_cents,
                None => net.push(e.clone()),
            }
        }
        let owner_party =
            split::current_owner(record, adjustments.iter().filter_map(|e| e.adjustment()));
        Ok(OrderView {
            order,
            refunds,
            adjustments,
            net,
            refunded_cents: refunded,
            owner_party,
        })
    }

    /// A page of a member's trail: events with `seq >= from_seq` whose `occurred_at` lies in
    /// `[from_ms, to_ms)`, at most `limit` (1..=1000).
    /// A member's binding history as intervals (from the binding events of their trail).
    pub fn binding_history(
        &self,
        member_id: &str,
    ) -> Result<Vec<crate::domain::binding::Interval>, AttributionError> {
        check_id("member_id", member_id)?;
        let mut events = Vec::new();
        for_each_in_trail(self.engine.store().as_ref(), member_id, 1, 1024, &mut |e| {
            if let EventBody::Binding(b) = e.body {
                events.push((e.occurred_at_ms, b));
            }
            true
        })?;
        Ok(crate::domain::binding::intervals(
            events.iter().map(|(t, b)| (*t, b)),
            self.engine.clock().now_ms(),
        ))
    }

    pub fn trail(
        &self,
        member_id: &str,
        from_seq: u64,
        window: (Option<i64>, Option<i64>),
        limit: usize,
    ) -> Result<TrailPage, AttributionError> {
        check_id("member_id", member_id)?;
        if !(1..=1000).contains(&limit) {
            return Err(
                FieldError::new("page_size", format!("must be in 1..=1000, got {limit}")).into(),
            );
        }
        if let (Some(a), Some(b)) = window
            && a > b
        {
            return Err(FieldError::new(
                "to",
                format!("must not precede from ({a} ms), got {b} ms"),
            )
            .into());
        }
        let mut events = Vec::new();
        let mut full = false;
        // Without a window a page is one read; with one, chunks until the page fills, so a
        // narrow window over a long trail still fills it.
        let chunk = if window == (None, None) { limit } else { 256 };
        for_each_in_trail(
            self.engine.store().as_ref(),
            member_id,
            from_seq,
            chunk,
            &mut |e| {
                let inside = window.0.is_none_or(|a| e.occurred_at_ms >= a)
                    && window.1.is_none_or(|b| e.occurred_at_ms < b);
                if inside {
                    events.push(e);
                    full = events.len() == limit;
                }
                !full
            },
        )?;
        let next_seq = if full {
            events.last().map(|e| e.seq + 1)
        } else {
            None
        };
        Ok(TrailPage { events, next_seq })
    }
}

impl Attribution {
    /// The ledger in `[from_ms, to_ms)` by `occurred_at`: every order's entries and every
    /// refund's reversals, optionally for one party (`guide:ID`, `store:ID`, `channel:NAME`,
    /// `o2o:centre`). Reads at most `limit` (1..=1000) orders and refunds per page.
    pub fn ledger(
        &self,
        from_ms: i64,
        to_ms: i64,
        party: Option<&str>,
        after: Option<&crate::storage::LedgerCursor>,
        limit: usize,
    ) -> Result<LedgerPage, AttributionError> {
        if !(1..=1000).contains(&limit) {
            return Err(
                FieldError::new("page_size", format!("must be in 1..=1000, got {limit}")).into(),
            );
        }
        if to_ms <= from_ms {
            return Err(FieldError::new(
                "to",
                format!("must be after from ({from_ms} ms), got {to_ms} ms"),
            )
            .into());
        }
        if let Some(p) = party {
            let ok = match p.split_once(':') {
                Some(("guide" | "store", id)) => check_id("party", id).is_ok(),
                Some(("channel", c)) => crate::domain::Channel::ALL.iter().any(|k| k.as_str() == c),
                Some(("o2o", "centre")) => true,
                _ => false,
            };
            if !ok {
                return Err(FieldError::new(
                    "party",
                    format!(
                        "must be guide:ID, store:ID, channel:NAME (a channel such as ECOMMERCE) or o2o:centre, got {}",
                        crate::domain::short(p)
                    ),
                )
                .into());
            }
        }
        let events = self
            .engine
            .store()
            .ledger_events(from_ms, to_ms, after, limit)?;
        let mut next = if events.len() == limit {
            events.last().and_then(crate::storage::LedgerCursor::of)
        } else {
            None
        };
        let mut lines = Vec::new();
        let mut bytes = 0;
        for (i, e) in events.iter().enumerate() {
            // A page ends after the event that takes it past LEDGER_PAGE_BYTES (whole events
            // only: the cursor names an event), so that a default client can always read it.
            if bytes > LEDGER_PAGE_BYTES {
                next = crate::storage::LedgerCursor::of(&events[i - 1]);
                break;
            }
            let (order_id, refund_id, adjustment_id, entries) = match &e.body {
                EventBody::Order(o) => (o.facts.order_id.clone(), None, None, &o.entries),
                EventBody::Refund(r) => (
                    r.order_id.clone(),
                    Some(r.refund_id.clone()),
                    None,
                    &r.entries,
                ),
                EventBody::Adjustment(a) => (
                    a.order_id.clone(),
                    None,
                    Some(a.adjustment_id.clone()),
                    &a.entries,
                ),
                _ => continue,
            };
            for entry in entries {
                if party.is_none_or(|p| entry.party == p) {
                    lines.push(LedgerLine {
                        occurred_at_ms: e.occurred_at_ms,
                        member_id: e.member_id.clone(),
                        order_id: order_id.clone(),
                        refund_id: refund_id.clone(),
                        adjustment_id: adjustment_id.clone(),
                        entry: entry.clone(),
                    });
                    bytes += lines.last().map_or(0, LedgerLine::size_hint);
                }
            }
        }
        Ok(LedgerPage { lines, next })
    }
}

/// What checking one trail found.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailCheck {
    pub members: usize,
    pub events: usize,
    pub chain: Result<(), crate::domain::trail::ChainBreak>,
    pub recomputed: recompute::Summary,
}

impl TrailCheck {
    pub fn ok(&self) -> bool {
        self.chain.is_ok() && self.recomputed.mismatches.is_empty()
    }
}

impl Attribution {
    /// Checks one member's stored hash chain and recomputes their orders and refunds.
    pub fn verify_trail(&self, member_id: &str) -> Result<TrailCheck, AttributionError> {
        check_id("member_id", member_id)?;
        let book = self.rules();
        let mut c = recompute::TrailChecker::new(&book);
        let mut adjustments = Vec::new();
        for_each_in_trail(self.engine.store().as_ref(), member_id, 1, 1024, &mut |e| {
            if let Some(a) = e.adjustment() {
                adjustments.push((e.member_id.clone(), e.seq, a.adjustment_id.clone()));
            }
            c.push(e, None);
            true
        })?;
        let mut check = c.finish();
        self.check_adjustments(&adjustments, &mut check)?;
        Ok(check)
    }

    /// Every adjustment must be a resolved dispute's: `dispute:D<n>`, with D<n> reassigned and
    /// naming that event. Anything else moved credit without a decision on record.
    fn check_adjustments(
        &self,
        adjustments: &[(String, u64, String)],
        check: &mut TrailCheck,
    ) -> Result<(), AttributionError> {
        for (member, seq, id) in adjustments {
            let dispute = id
                .strip_prefix("dispute:")
                .and_then(|d| self.dispute(d).ok());
            let belongs = dispute.as_ref().is_some_and(|d| {
                d.status == disputes::DisputeStatus::Reassigned
                    && d.resolution.as_ref().and_then(|r| r.adjustment_seq) == Some(*seq)
            });
            if !belongs {
                check.recomputed.mismatches.push(recompute::Mismatch {
                    member_id: member.clone(),
                    seq: *seq,
                    what: format!(
                        "adjustment {id:?} moved credit, but {}",
                        match &dispute {
                            None => "no dispute of that id exists".to_string(),
                            Some(d) => format!(
                                "dispute {} is {} and does not name this event",
                                d.dispute_id,
                                d.status.as_str()
                            ),
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether a `router_client` key may read `member_id`'s trail: the key recorded one of
    /// the member's events, or no event says which key recorded it (recorded without keys).
    pub fn recorded_for(&self, member_id: &str, key: &str) -> Result<bool, AttributionError> {
        check_id("member_id", member_id)?;
        let (mut mine, mut others) = (false, false);
        for_each_in_trail(self.engine.store().as_ref(), member_id, 1, 1024, &mut |e| {
            match e.recorded_by() {
                Some(k) if k == key => mine = true,
                Some(_) => others = true,
                None => {}
            }
            !mine
        })?;
        Ok(mine || !others)
    }

    /// Checks every member's trail (a full scan: for operators, off the hot path). Reports the
    /// first chain break and every recomputation difference; memory holds one member at a time.
    pub fn verify_all(&self) -> Result<TrailCheck, AttributionError> {
        let book = self.rules();
        let mut c = recompute::TrailChecker::grouped(&book);
        let mut adjustments = Vec::new();
        self.engine.store().scan_trails(&mut |e| {
            if let Some(a) = e.adjustment() {
                adjustments.push((e.member_id.clone(), e.seq, a.adjustment_id.clone()));
            }
            c.push(e, None);
            true
        })?;
        let mut check = c.finish();
        self.check_adjustments(&adjustments, &mut check)?;
        Ok(check)
    }
}

/// Cents refunded so far of an order (the caller holds the member's lock).
/// The stored event again when `got` is what was stored; else `ALREADY_EXISTS` naming each
/// field that differs (see [`differences`]).
fn replay(
    what: &'static str,
    id: &str,
    event: TrailEvent,
    stored: &impl Serialize,
    got: &impl Serialize,
    names: &[&str],
) -> Result<Recorded, AttributionError> {
    let differences = differences(stored, got, names);
    if differences.is_empty() {
        Ok(Recorded {
            event,
            replayed: true,
        })
    } else {
        Err(AttributionError::Conflict {
            what,
            id: id.to_string(),
            differences,
        })
    }
}

/// The fields in which two records differ, as `field: stored X, got Y`. Records are compared as
/// JSON: a tuple's elements are named by `names` (an empty name spreads an object's fields).
fn differences(stored: &impl Serialize, got: &impl Serialize, names: &[&str]) -> Vec<String> {
    fn flatten(v: serde_json::Value, names: &[&str]) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        let items = match v {
            serde_json::Value::Array(a) => a,
            other => vec![other],
        };
        for (i, item) in items.into_iter().enumerate() {
            let name = names.get(i).copied().unwrap_or("");
            match item {
                serde_json::Value::Object(m) if name.is_empty() => {
                    out.extend(m);
                }
                serde_json::Value::Null if name.is_empty() => {}
                other => out.push((name.to_string(), other)),
            }
        }
        out
    }
    let a = flatten(serde_json::to_value(stored).unwrap_or_default(), names);
    let b = flatten(serde_json::to_value(got).unwrap_or_default(), names);
    let mut keys: Vec<&String> = a.iter().chain(b.iter()).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    let get = |list: &[(String, serde_json::Value)], k: &str| {
        list.iter()
            .find(|(n, _)| n == k)
            .map_or(serde_json::Value::Null, |(_, v)| v.clone())
    };
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (get(&a, k), get(&b, k));
            (x != y).then(|| format!("{k}: stored {x}, got {y}"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
