//! `softmax`: explores. It scores every candidate as `scored` does and picks one at random with
//! probability `exp(score / temperature)` normalised over the candidates, from the lead's seeded
//! draw, so that the same lead and seed pick the same guide. It records the probability of the
//! pick and of each alternative, which is what off-policy evaluation of any other policy needs
//! from the log. A low temperature behaves like `scored`; a high one spreads leads evenly.

use super::{Candidate, Policy, Ranked, Ranking, Reasons, RouteContext, Scored, ScoredWeights};
use serde::Deserialize;

/// `[policy] name = "softmax"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SoftmaxConfig {
    /// In score units (scores lie in about [0, 1]). Default 0.05, in (0, 10].
    pub temperature: f64,
    /// The value estimate: `scored`'s weights (its defaults when absent).
    pub weights: ScoredWeights,
}

impl Default for SoftmaxConfig {
    fn default() -> Self {
        Self {
            temperature: 0.05,
            weights: ScoredWeights::default(),
        }
    }
}

#[derive(Debug)]
pub struct Softmax {
    scored: Scored,
    temperature: f64,
    version: String,
}

impl Softmax {
    pub fn new(c: SoftmaxConfig) -> Result<Self, String> {
        if !(c.temperature.is_finite() && c.temperature > 0.0 && c.temperature <= 10.0) {
            return Err(format!(
                "policy.temperature: must be in (0, 10], got {}",
                c.temperature
            ));
        }
        if c.weights.floor != 0.0 {
            return Err(
                "policy.weights.floor: softmax draws by value alone; a floor is for scored and dual_price"
                    .into(),
            );
        }
        let scored = Scored::new(c.weights)?;
        let version = format!("t{}:{}", c.temperature, scored.version());
        Ok(Self {
            scored,
            temperature: c.temperature,
            version,
        })
    }
}

impl Policy for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn value_estimate(
        &self,
        net: &crate::catalog::Network,
        channel: usize,
        hour: u32,
        c: &Candidate,
    ) -> Option<f64> {
        self.scored.value_estimate(net, channel, hour, c)
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        let all = self.scored.rank(ctx, candidates, candidates.len());
        let Some(best) = all.order.first().map(|r| r.score) else {
            return all;
        };
        let weights: Vec<f64> = all
            .order
            .iter()
            .map(|r| ((r.score - best) / self.temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut u = ctx.rng.next_f64() * total;
        let mut pick = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                pick = i;
                break;
            }
            u -= w;
        }
        let probability = |i: usize| weights[i] / total;
        let mut order = Vec::with_capacity(keep.min(all.order.len()));
        let mut probabilities = Vec::with_capacity(order.capacity());
        let first = all.order[pick];
        order.push(Ranked {
            reasons: if pick == 0 {
                first.reasons
            } else {
                first.reasons.with(Reasons::EXPLORED)
            },
            ..first
        });
        probabilities.push(probability(pick));
        for (i, r) in all.order.iter().enumerate() {
            if order.len() >= keep {
                break;
            }
            if i != pick {
                order.push(*r);
                probabilities.push(probability(i));
            }
        }
        Ranking {
            order,
            propensity: probability(pick),
            probabilities: Some(probabilities),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Day, Level, SplitMix64};
    use std::sync::Arc;

    fn cand(guide: u32, pref: f32) -> Candidate {
        Candidate {
            store: 0,
            guide,
            distance_km: None,
            region_affinity: 1.0,
            preference: pref,
            used: 0,
            capacity: 10,
            tier: 3,
        }
    }

    #[test]
    fn picks_follow_the_recorded_probabilities() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let p = Softmax::new(SoftmaxConfig {
            temperature: 0.1,
            ..Default::default()
        })
        .unwrap();
        let cands = [cand(0, 0.9), cand(1, 0.5), cand(2, 0.1)];
        let mut picked = [0u32; 3];
        let mut recorded = [0.0; 3];
        let n = 20_000;
        for lead in 0..n {
            let mut ctx = RouteContext {
                network: &net,
                region: net.regions().root(),
                level: Level::District,
                day: Day(0),
                rng: SplitMix64::keyed(1, format!("L{lead}").as_bytes()),
                channel: 0,
                hour: 12,
                segment: None,
            };
            let r = p.rank(&mut ctx, &cands, 3);
            let probs = r.probabilities.clone().unwrap();
            assert_eq!(r.order.len(), 3);
            assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert_eq!(r.propensity, probs[0]);
            let g = cands[r.order[0].idx].guide as usize;
            picked[g] += 1;
            for (k, o) in r.order.iter().enumerate() {
                recorded[cands[o.idx].guide as usize] = probs[k];
            }
            // Only a pick other than the best is marked as explored.
            assert_eq!(r.order[0].reasons.contains(Reasons::EXPLORED), g != 0);
        }
        // The best is picked most, but not always; frequencies match the probabilities.
        assert!(
            picked[0] > picked[1] && picked[1] > picked[2] && picked[2] > 0,
            "{picked:?}"
        );
        for g in 0..3 {
            let freq = f64::from(picked[g]) / f64::from(n);
            assert!(
                (freq - recorded[g]).abs() < 0.015,
                "guide {g}: {freq} vs {}",
                recorded[g]
            );
        }
    }

    #[test]
    fn a_bad_temperature_is_named() {
        let e = Softmax::new(SoftmaxConfig {
            temperature: 0.0,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("policy.temperature"), "{e}");
    }
}
