use super::{Candidate, Policy, Ranking, Reasons, RouteContext, quantize, rank_by};

/// A reference policy: the guide with the least used share of today's capacity, whatever the
/// distance or the match. Equal shares are drawn at random.
#[derive(Debug, Clone, Copy, Default)]
pub struct Balance;

impl Policy for Balance {
    fn name(&self) -> &'static str {
        "balance"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn rank(&self, ctx: &mut RouteContext<'_>, candidates: &[Candidate], keep: usize) -> Ranking {
        rank_by(
            ctx,
            candidates,
            keep,
            |c| quantize(1.0 - c.load()),
            |_, free| (free as f64 / 1e9, Reasons::LEAST_LOADED),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::{Day, Level, SplitMix64};
    use std::sync::Arc;

    #[test]
    fn least_used_share_first_whatever_the_distance() {
        let net = demo_files().load(Arc::new(RegionTree::embedded())).unwrap();
        let c = |guide, km, used, capacity| Candidate {
            store: 0,
            guide,
            distance_km: Some(km),
            region_affinity: 1.0,
            preference: 1.0,
            used,
            capacity,
            tier: 5,
        };
        // Shares: 0.5, 0.25, 0.9, 0.3.
        let cands = [
            c(0, 1.0, 5, 10),
            c(1, 50.0, 1, 4),
            c(2, 0.5, 9, 10),
            c(3, 9.0, 3, 10),
        ];
        let mut ctx = RouteContext {
            network: &net,
            region: net.regions().root(),
            level: Level::City,
            day: Day(0),
            rng: SplitMix64::new(1),
            channel: 0,
            hour: 12,
            segment: None,
        };
        let r = Balance.rank(&mut ctx, &cands, 4);
        let order: Vec<usize> = r.order.iter().map(|r| r.idx).collect();
        assert_eq!(order, vec![1, 3, 0, 2]);
        assert!((r.order[0].score - 0.75).abs() < 1e-9);
    }
}
