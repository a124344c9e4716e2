use super::{Candidate, Floor, Policy, Ranking, Reasons, RouteContext, quantize, rank_by};
use crate::catalog::{Network, PropensityScorer};
use serde::Deserialize;

/// Weights of the `scored` policy. The score is
/// `preference·P + distance·D + tier·T + load·ψ(f)` where P is the regional preference match in
/// [0, 1], D is `exp(−km / distance_scale_km)` (or the region affinity when the lead gave no
/// coordinates), T is `(tier − 1) / 4`, and ψ(f) = 1 − e^(f−1) on the guide's used share f of
/// today's capacity (ψ(0) ≈ 0.63, ψ(1) = 0). With a learned propensity model in service the
/// score adds `propensity·p̂`, p̂ the model's probability that the lead converts with the guide;
/// with a guide skill model in service it adds `skill·lift`, the guide's learned conversion lift
/// over their peers (`ln(r_g / π_g)`, 0 for a guide without history). With `floor` > 0, guides
/// under the fairness floor come first (see `Floor`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScoredWeights {
    /// Default 0.4.
    pub preference: f64,
    /// Default 0.3.
    pub distance: f64,
    /// Default 0.1.
    pub tier: f64,
    /// Default 0.2.
    pub load: f64,
    /// Kilometres at which the distance term falls to 1/e. Default 8.
    pub distance_scale_km: f64,
    /// Weight of the learned conversion propensity, when a model is in service. Default 0.5.
    pub propensity: f64,
    /// Weight of the guide's learned skill lift, when a skill model is in service. Default 0.2.
    pub skill: f64,
    /// The fairness floor, in 0..=1 (see the policy's text). Default 0: off.
    pub floor: f64,
}

impl Default for ScoredWeights {
    fn default() -> Self {
        Self {
            preference: 0.4,
            distance: 0.3,
            tier: 0.1,
            load: 0.2,
            distance_scale_km: 8.0,
            propensity: 0.5,
            skill: 0.2,
            floor: 0.0,
        }
    }
}

/// The default policy: regional preference, distance, tier and load balance, ties drawn at random.
#[derive(Debug)]
pub struct Scored {
    w: ScoredWeights,
    floor: Floor,
    version: String,
}

/// ψ(f) = 1 − e^(f−1).
pub fn psi(f: f64) -> f64 {
    1.0 - (f - 1.0).exp()
}

impl Scored {
    pub fn new(w: ScoredWeights) -> Result<Self, String> {
        for (name, v) in [
            ("preference", w.preference),
            ("distance", w.distance),
            ("tier", w.tier),
            ("load", w.load),
            ("propensity", w.propensity),
            ("skill", w.skill),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "policy.{name}: must be a finite weight >= 0, got {v}"
                ));
            }
        }
        if !w.distance_scale_km.is_finite() || w.distance_scale_km <= 0.0 {
            return Err(format!(
                "policy.distance_scale_km: must be > 0, got {}",
                w.distance_scale_km
            ));
        }
        let floor = Floor::new(w.floor)?;
        let mut version = format!(
            "1:p{}:d{}:t{}:l{}:s{}:c{}:k{}",
            w.preference, w.distance, w.tier, w.load, w.distance_scale_km, w.propensity, w.skill
        );
        if w.floor > 0.0 {
            version.push_str(&format!(":f{}", w.floor));
        }
        Ok(Self { w, floor, version })
    }

    /// The weighted match without the load term: preference, distance, tier and the guide's
    /// skill (when `net` has a skill model).
    pub fn match_value(&self, net: &Network, c: &Candidate) -> f64 {
        let t = self.terms(c);
        t[0] + t[1] + t[2] + self.skilled(net, c)
    }

    /// `propensity · p̂` of the candidate by the lead's scorer (0 without one).
    pub fn learned(&self, scorer: Option<&PropensityScorer<'_>>, c: &Candidate) -> f64 {
        scorer.map_or(0.0, |s| {
            let log1p_km = c.distance_km.map(|d| f64::from(d.max(0.0)).ln_1p());
            self.w.propensity * s.predict(c, log1p_km)
        })
    }

    /// `skill · lift` of the candidate's guide.
    fn skilled(&self, net: &Network, c: &Candidate) -> f64 {
        if self.w.skill == 0.0 || !net.has_skill() {
            return 0.0;
        }
        self.w.skill * net.guide_lift(c.guide)
    }

    /// The distance term before weighting, in [0, 1].
    fn near(&self, c: &Candidate) -> f64 {
        match c.distance_km {
            Some(km) => (-f64::from(km) / self.w.distance_scale_km).exp(),
            None => f64::from(c.region_affinity),
        }
    }

    /// The score's terms, weighted: (preference, distance, tier, load).
    fn terms(&self, c: &Candidate) -> [f64; 4] {
        self.terms_with(c, self.near(c))
    }

    fn terms_with(&self, c: &Candidate, near: f64) -> [f64; 4] {
        [
            self.w.preference * f64::from(c.preference),
            self.w.distance * near,
            self.w.tier * (f64::from(c.tier.clamp(1, 5)) - 1.0) / 4.0,
            self.w.load * psi(c.load()),
        ]
    }
}

const TERM_REASONS: [Reasons; 6] = [
    Reasons::PREFERENCE_MATCH,
    Reasons::NEARBY,
    Reasons::SENIOR_GUIDE,
    Reasons::LOAD_BALANCE,
    Reasons::LIKELY_TO_CONVERT,
    Reasons::SKILLED_GUIDE,
];

impl Policy for Scored {
    fn name(&self) -> &'static str {
        "scored"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn value_estimate(
        &self,
        net: &Network,
        channel: usize,
        hour: u32,
        c: &Candidate,
    ) -> Option<f64> {
        let scorer = net.propensity_scorer(channel, hour);
        Some(self.match_value(net, c) + self.learned(scorer.as_ref(), c))
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        // Guides of one store come together with the same distance: exp() once per store.
        let mut cached: Option<(Option<f32>, f32, f64)> = None;
        let scorer = ctx.network.propensity_scorer(ctx.channel, ctx.hour);
        let net = ctx.network;
        let under = self.floor.threshold(candidates);
        let learned = |c: &Candidate| self.learned(scorer.as_ref(), c);
        let key = |c: &Candidate| {
            let near = match cached {
                Some((d, a, near)) if d == c.distance_km && a == c.region_affinity => near,
                _ => {
                    let near = self.near(c);
                    cached = Some((c.distance_km, c.region_affinity, near));
                    near
                }
            };
            let q = quantize(
                self.terms_with(c, near).iter().sum::<f64>() + learned(c) + self.skilled(net, c),
            );
            super::floored(q, under > 0.0 && c.load() < under)
        };
        rank_by(ctx, candidates, keep, key, |idx, k| {
            let (floored, q) = super::unfloored(k);
            let c = &candidates[idx];
            let t = self.terms(c);
            let terms = [t[0], t[1], t[2], t[3], learned(c), self.skilled(net, c)];
            let main = (0..6)
                .max_by(|&a, &b| terms[a].total_cmp(&terms[b]))
                .unwrap_or(0);
            let reasons = if floored {
                TERM_REASONS[main].with(Reasons::LOAD_FLOOR)
            } else {
                TERM_REASONS[main]
            };
            (q as f64 / 1e9, reasons)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Day, Level, SplitMix64};
    use std::sync::Arc;

    fn cand(guide: u32, pref: f32, km: f32, used: u32, tier: u8) -> Candidate {
        Candidate {
            store: 0,
            guide,
            distance_km: Some(km),
            region_affinity: 1.0,
            preference: pref,
            used,
            capacity: 10,
            tier,
        }
    }

    fn ctx(net: &crate::catalog::Network, seed: u64) -> RouteContext<'_> {
        RouteContext {
            network: net,
            region: net.regions().root(),
            level: Level::District,
            day: Day(0),
            rng: SplitMix64::new(seed),
            channel: 0,
            hour: 12,
            segment: None,
        }
    }

    #[test]
    fn psi_shape() {
        assert!((psi(0.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert_eq!(psi(1.0), 0.0);
        assert!(psi(0.2) > psi(0.8));
    }

    #[test]
    fn each_term_moves_the_pick() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let p = Scored::new(ScoredWeights::default()).unwrap();
        let base = cand(0, 0.5, 5.0, 3, 3);
        let better = [
            Candidate {
                preference: 0.9,
                ..base
            },
            Candidate {
                distance_km: Some(1.0),
                ..base
            },
            Candidate { tier: 5, ..base },
            Candidate { used: 0, ..base },
        ];
        for b in better {
            let r = p.rank(&mut ctx(&net, 1), &[base, b], 2);
            assert_eq!(r.order[0].idx, 1, "{b:?}");
            assert!(r.order[0].score > r.order[1].score);
            assert_eq!(r.propensity, 1.0);
        }
    }

    #[test]
    fn ties_are_drawn_at_random_not_by_index() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let p = Scored::new(ScoredWeights::default()).unwrap();
        let cands: Vec<Candidate> = (0..4).map(|g| cand(g, 0.5, 5.0, 3, 3)).collect();
        let mut picks = [0u32; 4];
        for seed in 0..400 {
            let r = p.rank(&mut ctx(&net, seed), &cands, 3);
            assert_eq!(r.propensity, 0.25);
            assert!(r.order[0].reasons.contains(Reasons::TIE_RANDOM));
            picks[r.order[0].idx] += 1;
        }
        assert!(picks.iter().all(|&n| n > 60), "{picks:?}");
        // The same seed gives the same pick.
        let a = p.rank(&mut ctx(&net, 9), &cands, 3);
        let b = p.rank(&mut ctx(&net, 9), &cands, 3);
        assert_eq!(a, b);
    }

    #[test]
    fn a_skilled_guide_wins_over_an_equal_peer_and_says_so() {
        use leadrouter_models::skill::{Outcome, SkillConfig, SkillModel};
        let plain = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let (g0, g1) = (plain.guide(0), plain.guide(1));
        // Guide 1 converted 40 of 100 leads, guide 0 5 of 100, in the same store and tier.
        let mut outcomes = Vec::new();
        for (g, conversions) in [(g0, 5), (g1, 40)] {
            for i in 0..100 {
                outcomes.push(Outcome {
                    guide: g.id.to_string(),
                    store: "s".into(),
                    tier: 3,
                    converted: i < conversions,
                    at_ms: 0,
                });
            }
        }
        let cfg = SkillConfig {
            shrinkage: Some(50.0),
            created_at_ms: 0,
        };
        let skill = Arc::new(SkillModel::fit(&outcomes, &cfg, vec![]).unwrap());
        let spec = demo_files().parse().unwrap().0;
        let net = Network::build_with(
            Arc::new(RegionTree::embedded()),
            spec,
            crate::catalog::LearnedModels {
                skill: Some(skill),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(net.guide_lift(1) > 0.3 && net.guide_lift(0) < -0.3);
        assert_eq!(plain.guide_lift(1), 0.0);
        let p = Scored::new(ScoredWeights::default()).unwrap();
        // Guide 0 is a little nearer; guide 1's skill outweighs it.
        let cands = [cand(0, 0.5, 4.0, 3, 3), cand(1, 0.5, 4.5, 3, 3)];
        assert_eq!(p.rank(&mut ctx(&plain, 1), &cands, 2).order[0].idx, 0);
        let r = p.rank(&mut ctx(&net, 1), &cands, 2);
        assert_eq!(r.order[0].idx, 1);
        let d = p.match_value(&net, &cands[1]) - p.match_value(&plain, &cands[1]);
        assert!((d - 0.2 * net.guide_lift(1)).abs() < 1e-9, "{d}");
        // Without skill weight, the model changes nothing.
        let off = Scored::new(ScoredWeights {
            skill: 0.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(off.rank(&mut ctx(&net, 1), &cands, 2).order[0].idx, 0);
    }

    #[test]
    fn a_guide_under_the_floor_comes_first() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let w = |floor| ScoredWeights {
            load: 0.0,
            floor,
            ..Default::default()
        };
        // Guide 0 is the best match and busy; guide 1 is idle; guide 2 has some load.
        let cands = [
            cand(0, 0.9, 1.0, 5, 3),
            cand(1, 0.5, 1.0, 0, 3),
            cand(2, 0.6, 1.0, 4, 3),
        ];
        let off = Scored::new(w(0.0)).unwrap();
        let r = off.rank(&mut ctx(&net, 1), &cands, 3);
        assert_eq!(r.order[0].idx, 0);
        assert!(!r.order[0].reasons.contains(Reasons::LOAD_FLOOR));
        // Mean share 0.3: under a floor of 0.5 is a share below 0.15, which only guide 1 has.
        let on = Scored::new(w(0.5)).unwrap();
        let r = on.rank(&mut ctx(&net, 1), &cands, 3);
        assert_eq!(r.order.iter().map(|x| x.idx).collect::<Vec<_>>(), [1, 0, 2]);
        assert!(r.order[0].reasons.contains(Reasons::LOAD_FLOOR));
        assert_ne!(on.version(), off.version());
        // Nobody is under the floor when nobody has a lead yet.
        let fresh = [cand(0, 0.9, 1.0, 0, 3), cand(1, 0.5, 1.0, 0, 3)];
        assert_eq!(on.rank(&mut ctx(&net, 1), &fresh, 2).order[0].idx, 0);
        let e = Scored::new(w(1.5)).unwrap_err();
        assert!(e.contains("policy.floor"), "{e}");
    }

    #[test]
    fn rejects_bad_weights() {
        let e = Scored::new(ScoredWeights {
            load: -1.0,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("policy.load"), "{e}");
    }
}
