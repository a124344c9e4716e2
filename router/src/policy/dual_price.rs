//! The `dual_price` policy: each guide carries a price β_j for a unit of today's capacity, and a
//! lead goes to the candidate with the best estimated value net of its price, argmax_j (v̂_ij − β_j)
//! (DESIGN §8). The prices are the Lagrange multipliers of the day's capacity constraints:
//!
//! - **learned**: base prices come from the price model in service (`[models] prices`, learned by
//!   `leadrouter models prices` from exported decisions: the duals of the assignment of the last
//!   day's leads on this policy's own estimates; the simulator runs the same code each night);
//!   a guide the model does not name (or every guide, without one) has `initial_price`;
//! - **updated online**: during the day a guide's price moves with how far its used share runs
//!   ahead of the day's pace, `β_j = max(0, base_j + step · (f_j − n / N))`, where f_j is the
//!   guide's used share of capacity, n the leads ranked so far today and N the number ranked the
//!   day before. On the first day (N unknown) the pace term is 0 and the price rises with the used
//!   share alone. The update is computed from the candidate's own count when it is ranked, so
//!   it costs no write per route beyond one counter.
//!
//! The value estimate v̂ is the `scored` policy's match without its load term: regional
//! preference, distance, tier and (with a skill model in service) the guide's skill lift, with
//! the same weights.

use super::{Candidate, Policy, Ranking, Reasons, RouteContext, Scored, ScoredWeights, quantize};
use crate::catalog::Network;
use crate::domain::Day;
use parking_lot::Mutex;
use serde::Deserialize;
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
    /// Price of every guide the price model in service does not name (or of every guide
    /// without one). Default 0.
    pub initial_price: f64,
    /// Weight of the guide's learned skill lift in the value estimate, as in `scored`.
    /// Default 0.2.
    pub skill: f64,
    /// Weight of the learned conversion propensity p̂ in the value estimate, when a model is in
    /// service (`[models] propensity`), as in `scored`. Default 0.5.
    pub propensity: f64,
    /// The fairness floor, in 0..=1, as in `scored`. Default 0: off.
    pub floor: f64,
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
            skill: w.skill,
            propensity: w.propensity,
            floor: 0.0,
        }
    }
}

/// The day's arrival pace: leads ranked today against the day before. Per replica (each
/// replica sees its share of the traffic, so the share of the day gone is the same).
#[derive(Debug)]
pub struct Pace {
    /// (day, leads ranked the day before).
    day: Mutex<(Day, u64)>,
    ranked: AtomicU64,
}

impl Pace {
    fn new() -> Self {
        Self {
            day: Mutex::new((Day(i32::MIN), 0)),
            ranked: AtomicU64::new(0),
        }
    }

    /// Leads ranked the day before the current one (0 when unknown): the pace's denominator.
    pub fn expected_arrivals(&self) -> u64 {
        self.day.lock().1
    }

    /// Counts one ranked lead on `day` and returns the share of the day's expected arrivals
    /// seen so far, in [0, 1] (0 when the day before is unknown).
    fn tick(&self, day: Day) -> f64 {
        let expected = {
            let mut pace = self.day.lock();
            if pace.0 != day {
                let before = self.ranked.swap(0, Ordering::Relaxed);
                // Only the day right before sets the pace; after a gap it is unknown.
                pace.1 = if pace.0.0.checked_add(1) == Some(day.0) {
                    before
                } else {
                    0
                };
                pace.0 = day;
            }
            pace.1
        };
        let n = self.ranked.fetch_add(1, Ordering::Relaxed) + 1;
        if expected == 0 {
            0.0
        } else {
            (n as f64 / expected as f64).min(1.0)
        }
    }
}

/// The dual-price policy.
#[derive(Debug)]
pub struct DualPrice {
    value: Scored,
    floor: super::Floor,
    cfg: DualPriceConfig,
    pace: Pace,
    version: String,
}

impl DualPrice {
    pub fn new(cfg: DualPriceConfig) -> Result<Self, String> {
        let value = Scored::new(ScoredWeights {
            preference: cfg.preference,
            distance: cfg.distance,
            tier: cfg.tier,
            load: 0.0,
            distance_scale_km: cfg.distance_scale_km,
            propensity: cfg.propensity,
            skill: cfg.skill,
            floor: 0.0,
        })?;
        let floor = super::Floor::new(cfg.floor)?;
        for (name, v) in [("step", cfg.step), ("initial_price", cfg.initial_price)] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "policy.{name}: must be a finite number >= 0, got {v}"
                ));
            }
        }
        let mut version = format!("1:{}:s{}:i{}", value.version(), cfg.step, cfg.initial_price);
        if cfg.floor > 0.0 {
            version.push_str(&format!(":f{}", cfg.floor));
        }
        Ok(Self {
            pace: Pace::new(),
            floor,
            value,
            cfg,
            version,
        })
    }

    /// The estimated value v̂ of giving the lead to this candidate, without the learned
    /// propensity (which needs the lead's channel and hour: [`DualPrice::estimate_for`]).
    pub fn estimate(&self, net: &Network, c: &Candidate) -> f64 {
        self.value.match_value(net, c)
    }

    /// The estimate route() ranks by: [`DualPrice::estimate`] plus `propensity · p̂` when a
    /// propensity model is in service, for a lead of `channel` (index in
    /// [`crate::domain::Channel::ALL`]) at local `hour`.
    pub fn estimate_for(&self, net: &Network, channel: usize, hour: u32, c: &Candidate) -> f64 {
        self.value
            .value_estimate(net, channel, hour, c)
            .unwrap_or_else(|| self.estimate(net, c))
    }

    pub fn pace(&self) -> &Pace {
        &self.pace
    }

    /// A guide's base price: the price model's (`[models] prices`), else `initial_price`.
    pub fn base_price(&self, net: &Network, guide: u32) -> f64 {
        net.guide_price(guide).unwrap_or(self.cfg.initial_price)
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
        let elapsed = self.pace.tick(ctx.day);
        let net = ctx.network;
        let under = self.floor.threshold(candidates);
        let scorer = (self.cfg.propensity > 0.0)
            .then(|| net.propensity_scorer(ctx.channel, ctx.hour))
            .flatten();
        let key = |c: &Candidate| {
            let base = self.base_price(net, c.guide);
            let learned = self.value.learned(scorer.as_ref(), c);
            super::floored(
                quantize(self.estimate(net, c) + learned - self.price(base, c, elapsed)),
                under > 0.0 && c.load() < under,
            )
        };
        super::rank_by(ctx, candidates, keep, key, |_, k| {
            let (floored, q) = super::unfloored(k);
            let r = Reasons::DUAL_PRICE;
            (
                q as f64 / 1e9,
                if floored {
                    r.with(Reasons::LOAD_FLOOR)
                } else {
                    r
                },
            )
        })
    }

    fn as_dual_price(&self) -> Option<&DualPrice> {
        Some(self)
    }

    fn value_estimate(
        &self,
        net: &Network,
        channel: usize,
        hour: u32,
        c: &Candidate,
    ) -> Option<f64> {
        Some(self.estimate_for(net, channel, hour, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Level, SplitMix64};
    use std::sync::Arc;

    fn net() -> Network {
        demo_files().load(Arc::new(RegionTree::embedded())).unwrap()
    }

    /// The demo network with these learned models.
    fn with(models: crate::catalog::LearnedModels) -> Network {
        let spec = demo_files().parse().unwrap().0;
        Network::build_with(Arc::new(RegionTree::embedded()), spec, models).unwrap()
    }

    fn prices(pairs: &[(&str, f64)]) -> Arc<leadrouter_models::prices::PriceModel> {
        let body: Vec<String> = pairs.iter().map(|(g, p)| format!("{g:?}:{p}")).collect();
        let text = format!(
            r#"{{"kind":"prices","format":1,"version":"test","created_at_ms":0,"inputs":[],"from_ms":0,"to_ms":0,"params":{{}},"metrics":{{}},"prices":{{{}}}}}"#,
            body.join(",")
        );
        Arc::new(leadrouter_models::prices::PriceModel::from_json(&text).unwrap())
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
        let p = DualPrice::new(DualPriceConfig::default()).unwrap();
        let cands = [cand(0, 0.9, 0), cand(1, 0.6, 0)];
        assert_eq!(rank(&p, &net, 1, &cands).order[0].idx, 0);
        // v̂ differs by 0.4 × 0.3 = 0.12: a price of 0.2 on guide 0 hands the lead to guide 1.
        let id0 = net.guide(0).id.clone();
        let priced = with(crate::catalog::LearnedModels {
            prices: Some(prices(&[(&id0, 0.2), ("nobody", 1.0)])),
            ..Default::default()
        });
        let r = rank(&p, &priced, 1, &cands);
        assert_eq!(r.order[0].idx, 1);
        assert!(r.order[0].reasons.contains(Reasons::DUAL_PRICE));
        assert!((p.base_price(&priced, 0) - 0.2).abs() < 1e-12);
        // A guide the model does not name has the initial price.
        assert_eq!(p.base_price(&priced, 1), 0.0);
        assert_eq!(p.base_price(&net, 0), 0.0);
    }

    #[test]
    fn a_propensity_model_in_service_enters_the_estimate() {
        let text = include_str!("../../data/demo/models/propensity.json");
        let m = Arc::new(leadrouter_models::propensity::PropensityModel::from_json(text).unwrap());
        let learned = with(crate::catalog::LearnedModels {
            propensity: Some(m),
            ..Default::default()
        });
        let c = cand(0, 0.5, 0);
        let p = DualPrice::new(DualPriceConfig::default()).unwrap();
        // Without a model, what route() ranks by is the match alone.
        assert_eq!(p.estimate_for(&net(), 0, 12, &c), p.estimate(&net(), &c));
        // With one, 0.5 · p̂ more: p̂ is a probability, so the difference is in (0, 0.5].
        let extra = p.estimate_for(&learned, 0, 12, &c) - p.estimate(&learned, &c);
        assert!(extra > 0.0 && extra <= 0.5, "{extra}");
        assert_eq!(
            p.value_estimate(&learned, 0, 12, &c),
            Some(p.estimate_for(&learned, 0, 12, &c))
        );
        // Weight 0 turns it off, and the version says so.
        let off = DualPrice::new(DualPriceConfig {
            propensity: 0.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            off.estimate_for(&learned, 0, 12, &c),
            off.estimate(&learned, &c)
        );
        assert_ne!(off.version(), p.version());
        // The ranking follows: the same two candidates, one whose guide p̂ favours by far
        // more than the match separates them, rank by the estimate with p̂.
        let a = cand(0, 0.5, 0);
        let b = cand(1, 0.5, 0);
        let (va, vb) = (
            p.estimate_for(&learned, 0, 12, &a),
            p.estimate_for(&learned, 0, 12, &b),
        );
        let r = rank(&p, &learned, 1, &[a, b]);
        assert_eq!(r.order[0].idx, if va >= vb { 0 } else { 1 });
    }

    #[test]
    fn a_guide_ahead_of_the_days_pace_gets_dearer() {
        let net = net();
        let cfg = DualPriceConfig {
            step: 1.0,
            ..Default::default()
        };
        let p = DualPrice::new(cfg).unwrap();
        // Day 1: 10 leads ranked, which sets day 2's pace.
        for _ in 0..10 {
            rank(&p, &net, 1, &[cand(0, 0.5, 0)]);
        }
        // Day 2, first lead: guide 0 already used 80 % of its capacity, 10 % of the day has
        // gone; guide 1 is a little worse and on pace.
        let r = rank(&p, &net, 2, &[cand(0, 0.9, 8), cand(1, 0.8, 0)]);
        assert_eq!(p.pace().expected_arrivals(), 10);
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
        let e = DualPrice::new(DualPriceConfig {
            step: f64::NAN,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("policy.step"), "{e}");
    }
}
