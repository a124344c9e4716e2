use super::{Candidate, Policy, Ranking, Reasons, RouteContext, quantize, rank_by};

/// The nearest open store, and in it the least-loaded guide. Without coordinates "nearest" means
/// the closest region (same district before same city before same province). Equal distances and
/// equal loads are drawn at random.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nearest;

fn nearness(c: &Candidate) -> f64 {
    match c.distance_km {
        Some(km) => 1.0 / (1.0 + f64::from(km)),
        None => f64::from(c.region_affinity),
    }
}

impl Policy for Nearest {
    fn name(&self) -> &'static str {
        "nearest"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        let key = |c: &Candidate| (quantize(nearness(c)), -quantize(c.load()));
        rank_by(ctx, candidates, keep, key, |_, (near, _)| {
            (
                near as f64 / 1e9,
                Reasons::NEAREST_STORE.with(Reasons::LEAST_LOADED),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Day, Level, SplitMix64};
    use std::sync::Arc;

    #[test]
    fn nearest_store_then_least_loaded_guide() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let c = |store, guide, km, used| Candidate {
            store,
            guide,
            distance_km: Some(km),
            region_affinity: 1.0,
            preference: 0.0,
            used,
            capacity: 10,
            tier: 1,
        };
        let cands = [
            c(0, 0, 9.0, 0),
            c(1, 1, 2.0, 8),
            c(1, 2, 2.0, 3),
            c(2, 3, 4.0, 0),
        ];
        let mut ctx = RouteContext {
            network: &net,
            region: net.regions().root(),
            level: Level::City,
            day: Day(0),
            rng: SplitMix64::new(3),
            channel: 0,
            hour: 12,
            segment: None,
        };
        let r = Nearest.rank(&mut ctx, &cands, 4);
        let order: Vec<usize> = r.order.iter().map(|r| r.idx).collect();
        assert_eq!(order, vec![2, 1, 3, 0]);
        assert_eq!(r.propensity, 1.0);
    }
}
