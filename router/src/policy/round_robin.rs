use super::{Candidate, Policy, Ranked, Ranking, Reasons, RouteContext};
use std::sync::atomic::{AtomicU64, Ordering};

/// What brands do today: guides of the lead's area take turns. The area is the region level where
/// the engine found candidates (the lead's district, city, province or the whole country); each
/// area keeps its own turn counter.
#[derive(Debug)]
pub struct RoundRobin {
    turns: Vec<AtomicU64>,
}

impl RoundRobin {
    /// `regions`: number of regions in the tree (one counter each).
    pub fn new(regions: usize) -> Self {
        Self {
            turns: (0..regions).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        use crate::domain::Level;
        let regions = ctx.network.regions();
        let chain = regions.chain(ctx.region);
        let area = match ctx.level {
            Level::Radius | Level::District => chain[0].or(chain[1]).or(chain[2]),
            Level::City => chain[1].or(chain[2]),
            Level::Province => chain[2],
            Level::Nationwide => None,
        }
        .unwrap_or(regions.root());
        let n = candidates.len() as u64;
        let turn = self
            .turns
            .get(area.index())
            .map_or(0, |t| t.fetch_add(1, Ordering::Relaxed));
        let order = (0..keep.min(candidates.len()) as u64)
            .map(|k| Ranked {
                idx: ((turn + k) % n) as usize,
                score: 1.0,
                reasons: Reasons::ROUND_ROBIN,
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
    fn takes_turns_per_area() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let rr = RoundRobin::new(net.regions().len());
        let c = Candidate {
            store: 0,
            guide: 0,
            distance_km: None,
            region_affinity: 1.0,
            preference: 0.0,
            used: 0,
            capacity: 10,
            tier: 1,
        };
        let cands = [c, c, c];
        let a = net.regions().resolve("440106").unwrap();
        let b = net.regions().resolve("110105").unwrap();
        let pick = |region| {
            let mut ctx = RouteContext {
                network: &net,
                region,
                level: Level::District,
                day: Day(0),
                rng: SplitMix64::new(0),
                channel: 0,
                hour: 12,
                segment: None,
            };
            rr.rank(&mut ctx, &cands, 2).order[0].idx
        };
        assert_eq!([pick(a), pick(a), pick(a), pick(a)], [0, 1, 2, 0]);
        // Another area has its own turn.
        assert_eq!(pick(b), 0);
    }
}
