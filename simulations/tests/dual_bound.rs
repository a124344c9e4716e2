//! The dual bound (in `leadrouter_models::dual`) against the exact optimum of the simulator's
//! min-cost flow.

use leadrouter_sim::dual::{DualOptions, bound};
use leadrouter_sim::flow;
use leadrouter_sim::instance::Instance;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    #[test]
    fn never_below_the_optimum_nor_its_lower_bound_above(
        leads in 1usize..60, guides in 1usize..12, per in 1usize..6, cap in 1u32..5, seed in any::<u64>(),
        iters in 0usize..40,
    ) {
        let inst = Instance::random(leads, guides, per, cap, seed);
        let opt = flow::solve(&inst).value;
        let b = bound(&inst, None, DualOptions { max_iterations: iters, gap: 0.0, threads: 2 });
        prop_assert!(b.upper >= opt - 1e-6 * opt.max(1.0), "UB {} < OPT {}", b.upper, opt);
        prop_assert!(b.lower <= opt + 1e-6 * opt.max(1.0), "LB {} > OPT {}", b.lower, opt);
        // Any prices give an upper bound, even bad ones.
        let crazy: Vec<f64> = (0..guides).map(|j| (j * 37 % 11) as f64).collect();
        let ub = bound(&inst, Some(&crazy), DualOptions { max_iterations: 0, gap: 0.0, threads: 1 }).upper;
        prop_assert!(ub >= opt - 1e-6 * opt.max(1.0));
    }
}

#[test]
fn within_one_percent_of_the_exact_optimum() {
    for seed in 0..3 {
        let inst = Instance::random(3000, 300, 12, 12, seed);
        let opt = flow::solve(&inst).value;
        let b = bound(&inst, None, DualOptions::default());
        assert!(b.upper >= opt - 1e-6 * opt);
        assert!(
            b.upper <= opt * 1.01,
            "seed {seed}: UB {} vs OPT {opt}",
            b.upper
        );
        assert!(
            b.lower >= opt * 0.98,
            "seed {seed}: LB {} vs OPT {opt}",
            b.lower
        );
    }
}

#[test]
fn warm_prices_start_closer() {
    let inst = Instance::random(2000, 200, 10, 10, 7);
    let cold = bound(
        &inst,
        None,
        DualOptions {
            max_iterations: 200,
            gap: 0.0,
            threads: 2,
        },
    );
    let warm = bound(
        &inst,
        Some(&cold.beta),
        DualOptions {
            max_iterations: 0,
            gap: 0.0,
            threads: 2,
        },
    );
    assert!((warm.upper - cold.upper).abs() <= 1e-9 * cold.upper);
    let zero = bound(
        &inst,
        None,
        DualOptions {
            max_iterations: 0,
            gap: 0.0,
            threads: 2,
        },
    );
    assert!(zero.upper > cold.upper);
}
