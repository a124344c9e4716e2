//! The Lagrangian dual bound of a day (DESIGN §8), for days too large for the exact solver:
//!
//! `UB(β) = Σ_j c_j β_j + Σ_i max(0, max_j (w_ij − β_j))`
//!
//! is at least the optimum for every β ≥ 0 (relax each guide's capacity with price β_j). The
//! assignment LP is integral, so min over β of UB equals the optimum; projected subgradient
//! steps (Polyak's step towards the best feasible value found) close in on it. A feasible
//! assignment priced by the current β gives a lower bound along the way, so every bound comes
//! with its own gap. Work per step is one pass over the edges, split across threads.

use crate::instance::Instance;

/// How long to tighten.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DualOptions {
    pub max_iterations: usize,
    /// Stop once (upper − lower) / upper is at most this.
    pub gap: f64,
    /// Threads for the passes over the edges (at least 1).
    pub threads: usize,
}

impl Default for DualOptions {
    fn default() -> Self {
        Self {
            max_iterations: 300,
            gap: 0.002,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The best bound found.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// Never below the optimum.
    pub upper: f64,
    /// The value of a feasible assignment: never above the optimum.
    pub lower: f64,
    /// The prices that gave `upper`: the day's capacity prices.
    pub beta: Vec<f64>,
    pub iterations: usize,
}

impl Bound {
    /// (upper − lower) / upper; 0 for an empty day.
    pub fn gap(&self) -> f64 {
        if self.upper > 0.0 {
            (self.upper - self.lower) / self.upper
        } else {
            0.0
        }
    }
}

/// UB(β) and, per guide, how many leads choose it at these prices.
fn evaluate(inst: &Instance, beta: &[f64], threads: usize) -> (f64, Vec<u32>) {
    let n = inst.leads();
    let chunk = n.div_ceil(threads.max(1)).max(1);
    let parts: Vec<(f64, Vec<u32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                s.spawn(move || {
                    let mut chosen = vec![0u32; inst.guides()];
                    let mut sum = 0.0;
                    for i in from..(from + chunk).min(n) {
                        let (gs, vs) = inst.edges(i);
                        let (mut best, mut arg) = (0.0, None);
                        for (&g, &v) in gs.iter().zip(vs) {
                            let m = f64::from(v) - beta[g as usize];
                            if m > best {
                                (best, arg) = (m, Some(g));
                            }
                        }
                        sum += best;
                        if let Some(g) = arg {
                            chosen[g as usize] += 1;
                        }
                    }
                    (sum, chosen)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut chosen = vec![0u32; inst.guides()];
    let mut total = 0.0;
    for (sum, c) in parts {
        total += sum;
        for (a, b) in chosen.iter_mut().zip(c) {
            *a += b;
        }
    }
    let priced: f64 = inst
        .capacities()
        .iter()
        .zip(beta)
        .map(|(&c, &b)| f64::from(c) * b)
        .sum();
    (priced + total, chosen)
}

/// A feasible assignment from prices: leads in order of their best net value (value − price),
/// highest first, each to the guide with room that nets it most. Returns its value.
fn priced_greedy(inst: &Instance, beta: &[f64]) -> f64 {
    let best_margin = |i: usize| {
        let (gs, vs) = inst.edges(i);
        gs.iter()
            .zip(vs)
            .map(|(&g, &v)| f64::from(v) - beta[g as usize])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let mut order: Vec<(f64, u32)> = (0..inst.leads())
        .map(|i| (best_margin(i), i as u32))
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = inst.capacities().to_vec();
    let mut total = 0.0;
    for (_, i) in order {
        let (gs, vs) = inst.edges(i as usize);
        let mut best: Option<(f64, u32, f32)> = None;
        for (&g, &v) in gs.iter().zip(vs) {
            if left[g as usize] == 0 {
                continue;
            }
            let m = f64::from(v) - beta[g as usize];
            if best.is_none_or(|(b, _, _)| m > b) {
                best = Some((m, g, v));
            }
        }
        if let Some((_, g, v)) = best {
            left[g as usize] -= 1;
            total += f64::from(v);
        }
    }
    total
}

/// Tightens the bound from `warm` prices (0 when `None`).
pub fn bound(inst: &Instance, warm: Option<&[f64]>, opts: DualOptions) -> Bound {
    let m = inst.guides();
    let mut beta: Vec<f64> = match warm {
        Some(w) if w.len() == m => w.iter().map(|b| b.max(0.0)).collect(),
        _ => vec![0.0; m],
    };
    let mut lower = inst.greedy().0.max(priced_greedy(inst, &beta));
    let (mut upper, mut chosen) = evaluate(inst, &beta, opts.threads);
    let mut best = Bound {
        upper,
        lower,
        beta: beta.clone(),
        iterations: 0,
    };
    let mut lambda = 1.0;
    let mut stale = 0;
    for it in 1..=opts.max_iterations {
        best.iterations = it;
        if best.gap() <= opts.gap {
            break;
        }
        // Subgradient of UB at β: c_j − (leads choosing j); a step only moves prices that may
        // move (a price at 0 with room to spare stays at 0).
        let mut norm = 0.0;
        let grad: Vec<f64> = (0..m)
            .map(|j| {
                let g = f64::from(inst.capacities()[j]) - f64::from(chosen[j]);
                let g = if beta[j] <= 0.0 && g > 0.0 { 0.0 } else { g };
                norm += g * g;
                g
            })
            .collect();
        if norm == 0.0 {
            // β is optimal: the relaxation's choice keeps every capacity.
            best.lower = best.upper;
            break;
        }
        let step = lambda * (upper - lower).max(1e-9 * upper.abs().max(1.0)) / norm;
        for (b, g) in beta.iter_mut().zip(&grad) {
            *b = (*b - step * g).max(0.0);
        }
        (upper, chosen) = evaluate(inst, &beta, opts.threads);
        if upper < best.upper - 1e-12 * best.upper.abs() {
            best.upper = upper;
            best.beta.clone_from(&beta);
            stale = 0;
        } else {
            stale += 1;
            if stale >= 5 {
                lambda *= 0.5;
                stale = 0;
            }
        }
        if it % 10 == 0 {
            lower = lower.max(priced_greedy(inst, &best.beta));
            best.lower = lower;
        }
    }
    best.lower = best.lower.max(lower).min(best.upper);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_prices_bound_a_small_day_from_above() {
        // Two leads, one guide of capacity 1: the optimum is the better lead, 5.
        let mut inst = Instance::new(vec![1]);
        inst.push_lead([(0, 5.0)]).unwrap();
        inst.push_lead([(0, 3.0)]).unwrap();
        for beta in [0.0, 2.0, 4.0, 9.0] {
            let (ub, _) = evaluate(&inst, &[beta], 1);
            assert!(ub >= 5.0 - 1e-9, "beta {beta}: {ub}");
        }
        // A price between the two values is optimal: UB = 1·3 + (5 − 3) = 5.
        let b = bound(
            &inst,
            None,
            DualOptions {
                max_iterations: 100,
                gap: 0.0,
                threads: 1,
            },
        );
        assert!((b.upper - 5.0).abs() < 1e-6, "{b:?}");
        assert!((3.0..=5.0).contains(&b.beta[0]), "{b:?}");
        assert_eq!(b.lower, 5.0);
    }
}
