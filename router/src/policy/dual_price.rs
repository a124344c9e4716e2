//! The `dual_price` policy: each guide carries a price β_j for a unit of today's capacity, and a
//! lead goes to the candidate with the best estimated value net of its price, argmax_j (v̂_ij − β_j)
//! (DESIGN §8). The prices are the Lagrange multipliers of the day's capacity constraints:
//!
//! - **learned**: [`PriceBook::set`] installs base prices, e.g. the duals of the hindsight optimum
//!   of previous days (the simulator does this each night);
//! - **updated online**: during the day a guide's price moves with how far its used share runs
//!   ahead of the day's pace, `β_j = max(0, base_j + step · (f_j − n / N))`, where f_j is the
//!   guide's used share of capacity, n the leads ranked so far today and N the number ranked the
//!   day before. On the first day (N unknown) the pace term is 0 and the price rises with the used
//!   share alone. The update is computed from the candidate's own count when it is ranked, so
//!   it costs no write per route beyond one counter.
//!
//! The value estimate v̂ is the `scored` policy's match without its load term: regional
//! preference, distance and tier with the same weights.

use super::{Candidate, Policy, Ranking, Reasons, RouteContext, Scored, ScoredWeights, quantize};
use crate::catalog::Network;
use crate::domain::Day;
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Parameters of `dual_price` (`[policy]` with `name = "dual_price"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DualPriceConfig {
    /// Weights of the value estimate, as in `scored`. Defaults 0.4, 0.3, 0.1 and 8 km.
    pub preference: f64,
    pub distance: f64,
    pub tier: f64,
    pub distance_scale_km: f64,
    /// How fast a price follows a guide running ahead of (or behind) the day's pace, in value
    /// units per unit of used share. Default 0.2.
    pub step: f64,
    /// Price of every guide before any is learned. Default 0.
    pub initial_price: f64,
}

impl Default for DualPriceConfig {
    fn default() -> Self {
        let w = ScoredWeights::default();
        Self {
            preference: w.preference,
            distance: w.distance,
            tier: w.tier,
            distance_scale_km: w.distance_scale_km,
            step: 0.2,
            initial_price: 0.0,
        }
    }
}

/// Base prices by guide, with the day's arrival pace.
#[derive(Debug)]
pub struct PriceBook {
    prices: RwLock<Prices>,
    initial: f64,
    /// (day, leads ranked that day, leads ranked the day before).
    pace: Mutex<(Day, u64, u64)>,
    ranked: AtomicU64,
}

#[derive(Debug)]
struct Prices {
    /// The network the indexes below refer to.
    network_version: String,
    ids: Vec<Arc<str>>,
    base: Vec<f64>,
}

impl PriceBook {
    fn new(network: &Network, initial: f64) -> Self {
        Self {
            prices: RwLock::new(Prices {
                network_version: network.version().to_string(),
                ids: network.guides().iter().map(|g| g.id.clone()).collect(),
                base: vec![initial; network.guides().len()],
            }),
            initial,
            pace: Mutex::new((Day(i32::MIN), 0, 0)),
            ranked: AtomicU64::new(0),
        }
    }

    /// Installs base prices by guide id (negative prices count as 0); guides not named keep
    /// theirs. Unknown ids are skipped and counted in the result.
    pub fn set<'a>(
        &self,
        network: &Network,
        prices: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> usize {
        self.remap(network);
        let mut p = self.prices.write();
        let mut unknown = 0;
        for (id, beta) in prices {
            match network.guide_index(id) {
                Some(g) if beta.is_finite() => p.base[g as usize] = beta.max(0.0),
                _ => unknown += 1,
            }
        }
        unknown
    }

    /// A guide's base price (by index into `network`'s guides).
    pub fn base(&self, network: &Network, guide: u32) -> f64 {
        self.remap(network);
        self.prices
            .read()
            .base
            .get(guide as usize)
            .copied()
            .unwrap_or(self.initial)
    }

    /// Leads ranked the day before `day` (0 when unknown): the pace's denominator.
    pub fn expected_arrivals(&self) -> u64 {
        self.pace.lock().2
    }

    /// Counts one ranked lead on `day` and returns the share of the day's expected arrivals
    /// seen so far, in [0, 1] (0 when the day before is unknown).
    fn tick(&self, day: Day) -> f64 {
        let expected = {
            let mut pace = self.pace.lock();
            if pace.0 != day {
                let before = self.ranked.swap(0, Ordering::Relaxed);
                // Only the day right before sets the pace; after a gap it is unknown.
                pace.2 = if pace.0.0.checked_add(1) == Some(day.0) {
                    before
                } else {
                    0
                };
                pace.0 = day;
            }
            pace.2
        };
        let n = self.ranked.fetch_add(1, Ordering::Relaxed) + 1;
        if expected == 0 {
            0.0
        } else {
            (n as f64 / expected as f64).min(1.0)
        }
    }

    /// After a network change the guide indexes move: prices follow their guide ids.
    fn remap(&self, network: &Network) {
        if self.prices.read().network_version == network.version() {
            return;
        }
        let mut p = self.prices.write();
        if p.network_version == network.version() {
            return;
        }
        let old: std::collections::HashMap<&str, f64> = p
            .ids
            .iter()
            .map(|id| &**id)
            .zip(p.base.iter().copied())
            .collect();
        let base = network
            .guides()
            .iter()
            .map(|g| old.get(&*g.id).copied().unwrap_or(self.initial))
            .collect();
        p.base = base;
        p.ids = network.guides().iter().map(|g| g.id.clone()).collect();
        p.network_version = network.version().to_string();
    }
}

/// The dual-price policy.
#[derive(Debug)]
pub struct DualPrice {
    value: Scored,
    cfg: DualPriceConfig,
    prices: PriceBook,
    version: String,
}

impl DualPrice {
    pub fn new(cfg: DualPriceConfig, network: &Network) -> Result<Self, String> {
        let value = Scored::new(ScoredWeights {
            preference: cfg.preference,
            distance: cfg.distance,
            tier: cfg.tier,
            load: 0.0,
            distance_scale_km: cfg.distance_scale_km,
            propensity: 0.0,
        })?;
        for (name, v) in [("step", cfg.step), ("initial_price", cfg.initial_price)] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "policy.{name}: must be a finite number >= 0, got {v}"
                ));
            }
        }
        let version = format!("1:{}:s{}:i{}", value.version(), cfg.step, cfg.initial_price);
        Ok(Self {
            prices: PriceBook::new(network, cfg.initial_price),
            value,
            cfg,
            version,
        })
    }

    /// The estimated value v̂ of giving the lead to this candidate.
    pub fn estimate(&self, c: &Candidate) -> f64 {
        self.value.match_value(c)
    }

    pub fn prices(&self) -> &PriceBook {
        &self.prices
    }

    /// The candidate's price now, given the share of the day's arrivals seen (`elapsed`).
    fn price(&self, base: f64, c: &Candidate, elapsed: f64) -> f64 {
        (base + self.cfg.step * (c.load() - elapsed)).max(0.0)
    }
}

impl Policy for DualPrice {
    fn name(&self) -> &'static str {
        "dual_price"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        let elapsed = self.prices.tick(ctx.day);
        self.prices.remap(ctx.network);
        let prices = self.prices.prices.read();
        let key = |c: &Candidate| {
            let base = prices.base.get(c.guide as usize).copied().unwrap_or(0.0);
            quantize(self.estimate(c) - self.price(base, c, elapsed))
        };
        super::rank_by(ctx, candidates, keep, key, |_, q| {
            (q as f64 / 1e9, Reasons::DUAL_PRICE)
        })
    }

    fn as_dual_price(&self) -> Option<&DualPrice> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Level, SplitMix64};

    fn net() -> Network {
        demo_files().load(Arc::new(RegionTree::embedded())).unwrap()
    }

    fn cand(guide: u32, pref: f32, used: u32) -> Candidate {
        Candidate {
            store: 0,
            guide,
            distance_km: Some(2.0),
            region_affinity: 1.0,
            preference: pref,
            used,
            capacity: 10,
            tier: 3,
        }
    }

    fn rank(p: &DualPrice, net: &Network, day: i32, cands: &[Candidate]) -> Ranking {
        let mut ctx = RouteContext {
            network: net,
            region: net.regions().root(),
            level: Level::City,
            day: Day(day),
            rng: SplitMix64::new(5),
            channel: 0,
            hour: 12,
            segment: None,
        };
        p.rank(&mut ctx, cands, cands.len())
    }

    #[test]
    fn a_price_moves_the_pick_to_the_next_best_value() {
        let net = net();
        let p = DualPrice::new(DualPriceConfig::default(), &net).unwrap();
        let cands = [cand(0, 0.9, 0), cand(1, 0.6, 0)];
        assert_eq!(rank(&p, &net, 1, &cands).order[0].idx, 0);
        // v̂ differs by 0.4 × 0.3 = 0.12: a price of 0.2 on guide 0 hands the lead to guide 1.
        let id0 = net.guide(0).id.clone();
        assert_eq!(p.prices().set(&net, [(&*id0, 0.2), ("nobody", 1.0)]), 1);
        let r = rank(&p, &net, 1, &cands);
        assert_eq!(r.order[0].idx, 1);
        assert!(r.order[0].reasons.contains(Reasons::DUAL_PRICE));
        assert!((p.prices().base(&net, 0) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn a_guide_ahead_of_the_days_pace_gets_dearer() {
        let net = net();
        let cfg = DualPriceConfig {
            step: 1.0,
            ..Default::default()
        };
        let p = DualPrice::new(cfg, &net).unwrap();
        // Day 1: 10 leads ranked, which sets day 2's pace.
        for _ in 0..10 {
            rank(&p, &net, 1, &[cand(0, 0.5, 0)]);
        }
        // Day 2, first lead: guide 0 already used 80 % of its capacity, 10 % of the day has
        // gone; guide 1 is a little worse and on pace.
        let r = rank(&p, &net, 2, &[cand(0, 0.9, 8), cand(1, 0.8, 0)]);
        assert_eq!(p.prices().expected_arrivals(), 10);
        assert_eq!(r.order[0].idx, 1);
        // The same loads at the end of the day: guide 0 is no longer ahead.
        for _ in 0..9 {
            rank(&p, &net, 2, &[cand(1, 0.5, 0)]);
        }
        let r = rank(&p, &net, 2, &[cand(0, 0.9, 8), cand(1, 0.8, 8)]);
        assert_eq!(r.order[0].idx, 0);
    }

    #[test]
    fn rejects_bad_parameters() {
        let e = DualPrice::new(
            DualPriceConfig {
                step: f64::NAN,
                ..Default::default()
            },
            &net(),
        )
        .unwrap_err();
        assert!(e.contains("policy.step"), "{e}");
    }
}
