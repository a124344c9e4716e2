//! The money of simulated members: their trails are the production code's (exported, they
//! verify and recompute), and rule sets compared on the same members pay differently for
//! reasons the rules give.

use leadrouter::attribution::AttributionConfig;
use leadrouter::domain::trail::{EventBody, TrailEvent};
use leadrouter_sim::report;
use leadrouter_sim::run::{Options, Run, run};
use leadrouter_sim::scenario::Scenario;

fn go(text: &str, record: bool) -> (Scenario, Run) {
    let s = Scenario::parse(text).unwrap();
    let c = s.check().unwrap();
    let r = run(
        &s,
        &c,
        Options {
            progress: false,
            threads: 2,
            record_orders: record,
        },
    )
    .unwrap();
    (s, r)
}

const MEMBERS: &str = "seed = 5\ndays = 3\n[demand]\nleads_per_day = 2000\n\
    [[policies]]\nname = \"scored\"\n";

#[test]
fn a_simulated_members_trail_exported_verifies_and_recomputes() {
    let (s, r) = go(MEMBERS, true);
    let p = &r.policies[0];
    assert!(p.trails.ok, "{:?}", p.trails.problems);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail.jsonl");
    std::fs::write(&path, &p.trail).unwrap();
    // The rule book of a router configured with the scenario's rules in service.
    let book = AttributionConfig {
        ownership: vec![s.ownership[0].clone()],
        splits: vec![s.splits[0].clone()],
        ..Default::default()
    }
    .check()
    .unwrap();
    let report = leadrouter::app::trail::verify_file(&path, &book).unwrap();
    assert!(report.ok(), "{report:?}");
    let text = String::from_utf8(p.trail.clone()).unwrap();
    let events: Vec<TrailEvent> = text
        .lines()
        .filter_map(|l| TrailEvent::from_export_line(l).unwrap())
        .collect();
    assert_eq!(events.len(), p.trails.events);
    let count = |f: &dyn Fn(&EventBody) -> bool| events.iter().filter(|e| f(&e.body)).count();
    let orders = count(&|b| matches!(b, EventBody::Order(_)));
    let refunds = count(&|b| matches!(b, EventBody::Refund(_)));
    let bindings = count(&|b| matches!(b, EventBody::Binding(_)));
    let touches = count(&|b| matches!(b, EventBody::Touch(_)));
    assert!(orders > 500 && refunds > 10 && bindings > 1000 && touches > 2000);
    assert_eq!(orders as u64, p.money[0].orders);
    // A returning member: several leads, one binding, and an order its bound guide owns.
    let returning = events
        .iter()
        .filter_map(|e| e.order().map(|o| (e, o)))
        .find(|(e, o)| {
            o.ownership.rule.as_str() == "BOUND_GUIDE"
                && events
                    .iter()
                    .filter(|x| x.member_id == e.member_id && x.touch().is_some())
                    .count()
                    >= 3
        });
    assert!(
        returning.is_some(),
        "no returning member owned by their bound guide"
    );
    // A changed amount no longer verifies.
    let tampered = text.replacen("\"amount_cents\":", "\"amount_cents\":1", 1);
    std::fs::write(&path, tampered).unwrap();
    assert!(
        !leadrouter::app::trail::verify_file(&path, &book)
            .unwrap()
            .ok()
    );
}

const RULES: &str = "seed = 8\ndays = 3\n[demand]\nleads_per_day = 2500\n\
    [[policies]]\nname = \"dual_price\"\n\
    [[bindings]]\nversion = \"bind-on-route\"\n\
    [[bindings]]\nversion = \"links-only\"\nbind_on_route = false\n\
    [[ownership]]\nversion = \"bound-first\"\n\
    [[ownership]]\nversion = \"service-first\"\nservice_guide_first = true\n\
    [[splits]]\nversion = \"361\"\n\
    [[splits]]\nversion = \"25-70-5\"\nowner = 25\nfulfilling_store = 70\no2o_centre = 5\n";

#[test]
fn rule_sets_compared_on_the_same_members_pay_as_their_rules_say() {
    let (_, r) = go(RULES, false);
    assert_eq!(r.policies.len(), 2, "one run per binding rule set");
    let (on_route, links) = (&r.policies[0], &r.policies[1]);
    assert_eq!(
        (on_route.bindings.as_str(), links.bindings.as_str()),
        ("bind-on-route", "links-only")
    );
    for p in &r.policies {
        assert!(p.trails.ok, "{:?}", p.trails.problems);
        // Ownership major, split minor.
        let names: Vec<(&str, &str)> = p
            .money
            .iter()
            .map(|m| (m.ownership.as_str(), m.split.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("bound-first", "361"),
                ("bound-first", "25-70-5"),
                ("service-first", "361"),
                ("service-first", "25-70-5")
            ]
        );
        for m in &p.money {
            assert_eq!(
                m.by_party.values().sum::<i64>(),
                m.revenue_cents - m.refunded_cents
            );
        }
        // The same orders under every ownership and split alternative of a run.
        assert!(p.money.iter().all(|m| m.orders == p.money[0].orders));
        // 25/70/5 pays owners less and stores more than 361, on the same owners.
        let role = |k: usize, r: &str| p.money[k].by_role.get(r).copied().unwrap_or(0);
        assert!(role(1, "owner") < role(0, "owner"));
        assert!(role(1, "fulfilling_store") > role(0, "fulfilling_store"));
        assert_eq!(p.money[0].not_served, p.money[1].not_served);
        // Crediting the guide who sold before the bound guide leaves fewer orders owned by
        // someone other than the guide who served.
        assert!(p.money[2].not_served < p.money[0].not_served);
    }
    // The same members and arrivals in both runs.
    let leads = |k: usize| -> u64 { r.days.iter().map(|d| d.policies[k].member_leads).sum() };
    assert_eq!(leads(0), leads(1));
    assert!(leads(0) > 7000);
    // Binding on route binds nearly every member and the bound guide owns their orders; when
    // only share links bind, unbound members' orders go to whoever sold, the last touch, or
    // the channel they paid on (e-commerce among them).
    let binds = |k: usize| -> u64 { r.days.iter().map(|d| d.policies[k].binds).sum() };
    assert!(binds(0) > 3 * binds(1), "{} {}", binds(0), binds(1));
    let rule = |p: &leadrouter_sim::run::PolicyReport, x: &str| {
        p.money[0].by_rule.get(x).copied().unwrap_or(0)
    };
    assert!(rule(on_route, "BOUND_GUIDE") > 9 * p_orders(on_route) / 10);
    assert!(rule(links, "BOUND_GUIDE") < p_orders(links) / 2);
    assert!(rule(links, "PAID_CHANNEL") > 0);
    assert!(links.money[0].of_kind("channel") > on_route.money[0].of_kind("channel"));
    // Not a rescaling: who is paid changes, so the guides' spread does too.
    assert!((links.money[0].guide_gini - on_route.money[0].guide_gini).abs() > 0.005);

    // The store manager's table and chart.
    let dir = tempfile::tempdir().unwrap();
    report::write(&r, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## What changes for each store"), "{md}");
    assert!(md.contains("| links-only + service-first + 25-70-5 |") || md.contains("links-only"));
    let stores = std::fs::read_to_string(dir.path().join("stores.csv")).unwrap();
    // Every store's change is its total under the alternative less its total in service.
    for line in stores.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let n = |i: usize| f[i].parse::<i64>().unwrap();
        assert_eq!(n(7), n(5) + n(6));
        assert_eq!(n(9), n(7) - n(8));
    }
    let svg = std::fs::read_to_string(dir.path().join("stores.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("25-70-5"));
}

fn p_orders(p: &leadrouter_sim::run::PolicyReport) -> u64 {
    p.money[0].orders
}
