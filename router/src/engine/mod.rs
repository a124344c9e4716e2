//! route(), step by step (DESIGN §4): validate → idempotency → candidates → policy → capacity →
//! commit. The same code serves production (over sled) and the simulator (over memory).
//!
//! Concurrency lives in the storage contract (DESIGN §6), not here: a route reads, decides, and
//! commits the decision, the guide's capacity and the member's events in one conditional
//! storage operation. A lead routed first elsewhere is replayed; a guide that filled up first is
//! skipped for the next; a member whose trail moved is read again. So several engines on one
//! storage (replicas) never pass a guide's capacity or store two decisions for one lead. The
//! engine holds no lock while it calls storage.

mod admin;
mod bind;
mod candidates;
mod capacity;
mod desks;
mod offers;
mod pick;
mod transfer;
mod validate;

pub use admin::{Applied, CatalogError};
pub use candidates::{CandidateConfig, Gathered, lead_preference};
pub use capacity::CapacityBook;
pub use desks::MAX_QUEUE_PAGE;
pub use offers::{OfferError, OfferReply};
pub use transfer::{Moved, SuccessorRule, TransferConfig};
pub use validate::{MAX_FUTURE_SKEW_MS, MAX_INTERESTS, ValidLead, validate};

use crate::catalog::{GuideStatus, Network};
use crate::clock::Clock;
use crate::domain::binding::{self, BindingRuleSet};
use crate::domain::offer::{Offer, OfferAction, OfferConfig, OfferStatus};
use crate::domain::{Alternative, Day, Decision, FieldError, Lead, Level, Reasons, Unrouted};
use crate::policy::{Candidate, Policy, PolicyConfig};
use crate::storage::{
    Chain, Committed, HeadAt, RouteCommit, RouteState, Storage, StorageError, Take,
};
use candidates::Scratch;
use parking_lot::{Mutex, RwLock};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A guide taken for a decision, with what the policy said.
pub(crate) struct Picked {
    pub store: u32,
    pub guide: u32,
    pub score: f64,
    pub reasons: Reasons,
    pub alternatives: Vec<Alternative>,
    pub propensity: f64,
    pub level: Level,
    /// The guide's capacity on the day.
    pub capacity: u32,
}

/// What one commit of a picked guide came to.
pub(crate) enum Attempt {
    /// Stored, or replayed: the route is done.
    Done(Arc<Decision>),
    /// The guide filled up first: try the next.
    Full,
    /// The lead's decision or member's trail moved since they were read (or assumed): start
    /// over, from what they are now where storage said.
    Again(Option<Box<RouteState>>),
}

/// What [`Engine::pick`] came to.
pub(crate) enum Placed {
    Done(Arc<Decision>),
    Again(Option<Box<RouteState>>),
    /// No guide could take it, and why.
    Nowhere(Unrouted),
}
/// How a route pauses before it reads again after another writer moved what it read.
#[derive(Debug, Clone, Copy)]
enum Pause {
    /// The caller's thread sleeps ([`crate::storage::backoff`]): a synchronous caller.
    Thread,
    /// A timer of the caller's async runtime.
    Runtime,
}

impl Pause {
    async fn after(self, attempt: usize) {
        match self {
            Pause::Thread => crate::storage::backoff(attempt),
            Pause::Runtime if attempt > 2 => {
                tokio::time::sleep(std::time::Duration::from_micros(50 << attempt.min(8))).await
            }
            Pause::Runtime => tokio::task::yield_now().await,
        }
    }
}

/// Rounds of gather → rank → take when concurrent routes fill the ranked guides first.
const ROUNDS: usize = 3;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The brand's time zone: capacity is counted per business day in it. Default Asia/Shanghai.
    pub time_zone: chrono_tz::Tz,
    pub candidates: CandidateConfig,
    pub policy: PolicyConfig,
    /// Seed of every random draw (tie breaks). Same seed, same lead → same draw.
    pub seed: u64,
    /// Alternatives reported per decision. Default 5.
    pub alternatives: usize,
    /// Flush the store before replying to each route (slower; default off: decisions are durable
    /// within the store's flush interval).
    pub sync_decisions: bool,
    /// Binding rule sets (`[[bindings]]`), each in force from its `effective_from`.
    pub bindings: Vec<BindingRuleSet>,
    /// Offers (`[offers]`): off unless channels are named.
    pub offers: OfferConfig,
    /// Transfers (`[transfers]`).
    pub transfers: TransferConfig,
    /// Experiments (`[[experiments]]`): traffic split between policies by arm.
    pub experiments: Vec<crate::policy::experiments::ExperimentConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::Asia::Shanghai,
            candidates: CandidateConfig::default(),
            policy: PolicyConfig::default(),
            seed: 0x1ead_2026,
            alternatives: 5,
            sync_decisions: false,
            bindings: vec![BindingRuleSet::default()],
            offers: OfferConfig::default(),
            transfers: TransferConfig::default(),
            experiments: Vec::new(),
        }
    }
}

/// Why route() failed. Nothing was written or consumed in either case.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The network in service with its capacity book and policy.
#[derive(Debug)]
pub struct Snapshot {
    pub network: Network,
    pub book: CapacityBook,
    /// `[policy]`: what every lead no experiment takes gets.
    pub policy: Arc<dyn Policy>,
    pub policy_config: PolicyConfig,
    pub experiments: Arc<crate::policy::experiments::Experiments>,
}

impl Snapshot {
    /// The policy for `lead`, and its arm when an experiment chose it.
    pub fn choose(&self, lead: &Lead) -> crate::policy::experiments::Choice<'_> {
        let segment = if self.experiments.0.is_empty() {
            None
        } else {
            lead.member_id
                .as_deref()
                .and_then(|m| self.network.member_segment(m))
        };
        self.experiments.choose(&self.policy, lead, segment)
    }
}

/// A guide's load for the business day.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideLoad {
    pub guide_id: String,
    pub store_id: String,
    pub day: Day,
    pub used: u32,
    pub daily_capacity: u32,
    pub status: GuideStatus,
}

/// The routing engine.
#[derive(Debug)]
pub struct Engine {
    state: RwLock<Arc<Snapshot>>,
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    cfg: EngineConfig,
    max_level: Level,
    /// Decision ids: a random start per process, so that replicas do not repeat each other's.
    seq: AtomicU64,
    /// Serialises operator changes to the network.
    admin: Mutex<()>,
    /// Binding rule sets by first day; replaced whole ([`Engine::set_binding_rules`]).
    bindings: RwLock<Arc<Bindings>>,
    offer_channels: Vec<crate::domain::Channel>,
    /// Told after each commit that wrote offer notices, so that this replica's streams follow
    /// at once rather than at their next poll.
    noticed: Arc<tokio::sync::Notify>,
}

/// The binding rule sets in service, by first day.
#[derive(Debug)]
pub struct Bindings(Vec<(Day, BindingRuleSet)>);

impl Bindings {
    /// The rule set in force on `day`.
    pub fn for_day(&self, day: Day) -> Option<&BindingRuleSet> {
        binding::rule_set_for(&self.0, day)
    }

    /// The rule sets as configured.
    pub fn sets(&self) -> Vec<BindingRuleSet> {
        self.0.iter().map(|(_, s)| s.clone()).collect()
    }
}

thread_local! {
    static SCRATCH: RefCell<(Scratch, Vec<Candidate>)> = RefCell::new(Default::default());
}

impl Engine {
    /// Starts an engine on a network; today's counts are read back from the store.
    pub fn new(
        network: Network,
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        cfg: EngineConfig,
    ) -> Result<Self, EngineError> {
        let max_level = cfg.candidates.check().map_err(EngineError::Config)?;
        if cfg.alternatives > 20 {
            return Err(EngineError::Config(format!(
                "routing.alternatives: at most 20, got {}",
                cfg.alternatives
            )));
        }
        let policy = Arc::from(cfg.policy.build(&network).map_err(EngineError::Config)?);
        let experiments = Arc::new(
            crate::policy::experiments::Experiments::build(
                &cfg.experiments,
                &network,
                &Default::default(),
            )
            .map_err(EngineError::Config)?,
        );
        let bindings = check_bindings(&cfg.bindings).map_err(EngineError::Config)?;
        let offer_channels = cfg.offers.check().map_err(EngineError::Config)?;
        cfg.transfers.check().map_err(EngineError::Config)?;
        let book = CapacityBook::new(network.guides().len());
        let now = clock.now_ms();
        let today = business_day(now, cfg.time_zone);
        for (guide, used) in store.day_counts(today)? {
            if let Some(g) = network.guide_index(&guide) {
                book.set(g, today, used);
            }
        }
        Ok(Self {
            state: RwLock::new(Arc::new(Snapshot {
                network,
                book,
                policy_config: cfg.policy.clone(),
                policy,
                experiments,
            })),
            store: store.clone(),
            clock,
            max_level,
            seq: AtomicU64::new(crate::domain::os_random_u64() >> 1),
            admin: Mutex::new(()),
            bindings: RwLock::new(Arc::new(Bindings(bindings))),
            noticed: Arc::default(),
            offer_channels,
            cfg,
        })
    }

    /// The network, capacity book and policy in service.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.read().clone()
    }

    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The binding rule sets in service: hold them for as long as one step uses them.
    pub fn bindings(&self) -> Arc<Bindings> {
        self.bindings.read().clone()
    }

    /// Puts other binding rule sets in service, checked first (bad sets change nothing); a
    /// step under way finishes on the ones it started with.
    pub fn set_binding_rules(&self, sets: &[BindingRuleSet]) -> Result<(), String> {
        let checked = check_bindings(sets)?;
        *self.bindings.write() = Arc::new(Bindings(checked));
        Ok(())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Notified after a commit of this engine wrote offer notices (one stored wake-up at most).
    pub fn noticed(&self) -> &Arc<tokio::sync::Notify> {
        &self.noticed
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Today's business day.
    pub fn today(&self) -> Day {
        business_day(self.clock.now_ms(), self.cfg.time_zone)
    }

    /// A guide's load today, or `None` for an unknown guide.
    pub fn guide_load(&self, guide_id: &str) -> Option<GuideLoad> {
        let snap = self.snapshot();
        let g = snap.network.guide_index(guide_id)?;
        let guide = snap.network.guide(g);
        let day = self.today();
        Some(GuideLoad {
            guide_id: guide.id.to_string(),
            store_id: snap.network.store(guide.store).id.to_string(),
            day,
            used: snap.book.used(g, day),
            daily_capacity: guide.daily_capacity,
            status: guide.status,
        })
    }

    /// Every guide `lead` could be routed to by the network stage of route() on any day, whatever
    /// today's counts, with the features policies see (`used` = 0). Checks the lead like
    /// route(); writes nothing. Bindings and referrers are not followed: they name their guide.
    pub fn reachable(&self, lead: &Lead) -> Result<Vec<Candidate>, RouteError> {
        self.reachable_with(lead, &[])
    }

    /// As [`Engine::reachable`], with the guides of `stores` added (each guide once, by index):
    /// the guides a binding or a share link may send the lead to beyond the policy's reach (a
    /// member's bound guide, their store, the referring guide).
    pub fn reachable_with(
        &self,
        lead: &Lead,
        stores: &[u32],
    ) -> Result<Vec<Candidate>, RouteError> {
        let snap = self.state.read();
        let valid = validate(&snap.network, lead, self.clock.now_ms())?;
        let scan = candidates::Scan {
            net: &snap.network,
            book: &snap.book,
            lead: &valid,
            location: lead.location.as_ref(),
            day: Day(0),
            cfg: &self.cfg.candidates,
            max_level: self.max_level,
            count_capacity: false,
        };
        let mut out = Vec::new();
        SCRATCH.with(|cell| scan.reachable(&mut cell.borrow_mut().0, &mut out));
        if stores.is_empty() {
            return Ok(out);
        }
        let mut more = Vec::new();
        SCRATCH.with(|cell| {
            let scratch = &mut cell.borrow_mut().0;
            for &s in stores
                .iter()
                .filter(|&&s| (s as usize) < snap.network.stores().len())
            {
                scan.gather_store(scratch, &mut more, s, None);
                out.append(&mut more);
            }
        });
        out.sort_unstable_by_key(|c| c.guide);
        out.dedup_by_key(|c| c.guide);
        Ok(out)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<usize, StorageError> {
        self.store.flush()
    }

    /// Routes one lead. Bad input is an error naming the field; a lead that cannot be placed is
    /// a decision without a guide, with the reason.
    pub fn route(&self, lead: &Lead) -> Result<Arc<Decision>, RouteError> {
        self.route_by(lead, None)
    }

    /// As [`Engine::route`], recording the caller's key in the decision.
    pub fn route_by(
        &self,
        lead: &Lead,
        recorded_by: Option<&str>,
    ) -> Result<Arc<Decision>, RouteError> {
        crate::storage::block_on(self.route_core(lead, recorded_by, Pause::Thread))
    }

    /// As [`Engine::route_by`], for a caller on an async runtime: waits on storage (a database
    /// across the network) without blocking the thread.
    pub async fn route_by_async(
        &self,
        lead: &Lead,
        recorded_by: Option<&str>,
    ) -> Result<Arc<Decision>, RouteError> {
        self.route_core(lead, recorded_by, Pause::Runtime).await
    }

    async fn route_core(
        &self,
        lead: &Lead,
        recorded_by: Option<&str>,
        pause: Pause,
    ) -> Result<Arc<Decision>, RouteError> {
        let snap = self.snapshot();
        let now = self.clock.now_ms();
        let valid = validate(&snap.network, lead, now)?;
        let day = business_day(now, self.cfg.time_zone);
        let net = &snap.network;
        let offer = self.offer_channels.contains(&lead.channel).then(|| Offer {
            status: OfferStatus::Open,
            expires_at_ms: now + i64::from(self.cfg.offers.expire_secs) * 1000,
            hop: 0,
            declined: vec![],
            queued_store_id: None,
        });
        let bindings = self.bindings();
        let rules = bindings.for_day(day);
        let member_id = lead.member_id.as_deref().filter(|_| rules.is_some());
        // Where a read costs a round trip, start from what this replica last saw: the commit
        // is conditional on it and says what moved.
        let mut known = self.store.route_guess(&lead.lead_id, member_id);
        for attempt in 0..crate::storage::MAX_ATTEMPTS {
            // The stored decision, and step 3: the member's binding and trail head, as read
            // now (in one step where storage can).
            let state = match known.take() {
                Some(state) => state,
                None => {
                    self.store
                        .route_state_async(&lead.lead_id, member_id)
                        .await?
                }
            };
            if let Some(stored) = &state.decision {
                return Ok(replayed(stored));
            }
            let member = match (lead.member_id.as_deref(), rules) {
                (Some(m), Some(rules)) => Some(bind::Member::of(
                    m,
                    state.head,
                    state.binding,
                    rules,
                    net,
                    lead,
                    now,
                )),
                _ => None,
            };
            let chain_of = || {
                member
                    .as_ref()
                    .map(|m| Chain::new(m.member_id, m.head.clone()))
            };
            let stages = bind::plan(net, lead, member.as_ref(), now);
            let mut picker = pick::Picker::new(self, &snap, lead, &valid, &stages, &[], day);
            let placed = loop {
                let Some(p) = picker.next() else {
                    break Placed::Nowhere(picker.why());
                };
                let mut chain = chain_of();
                // An offer binds when it is accepted, not when it is made.
                let binding = match (&member, &offer, chain.as_mut()) {
                    (Some(m), None, Some(c)) => {
                        Some(bind::commit(c, m, net, lead, Some(p.guide), now))
                    }
                    _ => None,
                };
                let take = Some((p.guide, p.capacity));
                let d = Arc::new(Decision {
                    assigned: Some((net.store(p.store).id.clone(), net.guide(p.guide).id.clone())),
                    score: p.score,
                    reasons: p.reasons,
                    alternatives: p.alternatives,
                    propensity: p.propensity,
                    level: Some(p.level),
                    binding,
                    offer: offer.clone(),
                    ..self.blank_decision(&snap, lead, now, day, recorded_by)
                });
                if let (Some(_), Some(c)) = (&offer, chain.as_mut()) {
                    let (s, g) = d.assigned.clone().unwrap_or_default();
                    self.offer_event(
                        c,
                        &d,
                        OfferAction::Offered,
                        (&s, &g),
                        ("route", recorded_by),
                        "routed as an offer",
                    );
                }
                match self
                    .commit_async(&snap, &d, None, take, None, chain.as_ref())
                    .await?
                {
                    Attempt::Done(d) => break Placed::Done(d),
                    Attempt::Again(now) => break Placed::Again(now),
                    Attempt::Full => {}
                }
            };
            let why = match placed {
                Placed::Done(d) => {
                    self.sync_async().await?;
                    return Ok(d);
                }
                Placed::Again(now) => {
                    // Told what moved: decide again at once; else read after a pause.
                    match now {
                        Some(now) => known = Some(*now),
                        None => pause.after(attempt).await,
                    }
                    continue;
                }
                Placed::Nowhere(why) => why,
            };
            let mut chain = chain_of();
            let binding = match (&member, chain.as_mut()) {
                (Some(m), Some(c)) => Some(bind::commit(c, m, net, lead, None, now)),
                _ => None,
            };
            let d = Arc::new(Decision {
                unrouted: Some(why),
                reasons: Reasons::unrouted(why),
                binding,
                ..self.blank_decision(&snap, lead, now, day, recorded_by)
            });
            match self
                .commit_async(&snap, &d, None, None, None, chain.as_ref())
                .await?
            {
                Attempt::Done(d) => {
                    self.sync_async().await?;
                    return Ok(d);
                }
                Attempt::Again(Some(now)) => known = Some(*now),
                Attempt::Full | Attempt::Again(None) => pause.after(attempt).await,
            }
        }
        Err(StorageError::Contended(format!(
            "lead {}: other writers kept moving its member's trail",
            crate::domain::short(&lead.lead_id)
        ))
        .into())
    }

    /// Commits `d` (new when `replaces` is `None`, else replacing that version), taking
    /// `(guide, capacity)`, giving back `release`, with `chain`'s events; keeps this engine's
    /// book in step with what storage reports.
    pub(crate) fn commit(
        &self,
        snap: &Snapshot,
        d: &Arc<Decision>,
        replaces: Option<u32>,
        take: Option<(u32, u32)>,
        release: Option<(&str, Day)>,
        chain: Option<&Chain<'_>>,
    ) -> Result<Attempt, StorageError> {
        crate::storage::block_on(self.commit_async(snap, d, replaces, take, release, chain))
    }

    /// [`Engine::commit`], waiting on storage without blocking the thread.
    async fn commit_async(
        &self,
        snap: &Snapshot,
        d: &Arc<Decision>,
        replaces: Option<u32>,
        take: Option<(u32, u32)>,
        release: Option<(&str, Day)>,
        chain: Option<&Chain<'_>>,
    ) -> Result<Attempt, StorageError> {
        let net = &snap.network;
        // Only offers give notices (nothing to work out on a plain route). A released guide
        // is one the offer left (declined, or not answered in time).
        let notices = match d.offer {
            None => Vec::new(),
            Some(_) => {
                let left = release.map(|(g, _)| {
                    let store = net
                        .guide_index(g)
                        .map_or("", |i| &*net.store(net.guide(i).store).id);
                    (g, store)
                });
                crate::storage::OfferNotice::of(d, left, self.clock.now_ms())
            }
        };
        let commit = RouteCommit {
            decision: d,
            replaces,
            take: take.map(|(g, capacity)| Take {
                guide_id: &net.guide(g).id,
                day: d.day,
                capacity,
            }),
            release,
            events: chain.map_or(&[], |c| c.appends()),
            head: chain.map(HeadAt::of),
            notices: &notices,
        };
        Ok(match self.store.commit_route_async(&commit).await? {
            Committed::Stored { used } => {
                if !notices.is_empty() {
                    self.noticed.notify_one();
                }
                if let (Some((g, _)), Some(used)) = (take, used) {
                    snap.book.observe(g, d.day, used);
                }
                if let Some((guide, day)) = release
                    && let Some(g) = net.guide_index(guide)
                {
                    snap.book.release(g, day);
                }
                Attempt::Done(d.clone())
            }
            Committed::Replayed(stored) => Attempt::Done(replayed(&stored)),
            Committed::Full { used } => {
                if let Some((g, _)) = take {
                    snap.book.observe(g, d.day, used);
                }
                Attempt::Full
            }
            Committed::HeadMoved(now) => Attempt::Again(now),
            Committed::Moved(_) => Attempt::Again(None),
        })
    }

    /// Tries `stages` in order, skipping guides in `exclude`: `commit` is offered each ranked
    /// guide with capacity left (as this engine last saw it) until one commits; one that filled
    /// up first is passed over. Returns why nothing was placed otherwise.
    #[allow(clippy::too_many_arguments)]
    fn pick(
        &self,
        snap: &Snapshot,
        lead: &Lead,
        valid: &ValidLead,
        stages: &[bind::Stage],
        exclude: &[Arc<str>],
        day: Day,
        mut commit: impl FnMut(Picked) -> Result<Attempt, RouteError>,
    ) -> Result<Placed, RouteError> {
        let mut picker = pick::Picker::new(self, snap, lead, valid, stages, exclude, day);
        while let Some(p) = picker.next() {
            match commit(p)? {
                Attempt::Done(d) => return Ok(Placed::Done(d)),
                Attempt::Again(now) => return Ok(Placed::Again(now)),
                Attempt::Full => {}
            }
        }
        Ok(Placed::Nowhere(picker.why()))
    }

    /// A new decision for `lead` by the policy in service, not yet routed or explained.
    fn blank_decision(
        &self,
        snap: &Snapshot,
        lead: &Lead,
        now: i64,
        day: Day,
        recorded_by: Option<&str>,
    ) -> Decision {
        let choice = snap.choose(lead);
        Decision {
            decision_id: self.next_id(),
            lead: lead.clone(),
            assigned: None,
            unrouted: None,
            policy: choice.policy.name().to_string(),
            policy_version: choice.policy.version().to_string(),
            arm: choice.arm.map(|(e, a)| (e.to_string(), a.to_string())),
            score: 0.0,
            reasons: Reasons::default(),
            alternatives: Vec::new(),
            propensity: 1.0,
            level: None,
            decided_at_ms: now,
            day,
            replayed: false,
            binding: None,
            offer: None,
            model_versions: snap.network.learned_models().versions(),
            recorded_by: recorded_by.map(str::to_string),
            version: 1,
        }
    }

    fn sync(&self) -> Result<(), StorageError> {
        crate::storage::block_on(self.sync_async())
    }

    async fn sync_async(&self) -> Result<(), StorageError> {
        if self.cfg.sync_decisions {
            self.store.flush_async().await?;
        }
        Ok(())
    }

    fn next_id(&self) -> String {
        format!("dec-{:016x}", self.seq.fetch_add(1, Ordering::Relaxed))
    }
}

/// Checks binding rule sets: each valid, versions unique, at least one.
pub fn check_bindings(sets: &[BindingRuleSet]) -> Result<Vec<(Day, BindingRuleSet)>, String> {
    if sets.is_empty() {
        return Err("bindings: at least one rule set is needed".into());
    }
    let mut out: Vec<(Day, BindingRuleSet)> = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let day = set.check(&format!("bindings[{i}]"))?;
        if out.iter().any(|(_, s)| s.version == set.version) {
            return Err(format!(
                "bindings[{i}].version: {:?} appears twice",
                set.version
            ));
        }
        if out.iter().any(|(d, _)| *d == day) {
            return Err(format!(
                "bindings[{i}].effective_from: two rule sets start on {day}"
            ));
        }
        out.push((day, set.clone()));
    }
    Ok(out)
}

/// A stored decision as returned to a repeated request.
pub(crate) fn replayed(stored: &Decision) -> Arc<Decision> {
    let mut d = stored.clone();
    d.replayed = true;
    Arc::new(d)
}

/// The local hour (0..=23) of a Unix-millisecond instant in a time zone.
pub fn local_hour(ms: i64, tz: chrono_tz::Tz) -> u32 {
    let utc = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    chrono::Timelike::hour(&utc.with_timezone(&tz))
}

/// The business day of a Unix-millisecond instant in a time zone.
pub fn business_day(ms: i64, tz: chrono_tz::Tz) -> Day {
    let utc = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Day::of_date(utc.with_timezone(&tz).date_naive())
}

#[cfg(test)]
pub(crate) mod tests;
