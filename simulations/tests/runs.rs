//! Runs of whole scenarios: reproducibility, the yardstick's guarantees, and a planted
//! scenario whose winner is known.

use leadrouter_sim::report;
use leadrouter_sim::run::{Options, Run, Yardstick, run};
use leadrouter_sim::scenario::Scenario;

fn go(text: &str) -> Run {
    let s = Scenario::parse(text).unwrap();
    let c = s.check().unwrap();
    run(
        &s,
        &c,
        Options {
            progress: false,
            threads: 2,
            record_orders: false,
        },
    )
    .unwrap()
}

const SMALL: &str = "seed = 11\ndays = 2\n[demand]\nleads_per_day = 3000\n\
    [[policies]]\nname = \"scored\"\n[[policies]]\nname = \"dual_price\"\n[[policies]]\nname = \"round_robin\"\n";

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    report::write(&go(SMALL), dirs[0].path()).unwrap();
    report::write(&go(SMALL), dirs[1].path()).unwrap();
    report::write(
        &go(&SMALL.replace("seed = 11", "seed = 12")),
        dirs[2].path(),
    )
    .unwrap();
    for f in [
        "report.md",
        "days.csv",
        "policies.csv",
        "utilisation.csv",
        "payouts.csv",
        "parties.csv",
        "money.csv",
        "stores.csv",
        "value_ratio.svg",
        "stores.svg",
        "utilisation.svg",
        "payouts.svg",
    ] {
        let a = std::fs::read(dirs[0].path().join(f)).unwrap();
        let b = std::fs::read(dirs[1].path().join(f)).unwrap();
        assert!(!a.is_empty(), "{f} is empty");
        assert!(a == b, "{f} differs between two runs of the same seed");
    }
    let a = std::fs::read_to_string(dirs[0].path().join("days.csv")).unwrap();
    let c = std::fs::read_to_string(dirs[2].path().join("days.csv")).unwrap();
    assert_ne!(a, c);
}

#[test]
fn no_policy_beats_the_optimum_and_every_lead_is_accounted_for() {
    let r = go(SMALL);
    assert_eq!(r.days.len(), 2);
    for d in &r.days {
        let Yardstick::Exact(opt) = d.yardstick else {
            panic!("a small day is solved exactly: {:?}", d.yardstick)
        };
        assert!(opt > 0.0);
        for p in &d.policies {
            assert!(p.value <= opt * (1.0 + 1e-6), "{} > {opt}", p.value);
            assert_eq!(p.routed + p.unrouted, d.leads as u64);
            assert_eq!(p.outside_reach, 0);
            assert!(p.sampled_revenue_cents >= 0 && p.expected_conversions > 0.0);
        }
    }
    // Every rule set pays out exactly the orders' revenue net of refunds, on trails that verify.
    for (k, p) in r.policies.iter().enumerate() {
        assert!(p.trails.ok, "{:?}", p.trails.problems);
        let revenue: i64 = r
            .days
            .iter()
            .map(|d| d.policies[k].sampled_revenue_cents)
            .sum();
        for m in &p.money {
            let net = m.revenue_cents - m.refunded_cents;
            assert_eq!(m.by_role.values().sum::<i64>(), net, "{}", m.split);
            assert_eq!(m.by_party.values().sum::<i64>(), net, "{}", m.split);
            // Orders paid after the last day are outside the run.
            assert!(
                m.revenue_cents <= revenue && m.revenue_cents > revenue * 9 / 10,
                "{} of {revenue}",
                m.revenue_cents
            );
        }
    }
}

#[test]
fn a_large_day_falls_back_to_the_dual_bound() {
    let r = go(&format!("{SMALL}\n[yardstick]\nexact_max_edges = 10\n"));
    for d in &r.days {
        let Yardstick::Dual { upper, lower } = d.yardstick else {
            panic!("expected the dual bound: {:?}", d.yardstick)
        };
        assert!(lower <= upper);
        for p in &d.policies {
            assert!(p.value <= upper * (1.0 + 1e-6));
        }
    }
    // The same day solved exactly lies between the bound's two sides.
    let exact = go(SMALL);
    for (a, b) in r.days.iter().zip(&exact.days) {
        let Yardstick::Dual { upper, lower } = a.yardstick else {
            unreachable!()
        };
        let opt = b.yardstick.reference();
        assert!(
            lower <= opt * (1.0 + 1e-6) && opt <= upper * (1.0 + 1e-6),
            "{lower} {opt} {upper}"
        );
        assert!(
            upper <= opt * 1.01,
            "bound {upper} more than 1% above {opt}"
        );
    }
}

/// Planted: conversion depends on distance alone, every guide is equally good and capacity is
/// ample, so the hindsight optimum sends each lead to its nearest store, which is what
/// `nearest` does. It must come out on top, at the optimum; policies blind to distance must not.
/// The leads are anonymous: no share link or binding decides for the policy.
#[test]
fn a_planted_scenario_is_won_by_the_right_policy() {
    let r = go(
        "seed = 5\ndays = 1\n[members]\nanonymous = 1.0\n[network]\ncapacity_scale = 30\n[routing]\nradius_km = 50\n\
         [truth]\npreference = 0\ntier = 0\nskill_sd = 0\ndistance = 4\nbase = -3\n\
         [demand]\nleads_per_day = 4000\n\
         [[policies]]\nname = \"nearest\"\n[[policies]]\nname = \"scored\"\n\
         [[policies]]\nname = \"balance\"\n[[policies]]\nname = \"ranking\"\n[[policies]]\nname = \"round_robin\"\n",
    );
    let s = r.summaries();
    let ratio = |n: &str| s.iter().find(|x| x.name == n).unwrap().ratio;
    assert!(ratio("nearest") > 0.999, "nearest {}", ratio("nearest"));
    for other in ["scored", "balance", "ranking", "round_robin"] {
        assert!(ratio(other) < ratio("nearest"), "{other} {}", ratio(other));
    }
    for blind in ["balance", "ranking", "round_robin"] {
        assert!(ratio(blind) < 0.9, "{blind} {}", ratio(blind));
    }
}

/// Offers: guides accept, decline or let offers expire by the truth's odds; a lead moves on to
/// the next guide and may run out of guides. Accepting every offer routes exactly as without
/// offers.
#[test]
fn offers_are_answered_and_move_on() {
    let offers = "[offers]\nchannels = [\"LIVESTREAM\", \"MINI_PROGRAM\"]\nmax_hops = 1\non_exhausted = \"unrouted\"\n";
    let r = go(&format!(
        "{SMALL}[truth]\noffer_accept = 0.5\noffer_decline = 0.3\n{offers}"
    ));
    for d in &r.days {
        let opt = d.yardstick.reference();
        for p in &d.policies {
            assert!(
                p.offers > 0 && p.offers_declined > 0 && p.offers_expired > 0,
                "{p:?}"
            );
            assert!(p.offers_declined + p.offers_expired <= p.offers);
            // With one re-offer, a lead is exhausted after two unanswered offers: ~4 % here.
            assert!(
                p.offers_exhausted > 0 && p.offers_exhausted < p.offers / 5,
                "{p:?}"
            );
            assert_eq!(p.routed + p.unrouted, d.leads as u64);
            assert!(p.value <= opt * (1.0 + 1e-6));
        }
    }
    let md = report::markdown(&r);
    assert!(md.contains("routed as offers"), "{md}");

    let plain = go(SMALL);
    let always = go(&format!(
        "{SMALL}[truth]\noffer_accept = 1.0\noffer_decline = 0.0\n{offers}"
    ));
    for (a, b) in plain.days.iter().zip(&always.days) {
        for (x, y) in a.policies.iter().zip(&b.policies) {
            assert!(y.offers > 0 && y.offers_declined == 0 && y.offers_expired == 0);
            assert_eq!((x.routed, x.unrouted), (y.routed, y.unrouted));
            assert!(
                (x.value - y.value).abs() < 1e-6 * x.value,
                "{} vs {}",
                x.value,
                y.value
            );
        }
    }
}

/// Planted: each district's taste has drifted from the shipped matrix. A preference model
/// learned from two days of orders finds it: the next day, `scored` with the model converts
/// more than `scored` with the stale matrix.
#[test]
fn a_learned_preference_beats_a_stale_matrix() {
    let base = "seed = 4\nstart = \"2026-12-01\"\n[truth]\nbase = -3.0\npreference_drift = 0.8\n\
                [demand]\nleads_per_day = 6000\n[learning]\npreference = false\n\
                [[policies]]\nname = \"scored\"\n";
    let d = tempfile::tempdir().unwrap();
    // History: days 0 and 1.
    let s = Scenario::parse(&format!("days = 2\n{base}")).unwrap();
    let c = s.check().unwrap();
    let hist = run(
        &s,
        &c,
        Options {
            progress: false,
            threads: 2,
            record_orders: true,
        },
    )
    .unwrap();
    let mut csv = String::from("order_id,region_code,category,amount_cents,occurred_at\n");
    for o in &hist.policies[0].orders {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            o.order_id, o.region_code, o.category, o.amount_cents, o.at_ms
        ));
    }
    let orders = d.path().join("orders.csv");
    std::fs::write(&orders, csv).unwrap();
    let artifact = d.path().join("preference.json");
    leadrouter::app::models::fit_preference(
        &leadrouter::app::models::PreferenceArgs {
            orders: &orders,
            decisions: None,
            network: None,
            half_life_days: 90.0,
            shrinkage: 30.0,
            as_of: None,
            by_amount: false,
        },
        &artifact,
    )
    .unwrap();
    // Day 2, out of sample, with and without the model.
    let stale = go(&format!("days = 3\n{base}"));
    let learned = go(&format!(
        "days = 3\n{base}[models]\npreference = {:?}\n",
        artifact.display().to_string()
    ));
    let (a, b) = (&stale.days[2].policies[0], &learned.days[2].policies[0]);
    assert!(
        b.expected_conversions > a.expected_conversions * 1.01,
        "learned {} vs stale {}",
        b.expected_conversions,
        a.expected_conversions
    );
}

#[test]
fn the_nightly_loop_learns_only_from_earlier_days_and_pays_off() {
    // Guides' hidden skill varies a lot: learning it should show from the second day on. The
    // leads are anonymous, so every route is the policy's (no binding decides one).
    let text = "seed = 5\ndays = 4\n[members]\nanonymous = 1.0\n[truth]\nskill_sd = 0.8\n[demand]\nleads_per_day = 4000\n\
        [[policies]]\nname = \"scored\"\n[[policies]]\nname = \"dual_price\"\n";
    let on = go(text);
    let off = go(&format!(
        "{text}[learning]\nskill = false\nprices = false\n"
    ));
    let value = |r: &Run, d: usize, k: usize| r.days[d].policies[k].value;
    for k in 0..2 {
        // Day 1 has no history: the same routes with or without the loop.
        assert_eq!(value(&on, 0, k), value(&off, 0, k), "policy {k}, day 1");
        let later = |r: &Run| (1..4).map(|d| value(r, d, k)).sum::<f64>();
        assert!(
            later(&on) > later(&off) * 1.02,
            "policy {k}: {} with the loop, {} without",
            later(&on),
            later(&off)
        );
    }
}

#[test]
fn a_floor_leaves_fewer_guides_idle_and_the_report_prices_it() {
    let text = "seed = 3\ndays = 2\n[demand]\nleads_per_day = 3000\n\
        [[policies]]\nname = \"scored\"\n[[policies]]\nname = \"scored\"\nfloor = 0.5\n";
    let r = go(text);
    let s = r.summaries();
    assert!(
        s[1].idle_guides_per_day < s[0].idle_guides_per_day * 0.8,
        "{} idle with the floor, {} without",
        s[1].idle_guides_per_day,
        s[0].idle_guides_per_day
    );
    assert!(s[1].day_load_gini < s[0].day_load_gini);
    assert_eq!(s[1].floor, 0.5);
    // The gap splits into what the estimates lose and what the allocation loses.
    for x in &s {
        let (e, a) = (x.estimation_loss.unwrap(), x.allocation_loss.unwrap());
        assert!((x.ratio + e + a - 1.0).abs() < 1e-6, "{x:?}");
        assert!(e >= -1e-9, "no allocation beats the optimum: {e}");
    }
    let md = report::markdown(&r);
    assert!(
        md.contains("## Fairness") && md.contains("value against `scored#1`"),
        "{md}"
    );
    assert!(md.contains("## Where the gap is"), "{md}");
}

#[test]
fn the_nightly_preference_fit_finds_district_taste() {
    // Taste has drifted by district and half the leads state nothing: what sold where, learned
    // each night, should route them better from the second day on (anonymous leads: every
    // route is the policy's).
    let base = "seed = 6\ndays = 4\n[members]\nanonymous = 1.0\n[truth]\nbase = -3.0\npreference_drift = 0.8\n\
                [demand]\nleads_per_day = 6000\nstated = 0.5\n[[policies]]\nname = \"scored\"\n";
    let on = go(base);
    let off = go(&format!("{base}[learning]\npreference = false\n"));
    let value = |r: &Run| -> f64 { r.days[1..].iter().map(|d| d.policies[0].value).sum() };
    // Day 0 is routed before anything is learned: the same for both.
    assert_eq!(on.days[0].policies[0].value, off.days[0].policies[0].value);
    assert!(
        value(&on) > value(&off) * 1.01,
        "learned {} vs not {}",
        value(&on),
        value(&off)
    );
}

#[test]
fn a_thin_history_waits_for_more_nights_instead_of_failing() {
    // Ten leads a day: too few outcomes for a propensity fit on the first nights.
    let r = go(
        "seed = 8\ndays = 3\n[demand]\nleads_per_day = 10\n[[policies]]\nname = \"scored\"\n[[policies]]\nname = \"dual_price\"\n",
    );
    assert_eq!(r.days.len(), 3);
    for d in &r.days {
        assert_eq!(d.leads, 10);
        assert!(d.policies.iter().all(|p| p.routed > 0));
    }
}
