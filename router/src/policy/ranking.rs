use super::{Candidate, Policy, Ranked, Ranking, Reasons, RouteContext};
use crate::domain::SplitMix64;

/// A reference policy (the RANKING algorithm of online bipartite matching): every guide draws a
/// random priority each business day, and a lead goes to the candidate with the highest priority
/// that still has capacity. Priorities depend on the seed, the day and the guide id only, so they
/// hold all day and are the same after a restart.
#[derive(Debug, Clone)]
pub struct RankingPolicy {
    seed: u64,
}

impl RankingPolicy {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The guide's priority on `day`, in [0, 1).
    pub fn priority(&self, day: crate::domain::Day, guide_id: &str) -> f64 {
        let mut g = SplitMix64::keyed(
            self.seed ^ (day.0 as u64).wrapping_mul(0x9e37_79b9),
            guide_id.as_bytes(),
        );
        g.next_f64()
    }
}

impl Policy for RankingPolicy {
    fn name(&self) -> &'static str {
        "ranking"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        let mut top = super::TopK::new(keep);
        for (i, c) in candidates.iter().enumerate() {
            let p = self.priority(ctx.day, &ctx.network.guide(c.guide).id);
            // Priorities are 53-bit draws: equal ones would need equal guide ids.
            top.push(((p * (1u64 << 53) as f64) as u64, i as u64), i);
        }
        let order = top
            .into_sorted()
            .into_iter()
            .map(|((p, _), idx)| Ranked {
                idx,
                score: p as f64 / (1u64 << 53) as f64,
                reasons: Reasons::DAILY_PRIORITY,
            })
            .collect();
        Ranking {
            order,
            propensity: 1.0,
            probabilities: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Day, Level, SplitMix64};
    use std::sync::Arc;

    #[test]
    fn priorities_hold_for_the_day_and_change_with_it() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let cands: Vec<Candidate> = (0..12)
            .map(|g| Candidate {
                store: net.guide(g).store,
                guide: g,
                distance_km: None,
                region_affinity: 1.0,
                preference: 0.0,
                used: 0,
                capacity: 10,
                tier: 1,
            })
            .collect();
        let p = RankingPolicy::new(7);
        let pick = |day: i32, rng: u64| {
            let mut ctx = RouteContext {
                network: &net,
                region: net.regions().root(),
                level: Level::City,
                day: Day(day),
                rng: SplitMix64::new(rng),
                channel: 0,
                hour: 12,
                segment: None,
            };
            p.rank(&mut ctx, &cands, 3)
        };
        let a = pick(100, 1);
        // Another lead the same day: the same order, whatever its own random draws.
        assert_eq!(a, pick(100, 2));
        assert!(a.order[0].score >= a.order[1].score && a.order[1].score >= a.order[2].score);
        // Over many days each of the 12 guides comes first sometimes.
        let mut firsts = [0u32; 12];
        for day in 0..600 {
            firsts[pick(day, 1).order[0].idx] += 1;
        }
        assert!(firsts.iter().all(|&n| n > 15), "{firsts:?}");
    }
}
