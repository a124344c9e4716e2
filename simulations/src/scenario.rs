//! Scenarios: what an analyst writes in TOML to ask "what would these policies have done?".
//!
//! ```toml
//! name = "December, Guangdong campaign"
//! seed = 7
//! days = 7
//! start = "2026-12-01"            # first business day
//! time_zone = "Asia/Shanghai"
//!
//! [network]
//! source = "demo"                 # demo | reference | dir (path = …) | generated (stores, provinces)
//! capacity_scale = 1.0            # every guide's daily capacity × this (rounded, at least 1)
//!
//! [routing]                       # the engine's [routing]; max_level defaults to "city" here
//! radius_km = 0.0
//!
//! [truth]                         # hidden from every policy
//! base = -2.0                     # logit intercept
//! preference = 2.5                # weight of the true regional preference match
//! distance = 1.5                  # weight of exp(−km / distance_scale_km)
//! distance_scale_km = 8.0
//! tier = 0.5
//! skill_sd = 0.4                  # spread of guides' hidden skill (logit units)
//! preference_noise = 0.3          # how far each store's true preference strays from the shipped matrix
//! preference_drift = 0.0          # how far each district's taste has drifted from it (what learning finds)
//! order_value_yuan = 400.0        # mean basket; lognormal with sigma order_value_sigma
//! order_value_sigma = 0.5
//! offer_accept = 0.8              # a guide offered a lead accepts; offer_decline declines;
//! offer_decline = 0.1             # the rest let it expire
//!
//! [demand]
//! leads_per_day = 20000
//! hourly = [ … 24 weights … ]     # the daily curve (default: a retail day, peaks at noon and 21h)
//! channels = { MINI_PROGRAM = 0.6, ECOMMERCE = 0.2, LIVESTREAM = 0.1, STORE_QR = 0.1 }
//! second_interest = 0.3           # share of leads naming two categories
//! stated = 1.0                    # share of leads that state their interests (the rest state
//!                                 # none: the router has only their region's taste to go on)
//! spread_km = 4.0                 # how far leads live from the store they are drawn near
//!
//! [[demand.bursts]]               # livestream bursts: extra leads in a window
//! day = 2                         # omit for every day
//! hour = 20
//! minutes = 90
//! leads = 5000
//! channel = "LIVESTREAM"
//! region = "440000"               # optional: only near stores in this region
//!
//! [[demand.regions]]              # regional interest profiles
//! region = "440000"
//! weight = 2.0                    # arrivals near its stores × this
//! interests = { womenswear = 3.0, shoes = 1.0 }
//!
//! [[policies]]                    # the router's [policy] tables, compared side by side
//! name = "scored"
//! [[policies]]
//! name = "dual_price"
//!
//! [members]                       # who the leads are (see `Members`; these are the defaults)
//! anonymous = 0.0                 # share of leads without a member
//! returning = 0.5                 # share of member leads from members seen on an earlier day
//! share_link = 0.25               # share of member leads through a guide's share link
//! share_link_own = 0.7            # of a returning member's links, the share from their own guide
//! guide_sells = { MINI_PROGRAM = 0.8, STORE_QR = 0.9, LIVESTREAM = 0.4, ECOMMERCE = 0.2 }
//! refund_rate = 0.08              # share of orders refunded within refund_days
//! refund_days = 14
//! refund_partial = 0.3            # of refunds, the share that refund part of the order
//!
//! [[bindings]]                    # the router's [[bindings]]: every policy routes once under each
//! version = "protect-30"          # (the first is in service)
//! [[bindings]]
//! version = "protect-90"
//! protection_days = 90
//!
//! [[ownership]]                   # the router's [[attribution.ownership]]: every run's trails are
//! version = "ownership-v1"        # restated under each (the first is in service)
//!
//! [[splits]]                      # the router's [[attribution.splits]]: likewise (first: in service)
//! version = "361"
//! [[splits]]
//! version = "25-70-5"
//! owner = 25
//! fulfilling_store = 70
//! o2o_centre = 5
//!
//! [offers]                        # the router's [offers]: these channels route as offers
//! channels = ["LIVESTREAM"]
//! expire_secs = 300
//! max_hops = 3
//!
//! [models]                        # learned artifacts every engine uses (relative paths: to this file)
//! preference = "../../router/data/demo/models/preference.json"
//!
//! [learning]                      # the nightly loop, run on each policy's own history so far
//! preference = true               # the preference matrix from every order so far (`leadrouter models preference`)
//! preference_half_life_days = 90.0
//! preference_shrinkage = 30.0
//! skill = true                    # guide skill from every outcome so far (`leadrouter models skill`)
//! propensity = true               # conversion propensity from every routed lead so far (`leadrouter models propensity`)
//! prices = true                   # dual_price's prices from the day just routed (`leadrouter models prices`)
//!
//! [yardstick]
//! exact_max_edges = 1000000       # larger days use the dual bound
//! dual_iterations = 300
//! ```

use leadrouter::attribution::rules::OwnershipRuleSet;
use leadrouter::attribution::split::SplitPolicy;
use leadrouter::domain::binding::BindingRuleSet;
use leadrouter::domain::{Channel, Day};
use leadrouter::engine::CandidateConfig;
use leadrouter::policy::PolicyConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_days")]
    pub days: u32,
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default = "default_tz")]
    pub time_zone: String,
    #[serde(default)]
    pub network: NetworkSource,
    #[serde(default = "default_routing")]
    pub routing: CandidateConfig,
    #[serde(default)]
    pub truth: Truth,
    #[serde(default)]
    pub demand: Demand,
    #[serde(default = "default_policies")]
    pub policies: Vec<PolicyConfig>,
    #[serde(default = "default_splits")]
    pub splits: Vec<SplitPolicy>,
    /// The router's `[[bindings]]` rule sets, compared side by side: every policy routes the
    /// same arrivals once under each (the first is the rule set in service).
    #[serde(default = "default_bindings")]
    pub bindings: Vec<BindingRuleSet>,
    /// The router's `[[attribution.ownership]]` rule sets, compared side by side on the same
    /// trails (the first is the rule set in service).
    #[serde(default = "default_ownership")]
    pub ownership: Vec<OwnershipRuleSet>,
    /// Who the leads are (`[members]`).
    #[serde(default)]
    pub members: Members,
    #[serde(default)]
    pub yardstick: Yardstick,
    /// The router's `[offers]`: leads of these channels are offered to guides, who accept,
    /// decline or let the offer expire as `truth.offer_accept` / `offer_decline` say.
    #[serde(default)]
    pub offers: leadrouter::domain::offer::OfferConfig,
    /// Learned artifacts every engine of the run uses (`[models]`).
    #[serde(default)]
    pub models: SimModels,
    /// The nightly learning loop (`[learning]`).
    #[serde(default)]
    pub learning: Learning,
}

/// `[learning]`: what each policy's engine learns each night from the history it has produced
/// so far, through the production code (`leadrouter::app::learn`), and puts in service for the
/// next day. Every model is learned only from earlier days: the report is out of sample.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Learning {
    /// The regional preference matrix from every sampled order so far (district rows where the
    /// orders support them). Default true.
    pub preference: bool,
    /// The fit's half-life in days (default 90) and shrinkage κ (default 30), as
    /// `leadrouter models preference`.
    pub preference_half_life_days: f64,
    pub preference_shrinkage: f64,
    /// Guide skill from every sampled outcome so far. Default true.
    pub skill: bool,
    /// Conversion propensity from every routed lead and its outcome so far (`scored`,
    /// `softmax` and `dual_price` add `policy.propensity · p̂`). Default true.
    pub propensity: bool,
    /// `dual_price`'s capacity prices from the day just routed, warm-started from the night
    /// before. Default true.
    pub prices: bool,
}

impl Default for Learning {
    fn default() -> Self {
        Self {
            preference: true,
            preference_half_life_days: 90.0,
            preference_shrinkage: 30.0,
            skill: true,
            propensity: true,
            prices: true,
        }
    }
}

/// `[models]`: e.g. `preference = "preference.json"` (relative to the scenario file), the
/// artifact `leadrouter models preference` writes. Without it the network's matrix is used.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimModels {
    pub preference: Option<PathBuf>,
    /// A propensity artifact (`leadrouter models propensity`): `scored` adds its probability.
    pub propensity: Option<PathBuf>,
}

fn default_name() -> String {
    "scenario".into()
}
fn default_days() -> u32 {
    7
}
fn default_start() -> String {
    "2026-12-01".into()
}
fn default_tz() -> String {
    "Asia/Shanghai".into()
}
fn default_routing() -> CandidateConfig {
    CandidateConfig {
        max_level: "city".into(),
        ..Default::default()
    }
}
fn default_policies() -> Vec<PolicyConfig> {
    vec![
        PolicyConfig::default(),
        PolicyConfig::Nearest,
        PolicyConfig::RoundRobin,
        PolicyConfig::DualPrice(Default::default()),
        PolicyConfig::Balance,
        PolicyConfig::Ranking { seed: 0 },
    ]
}
fn default_splits() -> Vec<SplitPolicy> {
    vec![SplitPolicy::default()]
}
fn default_bindings() -> Vec<BindingRuleSet> {
    vec![BindingRuleSet::default()]
}
fn default_ownership() -> Vec<OwnershipRuleSet> {
    vec![OwnershipRuleSet::default()]
}

/// `[members]`: who the leads are. A member lead carries a member id, so the engine binds and
/// routes it by the binding rules, and the member's touches, orders and refunds go through the
/// production attribution code (ownership by the rule set in service, the split in service),
/// leaving a hash-chained trail per member.
///
/// A new member lives near the store their first lead is drawn near and keeps that lead's
/// interests as their taste; a returning member comes back from home with the same taste. A
/// member lead's touch follows its channel: `STORE_QR` a store visit (their home store),
/// `LIVESTREAM` a livestream view (hosted by a guide of their home store), `ECOMMERCE` an
/// e-commerce visit, a share link a share-link click; the guide who serves a lead chats with
/// the member and sells when `guide_sells` says so (the order then names them as its sharing
/// guide), else the member pays on the channel alone (an e-commerce order without a guide
/// ships from the warehouse: no fulfilling store). Orders are paid an hour after their lead.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Members {
    /// Share of leads with no member (not logged in; each order is a guest checkout of its
    /// own). Default 0.
    pub anonymous: f64,
    /// Share of member leads from a member seen on an earlier day (drawn uniformly among
    /// them); the rest are new members. Default 0.5.
    pub returning: f64,
    /// Share of member leads that come through a guide's share link (channel `MINI_PROGRAM`,
    /// the guide as referrer). Default 0.25.
    pub share_link: f64,
    /// Of a returning member's share links, the share sent by their own guide (the one they
    /// are or were last bound to in that run); the rest, and a new member's, come from a guide
    /// of a store in their district. Default 0.7.
    pub share_link_own: f64,
    /// Per channel: the chance that the guide serving a lead also makes the sale. Default
    /// `MINI_PROGRAM` 0.8, `STORE_QR` 0.9, `LIVESTREAM` 0.4, `ECOMMERCE` 0.2; 0.5 for a
    /// channel not named.
    pub guide_sells: BTreeMap<String, f64>,
    /// Share of orders refunded, at a time drawn uniformly in the `refund_days` after the
    /// order; of those, `refund_partial` refund part of the order (10–90 %). Defaults 0.08,
    /// 14, 0.3. A refund due after the last day is outside the run.
    pub refund_rate: f64,
    pub refund_days: u32,
    pub refund_partial: f64,
}

impl Default for Members {
    fn default() -> Self {
        Self {
            anonymous: 0.0,
            returning: 0.5,
            share_link: 0.25,
            share_link_own: 0.7,
            guide_sells: [
                ("MINI_PROGRAM", 0.8),
                ("STORE_QR", 0.9),
                ("LIVESTREAM", 0.4),
                ("ECOMMERCE", 0.2),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            refund_rate: 0.08,
            refund_days: 14,
            refund_partial: 0.3,
        }
    }
}

impl Members {
    /// Whether any lead has a member.
    pub fn any(&self) -> bool {
        self.anonymous < 1.0
    }

    /// The chance that the guide serving a lead of `channel` sells.
    pub fn sells(&self, channel: Channel) -> f64 {
        self.guide_sells
            .get(channel.as_str())
            .copied()
            .unwrap_or(0.5)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        for (k, v) in [
            ("anonymous", self.anonymous),
            ("returning", self.returning),
            ("share_link", self.share_link),
            ("share_link_own", self.share_link_own),
            ("refund_rate", self.refund_rate),
            ("refund_partial", self.refund_partial),
        ] {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(err(format!("members.{k}: must be in [0, 1], got {v}")));
            }
        }
        for (k, v) in &self.guide_sells {
            if channel(k).is_none() {
                return Err(err(format!(
                    "members.guide_sells.{k}: unknown channel (one of {})",
                    Channel::ALL.map(|c| c.as_str()).join(", ")
                )));
            }
            if !v.is_finite() || !(0.0..=1.0).contains(v) {
                return Err(err(format!(
                    "members.guide_sells.{k}: must be in [0, 1], got {v}"
                )));
            }
        }
        if !(1..=365).contains(&self.refund_days) {
            return Err(err(format!(
                "members.refund_days: must be in 1..=365, got {}",
                self.refund_days
            )));
        }
        Ok(())
    }
}

/// Where the network comes from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSource {
    /// `demo`, `reference`, `dir` or `generated`.
    pub source: String,
    /// For `dir`: a network directory (stores.csv, guides.csv, preference.csv); relative to
    /// the scenario file.
    pub path: Option<PathBuf>,
    /// For `generated`: stores over the real region table, and the provinces (6-digit codes;
    /// empty for all).
    pub stores: usize,
    pub provinces: Vec<String>,
    pub capacity_scale: f64,
}

impl Default for NetworkSource {
    fn default() -> Self {
        Self {
            source: "demo".into(),
            path: None,
            stores: 2000,
            provinces: Vec::new(),
            capacity_scale: 1.0,
        }
    }
}

/// The hidden ground truth: the probability that lead i converts with guide j is
/// `σ(base + preference·P_ij + distance·exp(−km/scale) + tier·(tier_j − 1)/4 + skill_j)`, where
/// P_ij is the lead's interests matched against the store's *true* regional preference.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Truth {
    pub base: f64,
    pub preference: f64,
    pub distance: f64,
    pub distance_scale_km: f64,
    pub tier: f64,
    pub skill_sd: f64,
    pub preference_noise: f64,
    /// How far each district's true taste has drifted from the shipped matrix (a lognormal
    /// factor per district and category, shared by the district's stores): what a stale matrix
    /// misses and a model learned from orders can find.
    pub preference_drift: f64,
    pub order_value_yuan: f64,
    pub order_value_sigma: f64,
    /// Chance that a guide accepts an offer; `offer_decline` that they decline it; the rest
    /// let it expire.
    pub offer_accept: f64,
    pub offer_decline: f64,
}

impl Default for Truth {
    fn default() -> Self {
        Self {
            base: -2.0,
            preference: 2.5,
            distance: 1.5,
            distance_scale_km: 8.0,
            tier: 0.5,
            skill_sd: 0.4,
            preference_noise: 0.3,
            preference_drift: 0.0,
            order_value_yuan: 400.0,
            order_value_sigma: 0.5,
            offer_accept: 0.8,
            offer_decline: 0.1,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Demand {
    pub leads_per_day: u32,
    pub hourly: Vec<f64>,
    pub channels: BTreeMap<String, f64>,
    pub second_interest: f64,
    pub stated: f64,
    pub spread_km: f64,
    pub bursts: Vec<Burst>,
    pub regions: Vec<RegionProfile>,
}

/// A retail day: quiet at night, a lunch peak, the evening peak at 21h.
pub const RETAIL_DAY: [f64; 24] = [
    0.4, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.6, 3.2, 3.6, 3.3, 3.0, 3.0, 3.2, 3.5, 3.8,
    4.2, 4.8, 5.2, 4.0, 1.6,
];

impl Default for Demand {
    fn default() -> Self {
        Self {
            leads_per_day: 20_000,
            hourly: RETAIL_DAY.to_vec(),
            channels: [
                ("MINI_PROGRAM", 0.6),
                ("ECOMMERCE", 0.2),
                ("LIVESTREAM", 0.1),
                ("STORE_QR", 0.1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            second_interest: 0.3,
            stated: 1.0,
            spread_km: 4.0,
            bursts: Vec::new(),
            regions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// 0-based day of the run; every day when omitted.
    pub day: Option<u32>,
    pub hour: u32,
    pub minutes: u32,
    pub leads: u32,
    #[serde(default = "default_burst_channel")]
    pub channel: String,
    pub region: Option<String>,
}

fn default_burst_channel() -> String {
    "LIVESTREAM".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionProfile {
    pub region: String,
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default)]
    pub interests: BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Yardstick {
    /// Days with at most this many edges are solved exactly; larger ones get the dual bound.
    pub exact_max_edges: usize,
    pub dual_iterations: usize,
}

impl Default for Yardstick {
    fn default() -> Self {
        Self {
            exact_max_edges: 1_000_000,
            dual_iterations: 300,
        }
    }
}

/// A scenario that breaks a rule; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

/// Checked values derived from a scenario.
#[derive(Debug, Clone)]
pub struct Checked {
    pub start: Day,
    pub time_zone: chrono_tz::Tz,
    /// Channels and their cumulative weights.
    pub channels: Vec<(Channel, f64)>,
    pub burst_channels: Vec<Channel>,
}

pub fn channel(name: &str) -> Option<Channel> {
    Channel::ALL.into_iter().find(|c| c.as_str() == name)
}

fn err(s: String) -> ScenarioError {
    ScenarioError(s)
}

impl Scenario {
    /// Reads and checks a scenario file; `network.path` is taken relative to the file.
    pub fn read(path: &Path) -> Result<(Self, Checked), ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let mut s = Self::parse(&text).map_err(|e| err(format!("{}: {}", path.display(), e.0)))?;
        if let (Some(p), Some(dir)) = (&s.network.path, path.parent())
            && p.is_relative()
        {
            s.network.path = Some(dir.join(p));
        }
        for p in [&mut s.models.preference, &mut s.models.propensity] {
            if let (Some(rel), Some(dir)) = (p.as_ref(), path.parent())
                && rel.is_relative()
            {
                *p = Some(dir.join(rel));
            }
        }
        let checked = s
            .check()
            .map_err(|e| err(format!("{}: {}", path.display(), e.0)))?;
        Ok((s, checked))
    }

    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))
    }

    /// Checks every key; the message names it.
    pub fn check(&self) -> Result<Checked, ScenarioError> {
        if self.name.is_empty() || self.name.len() > 200 {
            return Err(err("name: must be 1..=200 bytes".into()));
        }
        if !(1..=366).contains(&self.days) {
            return Err(err(format!("days: must be 1..=366, got {}", self.days)));
        }
        let start = Day::parse_date(&self.start).map_err(|e| err(format!("start: {e}")))?;
        let time_zone: chrono_tz::Tz = self
            .time_zone
            .parse()
            .map_err(|_| err(format!("time_zone: unknown zone {:?}", self.time_zone)))?;
        let n = &self.network;
        match n.source.as_str() {
            "demo" | "reference" => {}
            "dir" if n.path.is_none() => {
                return Err(err("network.path: source \"dir\" needs a path".into()));
            }
            "dir" => {}
            "generated" if !(1..=200_000).contains(&n.stores) => {
                return Err(err(format!(
                    "network.stores: must be 1..=200000, got {}",
                    n.stores
                )));
            }
            "generated" => {}
            other => {
                return Err(err(format!(
                    "network.source: must be demo, reference, dir or generated, got {other:?}"
                )));
            }
        }
        for (i, p) in n.provinces.iter().enumerate() {
            if p.len() != 6 || !p.ends_with("0000") || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!(
                    "network.provinces[{i}]: must be a 6-digit province code like 440000, got {p:?}"
                )));
            }
        }
        if !n.capacity_scale.is_finite()
            || !(0.0..=100.0).contains(&n.capacity_scale)
            || n.capacity_scale == 0.0
        {
            return Err(err(format!(
                "network.capacity_scale: must be in (0, 100], got {}",
                n.capacity_scale
            )));
        }
        self.routing.check().map_err(err)?;
        let l = &self.learning;
        if !l.preference_half_life_days.is_finite() || l.preference_half_life_days <= 0.0 {
            return Err(err(format!(
                "learning.preference_half_life_days: must be > 0, got {}",
                l.preference_half_life_days
            )));
        }
        if !l.preference_shrinkage.is_finite() || l.preference_shrinkage < 0.0 {
            return Err(err(format!(
                "learning.preference_shrinkage: must be >= 0, got {}",
                l.preference_shrinkage
            )));
        }
        let t = &self.truth;
        for (k, v) in [
            ("base", t.base),
            ("preference", t.preference),
            ("distance", t.distance),
            ("tier", t.tier),
        ] {
            if !v.is_finite() || v.abs() > 50.0 {
                return Err(err(format!(
                    "truth.{k}: must be finite and within ±50, got {v}"
                )));
            }
        }
        for (k, v, max) in [
            ("distance_scale_km", t.distance_scale_km, 10_000.0),
            ("order_value_yuan", t.order_value_yuan, 1_000_000.0),
        ] {
            if !v.is_finite() || v <= 0.0 || v > max {
                return Err(err(format!("truth.{k}: must be in (0, {max}], got {v}")));
            }
        }
        for (k, v) in [
            ("skill_sd", t.skill_sd),
            ("preference_noise", t.preference_noise),
            ("preference_drift", t.preference_drift),
            ("order_value_sigma", t.order_value_sigma),
        ] {
            if !v.is_finite() || !(0.0..=5.0).contains(&v) {
                return Err(err(format!("truth.{k}: must be in [0, 5], got {v}")));
            }
        }
        for (k, v) in [
            ("offer_accept", t.offer_accept),
            ("offer_decline", t.offer_decline),
        ] {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(err(format!("truth.{k}: must be in [0, 1], got {v}")));
            }
        }
        if t.offer_accept + t.offer_decline > 1.0 {
            return Err(err(format!(
                "truth.offer_decline: offer_accept + offer_decline must be at most 1, got {}",
                t.offer_accept + t.offer_decline
            )));
        }
        self.offers.check().map_err(err)?;
        let d = &self.demand;
        if d.leads_per_day > 5_000_000 {
            return Err(err(format!(
                "demand.leads_per_day: at most 5000000, got {}",
                d.leads_per_day
            )));
        }
        if d.hourly.len() != 24
            || d.hourly.iter().any(|w| !w.is_finite() || *w < 0.0)
            || d.hourly.iter().sum::<f64>() <= 0.0
        {
            return Err(err(
                "demand.hourly: must be 24 finite weights >= 0, not all 0".into(),
            ));
        }
        let mut channels = Vec::new();
        let mut total = 0.0;
        for (k, &v) in &d.channels {
            let c = channel(k).ok_or_else(|| {
                err(format!(
                    "demand.channels.{k}: unknown channel (one of {})",
                    Channel::ALL.map(|c| c.as_str()).join(", ")
                ))
            })?;
            if !v.is_finite() || v < 0.0 {
                return Err(err(format!("demand.channels.{k}: must be >= 0, got {v}")));
            }
            total += v;
            channels.push((c, total));
        }
        if total <= 0.0 {
            return Err(err(
                "demand.channels: at least one weight must be > 0".into()
            ));
        }
        for (k, v) in [("second_interest", d.second_interest), ("stated", d.stated)] {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(err(format!("demand.{k}: must be in [0, 1], got {v}")));
            }
        }
        if !d.spread_km.is_finite() || !(0.0..=200.0).contains(&d.spread_km) {
            return Err(err(format!(
                "demand.spread_km: must be in [0, 200], got {}",
                d.spread_km
            )));
        }
        let mut burst_channels = Vec::new();
        for (i, b) in d.bursts.iter().enumerate() {
            let at = format!("demand.bursts[{i}]");
            if b.day.is_some_and(|x| x >= self.days) {
                return Err(err(format!("{at}.day: must be below days ({})", self.days)));
            }
            if b.hour > 23 {
                return Err(err(format!("{at}.hour: must be 0..=23, got {}", b.hour)));
            }
            if b.minutes == 0 || b.hour * 60 + b.minutes > 24 * 60 {
                return Err(err(format!(
                    "{at}.minutes: must be >= 1 and end by midnight, got {}",
                    b.minutes
                )));
            }
            if b.leads > 5_000_000 {
                return Err(err(format!("{at}.leads: at most 5000000, got {}", b.leads)));
            }
            burst_channels
                .push(channel(&b.channel).ok_or_else(|| {
                    err(format!("{at}.channel: unknown channel {:?}", b.channel))
                })?);
            if let Some(r) = &b.region {
                check_prefix(r).map_err(|e| err(format!("{at}.region: {e}")))?;
            }
        }
        for (i, r) in d.regions.iter().enumerate() {
            let at = format!("demand.regions[{i}]");
            check_prefix(&r.region).map_err(|e| err(format!("{at}.region: {e}")))?;
            if !r.weight.is_finite() || !(0.0..=1000.0).contains(&r.weight) {
                return Err(err(format!(
                    "{at}.weight: must be in [0, 1000], got {}",
                    r.weight
                )));
            }
            for (k, v) in &r.interests {
                if !v.is_finite() || *v < 0.0 {
                    return Err(err(format!("{at}.interests.{k}: must be >= 0, got {v}")));
                }
            }
        }
        if self.policies.is_empty() || self.policies.len() > 16 {
            return Err(err("policies: name 1..=16 policies".into()));
        }
        if self.splits.is_empty() || self.splits.len() > 8 {
            return Err(err("splits: name 1..=8 split policies".into()));
        }
        if self.bindings.is_empty() || self.bindings.len() > 8 {
            return Err(err("bindings: name 1..=8 binding rule sets".into()));
        }
        if self.ownership.is_empty() || self.ownership.len() > 8 {
            return Err(err("ownership: name 1..=8 ownership rule sets".into()));
        }
        if self.policies.len() * self.bindings.len() > 32 {
            return Err(err(format!(
                "bindings: every policy routes once under each binding rule set: at most 32 \
                 runs, got {} policies × {} rule sets",
                self.policies.len(),
                self.bindings.len()
            )));
        }
        // Each alternative is in force for the whole run: from a day not after `start`.
        let alternatives = self
            .splits
            .iter()
            .enumerate()
            .map(|(i, x)| {
                (
                    "splits",
                    i,
                    x.version.clone(),
                    x.check(&format!("splits[{i}]")),
                )
            })
            .chain(self.bindings.iter().enumerate().map(|(i, x)| {
                (
                    "bindings",
                    i,
                    x.version.clone(),
                    x.check(&format!("bindings[{i}]")),
                )
            }))
            .chain(self.ownership.iter().enumerate().map(|(i, x)| {
                (
                    "ownership",
                    i,
                    x.version.clone(),
                    x.check(&format!("ownership[{i}]")),
                )
            }));
        let mut versions = std::collections::BTreeSet::new();
        for (list, i, version, from) in alternatives {
            let from = from.map_err(err)?;
            if from > start {
                return Err(err(format!(
                    "{list}[{i}].effective_from: each alternative is in force for the whole run, \
                     so it must not be after start ({})",
                    self.start
                )));
            }
            if !versions.insert((list, version.clone())) {
                return Err(err(format!(
                    "{list}[{i}].version: {version:?} appears twice"
                )));
            }
        }
        self.members.check()?;
        if self.yardstick.dual_iterations > 100_000 {
            return Err(err("yardstick.dual_iterations: at most 100000".into()));
        }
        Ok(Checked {
            start,
            time_zone,
            channels,
            burst_channels,
        })
    }
}

/// A region given as a 6-digit code prefix: a province (440000), a city (440100) or a
/// district (440106).
fn check_prefix(code: &str) -> Result<(), String> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) || code == "000000" {
        return Err(format!(
            "must be a 6-digit region code like 440000, got {code:?}"
        ));
    }
    Ok(())
}

/// Whether a store's 12-digit district code lies in a 6-digit region.
pub fn in_region(store_code: u64, region: &str) -> bool {
    let r: u64 = region.parse().unwrap_or(0) * 1_000_000;
    if r.is_multiple_of(10_000_000_000) {
        store_code / 10_000_000_000 == r / 10_000_000_000
    } else if r.is_multiple_of(100_000_000) {
        store_code / 100_000_000 == r / 100_000_000
    } else {
        store_code / 1_000_000 == r / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_scenario_has_working_defaults() {
        let s = Scenario::parse("").unwrap();
        s.check().unwrap();
        assert_eq!(s.policies.len(), 6);
        assert_eq!(s.routing.max_level, "city");
    }

    #[test]
    fn the_documented_example_parses() {
        let doc: String = include_str!("scenario.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .map(|l| if l.contains("…") { "" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let s = Scenario::parse(&doc).unwrap();
        s.check().unwrap();
        assert_eq!(s.demand.bursts.len(), 1);
        assert_eq!(s.demand.regions[0].interests["womenswear"], 3.0);
        // The documented [members] are the defaults.
        assert_eq!(s.members, Members::default());
        assert_eq!(s.bindings[1].protection_days, 90);
        assert_eq!(s.splits[1].owner, 25);
    }

    #[test]
    fn bad_keys_are_named() {
        for (text, want) in [
            ("days = 0", "days:"),
            ("start = \"2026-13-01\"", "start:"),
            ("time_zone = \"Mars/Olympus\"", "time_zone:"),
            ("[network]\nsource = \"cloud\"", "network.source:"),
            ("[network]\nsource = \"dir\"", "network.path:"),
            ("[network]\ncapacity_scale = -1", "network.capacity_scale:"),
            ("[network]\nprovinces = [\"44\"]", "network.provinces[0]:"),
            ("[routing]\nmax_level = \"moon\"", "routing.max_level:"),
            ("[truth]\ndistance_scale_km = 0", "truth.distance_scale_km:"),
            ("[truth]\nskill_sd = nan", "truth.skill_sd:"),
            ("[demand]\nhourly = [1.0]", "demand.hourly:"),
            (
                "[demand]\nchannels = { CARRIER_PIGEON = 1.0 }",
                "demand.channels.CARRIER_PIGEON:",
            ),
            (
                "[demand]\nchannels = { MINI_PROGRAM = 0.0 }",
                "demand.channels:",
            ),
            (
                "[[demand.bursts]]\nhour = 25\nminutes = 10\nleads = 5",
                "demand.bursts[0].hour:",
            ),
            (
                "[[demand.bursts]]\nhour = 23\nminutes = 90\nleads = 5",
                "demand.bursts[0].minutes:",
            ),
            (
                "[[demand.bursts]]\nday = 9\nhour = 2\nminutes = 9\nleads = 5",
                "demand.bursts[0].day:",
            ),
            (
                "[[demand.regions]]\nregion = \"44\"",
                "demand.regions[0].region:",
            ),
            ("policies = []", "policies:"),
            ("[[splits]]\nversion = \"x\"\nowner = 50", "splits[0]:"),
            ("[[policies]]\nname = \"magic\"", "unknown variant"),
            (
                "[truth]\noffer_accept = 0.9\noffer_decline = 0.2",
                "truth.offer_decline:",
            ),
            ("[offers]\nexpire_secs = 0", "offers.expire_secs:"),
            ("colour = \"blue\"", "unknown field"),
            ("[members]\nreturning = 1.5", "members.returning:"),
            ("[members]\nrefund_days = 0", "members.refund_days:"),
            (
                "[members]\nguide_sells = { FAX = 0.5 }",
                "members.guide_sells.FAX:",
            ),
            (
                "[[bindings]]\nversion = \"a\"\n[[bindings]]\nversion = \"a\"",
                "bindings[1].version:",
            ),
            (
                "[[ownership]]\nversion = \"late\"\neffective_from = \"2027-01-01\"",
                "ownership[0].effective_from:",
            ),
            (
                "[[bindings]]\nversion = \"x\"\nprotection_days = 100",
                "bindings[0].protection_days:",
            ),
        ] {
            let e = Scenario::parse(text).and_then(|s| s.check().map(|_| ()));
            let e = e.unwrap_err().0;
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn region_prefixes() {
        assert!(in_region(440106000000, "440000"));
        assert!(in_region(440106000000, "440100"));
        assert!(in_region(440106000000, "440106"));
        assert!(!in_region(440106000000, "440300"));
        assert!(!in_region(330106000000, "440000"));
    }
}
