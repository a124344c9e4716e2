//! Load fairness: how evenly leads spread over guides.

/// Gini coefficient of non-negative values (0: all equal; → 1: one takes all).
pub fn gini(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len() as f64;
    let sum: f64 = v.iter().sum();
    if v.is_empty() || sum <= 0.0 {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x)
        .sum();
    (2.0 * weighted) / (n * sum) - (n + 1.0) / n
}

/// Gini of the loads of guides with capacity, and how many of them have none: `(gini, idle)`.
/// `loads` are (used, capacity) pairs; guides without capacity are left out; a load is the used
/// share of capacity.
pub fn load_spread(loads: impl IntoIterator<Item = (u32, u32)>) -> (f64, usize) {
    let mut shares = Vec::new();
    let mut idle = 0;
    for (used, cap) in loads {
        if cap == 0 {
            continue;
        }
        idle += usize::from(used == 0);
        shares.push(f64::from(used) / f64::from(cap));
    }
    (gini(&shares), idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_loads_are_fair_and_one_taker_is_not() {
        assert_eq!(gini(&[2.0, 2.0, 2.0]), 0.0);
        let g = gini(&[0.0, 0.0, 0.0, 9.0]);
        assert!((g - 0.75).abs() < 1e-12, "{g}");
        assert_eq!(gini(&[]), 0.0);
        let (g, idle) = load_spread([(0, 10), (5, 10), (0, 0), (10, 20)]);
        assert_eq!(idle, 1);
        assert!(g > 0.0 && g < 1.0, "{g}");
    }
}
