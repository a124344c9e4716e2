//! Pluggable routing policies. A policy sees the candidates the engine gathered (guides with
//! capacity left in open stores that carry the lead's categories) and ranks them: the pick first,
//! then the alternatives, each with a score and reason codes. Built in: `scored` (the default),
//! `nearest` and `round_robin` (what brands do today), `dual_price` (value net of learned
//! capacity prices), and the references `balance` (least used share) and `ranking` (a random
//! priority per guide and day).

mod balance;
mod dual_price;
pub mod experiments;
mod nearest;
mod ranking;
mod round_robin;
mod scored;
mod softmax;

pub use balance::Balance;
pub use dual_price::{DualPrice, DualPriceConfig, Pace};
pub use nearest::Nearest;
pub use ranking::RankingPolicy;
pub use round_robin::RoundRobin;
pub use scored::{Scored, ScoredWeights};
pub use softmax::{Softmax, SoftmaxConfig};

use crate::catalog::{Network, RegionId};
pub use crate::domain::Reasons;
use crate::domain::{Day, Level, SplitMix64};
use serde::Deserialize;

/// One guide the policy may pick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Index into [`Network::stores`].
    pub store: u32,
    /// Index into [`Network::guides`].
    pub guide: u32,
    /// Kilometres from the lead, when the lead has coordinates.
    pub distance_km: Option<f32>,
    /// How close the store's region is to the lead's: 1 same district, 0.5 same city, 0.25 same
    /// province, 0 otherwise.
    pub region_affinity: f32,
    /// Regional preference match of what the lead wants (its stated interests blended with its
    /// region's taste, `routing.regional_taste`) with the store's region and assortment, in
    /// [0, 1].
    pub preference: f32,
    /// Leads taken today.
    pub used: u32,
    pub capacity: u32,
    /// Guide tier, 1..=5.
    pub tier: u8,
}

impl Candidate {
    /// Used share of today's capacity, in [0, 1].
    pub fn load(&self) -> f64 {
        f64::from(self.used) / f64::from(self.capacity.max(1))
    }
}

/// What a policy knows of the lead beyond its candidates.
#[derive(Debug)]
pub struct RouteContext<'a> {
    pub network: &'a Network,
    /// The lead's region (district, or coarser when that is all it gave).
    pub region: RegionId,
    pub level: Level,
    pub day: Day,
    /// Seeded per lead: the same lead draws the same tie breaks.
    pub rng: SplitMix64,
    /// The lead's channel, as an index into `leadrouter_models::propensity::CHANNELS`.
    pub channel: usize,
    /// The local hour of the route (the brand's time zone).
    pub hour: u32,
    /// The member's segment, when member segments are in service (`[models] segments`).
    pub segment: Option<u16>,
}

/// One ranked candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Index into the candidate slice.
    pub idx: usize,
    pub score: f64,
    pub reasons: Reasons,
}

/// A policy's answer: best first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking {
    pub order: Vec<Ranked>,
    /// Probability that the first entry was picked (1 unless a random draw decided it).
    pub propensity: f64,
    /// For a policy that draws among all candidates: the probability it would have picked each
    /// entry of `order` first. `None`: deterministic but for ties.
    pub probabilities: Option<Vec<f64>>,
}

/// A routing algorithm.
pub trait Policy: Send + Sync + std::fmt::Debug {
    /// The policy's name, as configured and reported (`scored`, `nearest`, …).
    fn name(&self) -> &'static str;
    /// Identifies the policy's parameters, so a decision can be traced to them.
    fn version(&self) -> &str;
    /// Ranks `candidates` (never empty), returning at most `keep` entries, best first.
    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking;
    /// The dual-price policy, whose prices can be learned from outside (the simulator's
    /// hindsight duals); `None` for every other policy.
    fn as_dual_price(&self) -> Option<&DualPrice> {
        None
    }
    /// The policy's own estimate of the value of giving a lead (of this channel, at this local
    /// hour) to the candidate, in its score units, without load or price terms; `None` for a
    /// policy that does not estimate value (`nearest`, `round_robin`, …). The simulator splits a
    /// policy's gap to the optimum with it: what its estimates lose, and what its allocation does.
    fn value_estimate(
        &self,
        _net: &Network,
        _channel: usize,
        _hour: u32,
        _c: &Candidate,
    ) -> Option<f64> {
        None
    }
}

/// Which policy to run, with its parameters (`[policy]` in the config file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    Scored(#[serde(default)] ScoredWeights),
    Nearest,
    RoundRobin,
    DualPrice(#[serde(default)] DualPriceConfig),
    Balance,
    Ranking {
        /// Seed of the daily priorities. Default 0.
        #[serde(default)]
        seed: u64,
    },
    /// Explores: a seeded draw over the candidates by `scored`'s values, with the probability
    /// of the pick and of each alternative recorded.
    Softmax(#[serde(default)] SoftmaxConfig),
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::Scored(ScoredWeights::default())
    }
}

impl PolicyConfig {
    /// Builds the policy for a network (some policies keep per-region state).
    pub fn build(&self, network: &Network) -> Result<Box<dyn Policy>, String> {
        Ok(match self {
            PolicyConfig::Scored(w) => Box::new(Scored::new(w.clone())?),
            PolicyConfig::Nearest => Box::new(Nearest),
            PolicyConfig::RoundRobin => Box::new(RoundRobin::new(network.regions().len())),
            PolicyConfig::DualPrice(c) => Box::new(DualPrice::new(c.clone())?),
            PolicyConfig::Balance => Box::new(Balance),
            PolicyConfig::Ranking { seed } => Box::new(RankingPolicy::new(*seed)),
            PolicyConfig::Softmax(c) => Box::new(Softmax::new(c.clone())?),
        })
    }

    /// The fairness floor (0 for a policy without one).
    pub fn floor(&self) -> f64 {
        match self {
            PolicyConfig::Scored(w) => w.floor,
            PolicyConfig::DualPrice(c) => c.floor,
            _ => 0.0,
        }
    }

    /// The same policy with another floor (unchanged for a policy without one).
    pub fn with_floor(&self, floor: f64) -> Self {
        let mut c = self.clone();
        match &mut c {
            PolicyConfig::Scored(w) => w.floor = floor,
            PolicyConfig::DualPrice(d) => d.floor = floor,
            _ => {}
        }
        c
    }

    /// Names accepted in configuration.
    pub const NAMES: [&'static str; 7] = [
        "scored",
        "nearest",
        "round_robin",
        "dual_price",
        "balance",
        "ranking",
        "softmax",
    ];
}

/// Keeps the best `k` items by a key (greater is better) in a small sorted buffer: O(n·k), no
/// allocation beyond `k`, which beats sorting for the handful of alternatives a decision reports.
#[derive(Debug)]
pub(crate) struct TopK<K: Ord + Copy> {
    k: usize,
    items: Vec<(K, usize)>,
}

impl<K: Ord + Copy> TopK<K> {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            items: Vec::with_capacity(k.max(1) + 1),
        }
    }

    pub(crate) fn push(&mut self, key: K, idx: usize) {
        if self.items.len() == self.k && key <= self.items[self.k - 1].0 {
            return;
        }
        let pos = self.items.partition_point(|(k, _)| *k >= key);
        self.items.insert(pos, (key, idx));
        self.items.truncate(self.k);
    }

    pub(crate) fn into_sorted(self) -> Vec<(K, usize)> {
        self.items
    }
}

/// The ranking every built-in scoring policy shares: candidates ordered by `key` (greater is
/// better); among equal keys a uniform random draw from `ctx.rng` decides, never the candidates'
/// order; the first entry gets `TIE_RANDOM` and a propensity of 1/k when k candidates tied for it.
/// `describe` turns a kept entry's key into its reported score and reasons.
pub(crate) fn rank_by<K: Ord + Copy>(
    ctx: &mut RouteContext<'_>,
    candidates: &[Candidate],
    keep: usize,
    mut key: impl FnMut(&Candidate) -> K,
    describe: impl Fn(usize, K) -> (f64, Reasons),
) -> Ranking {
    let mut top = TopK::new(keep);
    let (mut best, mut ties) = (None, 0u32);
    for (i, c) in candidates.iter().enumerate() {
        let k = key(c);
        match best.map(|b| k.cmp(&b)) {
            None | Some(std::cmp::Ordering::Greater) => (best, ties) = (Some(k), 1),
            Some(std::cmp::Ordering::Equal) => ties += 1,
            Some(std::cmp::Ordering::Less) => {}
        }
        top.push((k, ctx.rng.next_u64()), i);
    }
    let order = top
        .into_sorted()
        .into_iter()
        .enumerate()
        .map(|(rank, ((k, _), idx))| {
            let (score, mut reasons) = describe(idx, k);
            if rank == 0 && ties > 1 && Some(k) == best {
                reasons = reasons.with(Reasons::TIE_RANDOM);
            }
            Ranked {
                idx,
                score,
                reasons,
            }
        })
        .collect();
    Ranking {
        order,
        propensity: 1.0 / f64::from(ties.max(1)),
        probabilities: None,
    }
}

/// The fairness floor of `scored` and `dual_price`: a candidate whose used share of capacity is
/// below `floor` × the mean share of the lead's candidates (its peers for this lead) comes before
/// every candidate above it, best score first among them. So every active guide with capacity
/// gets at least that share of its peers' mean load before a better guide gets more. 0: off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Floor(f64);

impl Floor {
    pub(crate) fn new(floor: f64) -> Result<Self, String> {
        if !(floor.is_finite() && (0.0..=1.0).contains(&floor)) {
            return Err(format!("policy.floor: must be in 0..=1, got {floor}"));
        }
        Ok(Self(floor))
    }

    /// The share below which a candidate is under the floor for this lead (0: nobody is).
    pub(crate) fn threshold(&self, candidates: &[Candidate]) -> f64 {
        if self.0 == 0.0 || candidates.is_empty() {
            return 0.0;
        }
        self.0 * candidates.iter().map(Candidate::load).sum::<f64>() / candidates.len() as f64
    }
}

/// Above every quantized score (|score| < 2^59 / 1e9, about 5.7e8): a candidate under the floor
/// ranks above every candidate that is not, in one integer key.
const FLOORED: i64 = 1 << 60;

/// The ranking key of a quantized score, lifted above the rest when under the floor.
pub(crate) fn floored(q: i64, under: bool) -> i64 {
    if under { q.saturating_add(FLOORED) } else { q }
}

/// Back from [`floored`]: (under the floor, the quantized score).
pub(crate) fn unfloored(k: i64) -> (bool, i64) {
    if k >= FLOORED / 2 {
        (true, k - FLOORED)
    } else {
        (false, k)
    }
}

/// Scores compare equal when they agree to 1e-9: float noise must not act as a hidden tie break.
pub(crate) fn quantize(score: f64) -> i64 {
    (score * 1e9).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_best_in_order() {
        let mut t = TopK::new(3);
        for (i, k) in [5, 1, 9, 3, 9, 7].into_iter().enumerate() {
            t.push(k, i);
        }
        let got: Vec<_> = t.into_sorted();
        assert_eq!(got, vec![(9, 2), (9, 4), (7, 5)]);
    }

    #[test]
    fn policy_config_parses() {
        let c: PolicyConfig = toml::from_str("name = \"nearest\"").unwrap();
        assert_eq!(c, PolicyConfig::Nearest);
        let c: PolicyConfig = toml::from_str("name = \"scored\"\npreference = 0.7").unwrap();
        match c {
            PolicyConfig::Scored(w) => assert_eq!(w.preference, 0.7),
            other => panic!("{other:?}"),
        }
        let e = toml::from_str::<PolicyConfig>("name = \"best\"").unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}
