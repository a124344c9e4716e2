//! Off-policy evaluation: what a candidate policy would have earned, estimated from decisions
//! logged under another policy with the probability it gave each (its propensity) and what
//! each earned.
//!
//! Estimators, for logged rows `i` with action `a_i` at position `k_i`, reward `r_i`, logging
//! propensity `p_i`, the candidate's probability `π_i = π(a_i | i, k_i)`, weight
//! `w_i = π_i / p_i` and a reward model `q̂(a, k)`:
//!
//! - IPS (inverse propensity scoring): `mean(w_i r_i)`; unbiased where the log covers the
//!   candidate's actions, high variance when weights are large.
//! - SNIPS (self-normalised IPS): `Σ w_i r_i / Σ w_i`; a little bias, much less variance.
//! - DM (direct method): `mean(Σ_a π(a | i, k_i) q̂(a, k_i))`; as good as the reward model.
//! - DR (doubly robust): `DM + mean(w_i (r_i − q̂(a_i, k_i)))`; unbiased if either the
//!   propensities or the model are right.
//!
//! Each comes with a percentile bootstrap interval over the logged rows (seeded: the same
//! input gives the same interval), the effective sample size `(Σ w)² / Σ w²` and warnings when
//! the log does not support the estimate: few effective samples, or probability the candidate
//! puts on actions the log never took (invisible to IPS and SNIPS; DM and DR lean on the model
//! there).
//!
//! The reward model here is the mean reward of each (action, position) in the log, shrunk
//! towards its position's mean with [`SHRINK`] pseudo-observations: context-free, which suits
//! logs without features. A caller with a better model can pass its own.

use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};

/// One logged decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub round: u64,
    pub action: u32,
    pub position: u32,
    pub reward: f64,
    /// The logging policy's probability of `action` at `position` in this round, in (0, 1].
    pub pscore: f64,
}

/// The candidate policy's probabilities: per round, or the same for every round.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    /// `(action, position) → probability`, per round.
    pub by_round: HashMap<u64, HashMap<(u32, u32), f64>>,
    /// For rounds not in `by_round`.
    pub every_round: HashMap<(u32, u32), f64>,
}

impl Candidate {
    fn of_round(&self, round: u64) -> &HashMap<(u32, u32), f64> {
        self.by_round.get(&round).unwrap_or(&self.every_round)
    }

    pub fn prob(&self, round: u64, action: u32, position: u32) -> f64 {
        self.of_round(round)
            .get(&(action, position))
            .copied()
            .unwrap_or(0.0)
    }

    /// Checks that probabilities lie in [0, 1] and sum to at most 1 per round and position.
    pub fn check(&self) -> Result<(), OpeError> {
        let rounds = self
            .by_round
            .iter()
            .map(|(r, m)| (r.to_string(), m))
            .chain(std::iter::once(("*".to_string(), &self.every_round)));
        for (round, m) in rounds {
            let mut sums: HashMap<u32, f64> = HashMap::new();
            for (&(a, k), &p) in m {
                if !(p.is_finite() && (0.0..=1.0).contains(&p)) {
                    return Err(OpeError(format!(
                        "prob: must be in [0, 1], got {p} for round {round}, action {a}, position {k}"
                    )));
                }
                *sums.entry(k).or_default() += p;
            }
            if let Some((k, s)) = sums.into_iter().find(|&(_, s)| s > 1.0 + 1e-6) {
                return Err(OpeError(format!(
                    "prob: the probabilities of round {round} at position {k} sum to {s:.6}, more than 1"
                )));
            }
        }
        Ok(())
    }
}

/// Why an estimate could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct OpeError(pub String);

/// Pseudo-observations of the position's mean in each (action, position) cell of the reward
/// model.
pub const SHRINK: f64 = 10.0;

/// Below this many effective samples an estimate is flagged…
pub const MIN_ESS: f64 = 100.0;
/// …or below this share of the log's rows (a candidate that disagrees with the logging policy
/// on almost every round leans on a handful of lucky rows).
pub const MIN_ESS_SHARE: f64 = 0.01;

/// Above this share of the candidate's probability on actions never logged, an estimate is
/// flagged.
pub const MAX_UNSUPPORTED: f64 = 0.05;

/// The context-free reward model: mean reward per (action, position), shrunk towards the
/// position's mean.
#[derive(Debug, Clone)]
pub struct RewardModel {
    cells: HashMap<(u32, u32), f64>,
    positions: HashMap<u32, f64>,
    overall: f64,
}

impl RewardModel {
    pub fn fit(log: &[Logged]) -> Self {
        let mut cells: HashMap<(u32, u32), (f64, f64)> = HashMap::new();
        let mut positions: HashMap<u32, (f64, f64)> = HashMap::new();
        for l in log {
            let c = cells.entry((l.action, l.position)).or_default();
            c.0 += l.reward;
            c.1 += 1.0;
            let p = positions.entry(l.position).or_default();
            p.0 += l.reward;
            p.1 += 1.0;
        }
        let overall = log.iter().map(|l| l.reward).sum::<f64>() / log.len().max(1) as f64;
        let positions: HashMap<u32, f64> = positions
            .into_iter()
            .map(|(k, (s, n))| (k, s / n))
            .collect();
        let cells = cells
            .into_iter()
            .map(|((a, k), (s, n))| {
                let prior = positions.get(&k).copied().unwrap_or(overall);
                ((a, k), (s + SHRINK * prior) / (n + SHRINK))
            })
            .collect();
        Self {
            cells,
            positions,
            overall,
        }
    }

    pub fn predict(&self, action: u32, position: u32) -> f64 {
        self.cells
            .get(&(action, position))
            .or_else(|| self.positions.get(&position))
            .copied()
            .unwrap_or(self.overall)
    }
}

/// One estimator's value and its bootstrap interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub estimator: &'static str,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// What [`evaluate`] found.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub rows: usize,
    /// The mean reward of the log: the logging policy's own value.
    pub logged_value: f64,
    /// IPS, SNIPS, DM and DR, in that order.
    pub estimates: Vec<Estimate>,
    pub effective_sample_size: f64,
    pub max_weight: f64,
    /// The candidate's mean probability on (action, position) pairs the log never took.
    pub unsupported: f64,
    /// Why an estimate may not be trusted (empty: none found).
    pub warnings: Vec<String>,
    /// The interval's level and the bootstrap's draws.
    pub confidence: f64,
    pub bootstrap: usize,
}

impl Evaluation {
    pub fn get(&self, estimator: &str) -> Option<&Estimate> {
        self.estimates.iter().find(|e| e.estimator == estimator)
    }
}

/// Checks one logged row; the error names the field.
pub fn check_row(l: &Logged) -> Result<(), String> {
    if !(l.pscore.is_finite() && l.pscore > 0.0 && l.pscore <= 1.0) {
        return Err(format!("pscore: must be in (0, 1], got {}", l.pscore));
    }
    if !l.reward.is_finite() {
        return Err(format!("reward: must be a finite number, got {}", l.reward));
    }
    Ok(())
}

/// Estimates the candidate's value on `log` by IPS, SNIPS, DM and DR with percentile intervals
/// at `confidence` from `bootstrap` resamples drawn with `seed`.
pub fn evaluate(
    log: &[Logged],
    candidate: &Candidate,
    bootstrap: usize,
    confidence: f64,
    seed: u64,
) -> Result<Evaluation, OpeError> {
    if log.is_empty() {
        return Err(OpeError("log: has no rows".into()));
    }
    if !(0.5..1.0).contains(&confidence) {
        return Err(OpeError(format!(
            "confidence: must be in [0.5, 1), got {confidence}"
        )));
    }
    for (i, l) in log.iter().enumerate() {
        check_row(l).map_err(|e| OpeError(format!("log row {}: {e}", i + 1)))?;
    }
    candidate.check()?;
    let model = RewardModel::fit(log);
    let logged: HashSet<(u32, u32)> = log.iter().map(|l| (l.action, l.position)).collect();
    // Per row: weight, reward, the model at the logged action, the model's value of the
    // candidate at the row's position, and the candidate's mass the log never took.
    let mut per_row = Vec::with_capacity(log.len());
    let mut unsupported = 0.0;
    for l in log {
        let dist = candidate.of_round(l.round);
        let mut dm = 0.0;
        for (&(a, k), &p) in dist {
            if k == l.position {
                dm += p * model.predict(a, k);
                if !logged.contains(&(a, k)) {
                    unsupported += p;
                }
            }
        }
        let w = candidate.prob(l.round, l.action, l.position) / l.pscore;
        per_row.push([w, l.reward, model.predict(l.action, l.position), dm]);
    }
    unsupported /= log.len() as f64;
    let estimates_of = |rows: &mut dyn Iterator<Item = &[f64; 4]>| {
        let (mut n, mut wr, mut w, mut dm, mut dr) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &[wi, ri, qi, dmi] in rows {
            n += 1.0;
            wr += wi * ri;
            w += wi;
            dm += dmi;
            dr += dmi + wi * (ri - qi);
        }
        let snips = if w > 0.0 { wr / w } else { 0.0 };
        [wr / n, snips, dm / n, dr / n]
    };
    let point = estimates_of(&mut per_row.iter());
    let mut draws: [Vec<f64>; 4] = Default::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..bootstrap {
        let n = per_row.len();
        let picks: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
        let e = estimates_of(&mut picks.iter().map(|&i| &per_row[i]));
        for (d, v) in draws.iter_mut().zip(e) {
            d.push(v);
        }
    }
    let tail = (1.0 - confidence) / 2.0;
    let names = ["ips", "snips", "dm", "dr"];
    let estimates = names
        .iter()
        .zip(point)
        .zip(draws.iter_mut())
        .map(|((&estimator, value), d)| {
            d.sort_by(f64::total_cmp);
            let at = |q: f64| {
                if d.is_empty() {
                    value
                } else {
                    d[((q * (d.len() - 1) as f64).round() as usize).min(d.len() - 1)]
                }
            };
            Estimate {
                estimator,
                value,
                low: at(tail),
                high: at(1.0 - tail),
            }
        })
        .collect();
    let (sw, sw2) = per_row
        .iter()
        .fold((0.0, 0.0), |(a, b), r| (a + r[0], b + r[0] * r[0]));
    let ess = if sw2 > 0.0 { sw * sw / sw2 } else { 0.0 };
    let max_weight = per_row.iter().map(|r| r[0]).fold(0.0, f64::max);
    let mut warnings = Vec::new();
    if ess < MIN_ESS.max(MIN_ESS_SHARE * log.len() as f64) {
        warnings.push(format!(
            "the log supports the candidate poorly: {ess:.1} effective samples of {} rows \
             (fewer than {MIN_ESS} or {}% of them); IPS, SNIPS and DR intervals are unreliable",
            log.len(),
            100.0 * MIN_ESS_SHARE
        ));
    }
    if unsupported > MAX_UNSUPPORTED {
        warnings.push(format!(
            "the candidate puts {:.1}% of its probability on actions the log never took: IPS \
             and SNIPS cannot see them, DM and DR rely on the reward model there",
            100.0 * unsupported
        ));
    }
    Ok(Evaluation {
        rows: log.len(),
        logged_value: log.iter().map(|l| l.reward).sum::<f64>() / log.len() as f64,
        estimates,
        effective_sample_size: ess,
        max_weight,
        unsupported,
        warnings,
        confidence,
        bootstrap,
    })
}

/// The action distribution of Bernoulli Thompson sampling that fills `positions` slots with
/// the actions of highest sampled rate under Beta(`alpha`, `beta`) priors, by `sims`
/// simulations: `dist[action][position]`.
pub fn thompson_top_k(
    alpha: &[f64],
    beta: &[f64],
    positions: usize,
    sims: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>, OpeError> {
    use rand_distr::Distribution;
    if alpha.len() != beta.len() || alpha.is_empty() {
        return Err(OpeError(format!(
            "prior: needs one alpha and one beta per action, got {} and {}",
            alpha.len(),
            beta.len()
        )));
    }
    if positions == 0 || positions > alpha.len() {
        return Err(OpeError(format!(
            "positions: must be in 1..={}, got {positions}",
            alpha.len()
        )));
    }
    if sims == 0 {
        return Err(OpeError("sims: must be at least 1".into()));
    }
    let betas = alpha
        .iter()
        .zip(beta)
        .enumerate()
        .map(|(i, (&a, &b))| {
            rand_distr::Beta::new(a, b).map_err(|e| {
                OpeError(format!(
                    "prior: action {i} has no Beta({a}, {b}) ({e}); alpha and beta must be > 0"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut counts = vec![vec![0u64; positions]; alpha.len()];
    let mut theta: Vec<(f64, usize)> = vec![(0.0, 0); alpha.len()];
    for _ in 0..sims {
        for (i, b) in betas.iter().enumerate() {
            theta[i] = (b.sample(&mut rng), i);
        }
        theta.select_nth_unstable_by(positions - 1, |x, y| y.0.total_cmp(&x.0));
        let top = &mut theta[..positions];
        top.sort_by(|x, y| y.0.total_cmp(&x.0));
        for (k, &(_, a)) in top.iter().enumerate() {
            counts[a][k] += 1;
        }
    }
    Ok(counts
        .into_iter()
        .map(|c| c.into_iter().map(|n| n as f64 / sims as f64).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of a uniform policy over `actions` at one position whose action `a` pays `a / 10`
    /// on average (deterministic rewards alternate so that the mean is exact).
    fn uniform_log(actions: u32, rounds: u64) -> Vec<Logged> {
        (0..rounds)
            .map(|r| {
                let a = (r % u64::from(actions)) as u32;
                Logged {
                    round: r,
                    action: a,
                    position: 0,
                    reward: f64::from(a) / 10.0,
                    pscore: 1.0 / f64::from(actions),
                }
            })
            .collect()
    }

    #[test]
    fn every_estimator_finds_a_deterministic_policys_value() {
        let log = uniform_log(4, 4000);
        // Always action 3: worth 0.3.
        let mut c = Candidate::default();
        c.every_round.insert((3, 0), 1.0);
        let e = evaluate(&log, &c, 200, 0.95, 7).unwrap();
        for est in &e.estimates {
            // The model's cell is shrunk a little towards the position's mean: DM is near,
            // the others exact (DR corrects the model with the logged rewards).
            let tolerance = if est.estimator == "dm" { 2e-3 } else { 1e-9 };
            assert!((est.value - 0.3).abs() < tolerance, "{est:?}");
            assert!(
                est.low <= est.value + 1e-9 && est.value <= est.high + 1e-9,
                "{est:?}"
            );
        }
        assert!((e.logged_value - 0.15).abs() < 1e-9);
        assert!((e.effective_sample_size - 1000.0).abs() < 1e-6);
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
        // Seeded: the same intervals again.
        let again = evaluate(&log, &c, 200, 0.95, 7).unwrap();
        assert_eq!(e.estimates, again.estimates);
    }

    #[test]
    fn a_candidate_the_log_does_not_support_is_flagged() {
        let log = uniform_log(4, 200);
        let mut c = Candidate::default();
        // Action 9 was never logged.
        c.every_round.insert((9, 0), 0.5);
        c.every_round.insert((0, 0), 0.5);
        let e = evaluate(&log, &c, 50, 0.9, 1).unwrap();
        assert!((e.unsupported - 0.5).abs() < 1e-9);
        assert!(
            e.warnings.iter().any(|w| w.contains("never took")),
            "{:?}",
            e.warnings
        );
        assert!(
            e.warnings.iter().any(|w| w.contains("effective samples")),
            "{:?}",
            e.warnings
        );
    }

    #[test]
    fn bad_inputs_name_the_field() {
        let mut log = uniform_log(2, 10);
        log[3].pscore = 0.0;
        let c = Candidate::default();
        let e = evaluate(&log, &c, 10, 0.95, 1).unwrap_err();
        assert!(e.0.contains("row 4") && e.0.contains("pscore"), "{e}");
        let mut c = Candidate::default();
        c.every_round.insert((0, 0), 0.7);
        c.every_round.insert((1, 0), 0.7);
        let e = evaluate(&uniform_log(2, 10), &c, 10, 0.95, 1).unwrap_err();
        assert!(e.0.contains("sum to"), "{e}");
        assert!(thompson_top_k(&[1.0], &[0.0], 1, 10, 1).is_err());
        assert!(thompson_top_k(&[1.0, 1.0], &[1.0, 1.0], 3, 10, 1).is_err());
    }

    #[test]
    fn thompson_sampling_favours_the_item_with_the_best_prior() {
        let d = thompson_top_k(&[90.0, 10.0, 50.0], &[10.0, 90.0, 50.0], 2, 20_000, 3).unwrap();
        // Item 0 (rate 0.9) is almost always first, item 2 (0.5) second, item 1 (0.1) never.
        assert!(d[0][0] > 0.99, "{d:?}");
        assert!(d[2][1] > 0.99, "{d:?}");
        assert!(d[1][0] + d[1][1] < 0.01, "{d:?}");
        for k in 0..2 {
            let s: f64 = d.iter().map(|a| a[k]).sum();
            assert!((s - 1.0).abs() < 1e-9);
        }
    }
}
