//! The report of a run: `report.md` (the summary an analyst reads first), CSV tables for their
//! own tools, and SVG charts. Money is in integer cents in the CSV files and in yuan (two
//! decimals) in the Markdown. The same run gives byte-identical files.

use crate::money::Money;
use crate::run::{PolicyDay, PolicyReport, Run, gini};
use crate::svg;
use std::fmt::Write as _;
use std::path::Path;

/// One policy over the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub name: String,
    pub version: String,
    /// Σ value / Σ yardstick over the days.
    pub ratio: f64,
    pub totals: PolicyDay,
    pub unrouted_share: f64,
    pub mean_distance_km: f64,
    pub mean_utilisation: f64,
    pub load_gini: f64,
    /// Means over the days: active guides given nothing, and the day's load Gini.
    pub idle_guides_per_day: f64,
    pub day_load_gini: f64,
    /// The gap to the optimum split (shares of the optimum; they add up to 1 − ratio): what the
    /// policy's estimates lose (the optimum minus the true value of the best allocation by its
    /// estimates) and what its allocation loses (the rest). `None` without estimates on every
    /// day, or on a day solved by the bound.
    pub estimation_loss: Option<f64>,
    pub allocation_loss: Option<f64>,
    /// The policy's fairness floor (0: none).
    pub floor: f64,
}

/// Utilisation buckets: [0, 0.1), …, [0.9, 1.0), exactly 1 (full every day).
pub const BUCKETS: usize = 11;

pub fn buckets(utilisation: &[f64]) -> [u64; BUCKETS] {
    let mut b = [0u64; BUCKETS];
    for &u in utilisation {
        let k = if u >= 1.0 - 1e-12 {
            10
        } else {
            ((u * 10.0).floor() as usize).min(9)
        };
        b[k] += 1;
    }
    b
}

fn add(a: &mut PolicyDay, b: &PolicyDay) {
    a.value += b.value;
    a.expected_conversions += b.expected_conversions;
    a.sampled_conversions += b.sampled_conversions;
    a.expected_revenue_cents += b.expected_revenue_cents;
    a.sampled_revenue_cents += b.sampled_revenue_cents;
    a.routed += b.routed;
    a.unrouted += b.unrouted;
    a.distance_km += b.distance_km;
    a.outside_reach += b.outside_reach;
    a.offers += b.offers;
    a.offers_declined += b.offers_declined;
    a.offers_expired += b.offers_expired;
    a.offers_exhausted += b.offers_exhausted;
    a.idle_guides += b.idle_guides;
    a.load_gini += b.load_gini;
    a.member_leads += b.member_leads;
    a.bound_routed += b.bound_routed;
    a.referrer_served += b.referrer_served;
    a.binds += b.binds;
    a.snatches += b.snatches;
    a.own_optimum = match (a.own_optimum, b.own_optimum) {
        (Some(x), Some(y)) => Some(x + y),
        _ => None,
    };
}

impl Run {
    /// The basket-blind optimum's share of the optimum over the run (see
    /// [`crate::run::DayReport::blind_optimum`]); `None` unless every day has it.
    pub fn blind_ratio(&self) -> Option<f64> {
        let blind: Option<f64> = self.days.iter().map(|d| d.blind_optimum).sum();
        let reference = self.reference();
        blind.filter(|_| reference > 0.0).map(|b| b / reference)
    }

    /// Σ of the days' yardsticks.
    pub fn reference(&self) -> f64 {
        self.days.iter().map(|d| d.yardstick.reference()).sum()
    }

    pub fn summaries(&self) -> Vec<Summary> {
        let reference = self.reference();
        self.policies
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let mut t = PolicyDay {
                    own_optimum: Some(0.0),
                    ..Default::default()
                };
                for d in &self.days {
                    add(&mut t, &d.policies[k]);
                }
                let days = self.days.len().max(1) as f64;
                let exact = self
                    .days
                    .iter()
                    .all(|d| matches!(d.yardstick, crate::run::Yardstick::Exact(_)));
                let own = t.own_optimum.filter(|_| exact && reference > 0.0);
                let leads = (t.routed + t.unrouted).max(1) as f64;
                Summary {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    ratio: if reference > 0.0 {
                        t.value / reference
                    } else {
                        0.0
                    },
                    unrouted_share: t.unrouted as f64 / leads,
                    mean_distance_km: t.distance_km / (t.routed.max(1) as f64),
                    mean_utilisation: p.utilisation.iter().sum::<f64>()
                        / p.utilisation.len().max(1) as f64,
                    load_gini: gini(&p.utilisation),
                    idle_guides_per_day: t.idle_guides as f64 / days,
                    day_load_gini: t.load_gini / days,
                    estimation_loss: own.map(|o| (reference - o) / reference),
                    allocation_loss: own.map(|o| (o - t.value) / reference),
                    floor: self
                        .scenario
                        .policies
                        .get(p.policy)
                        .map_or(0.0, |c| c.floor()),
                    totals: t,
                }
            })
            .collect()
    }
}

fn yuan(cents: f64) -> String {
    leadrouter::domain::money::yuan(cents.round() as i64)
}

/// Each run's label: its policy (with its place when two share a name) and, when there are
/// several, its binding rule set.
pub fn labels(run: &Run) -> Vec<String> {
    // Two policies of the same name (different parameters) get their index; runs under
    // several binding rule sets get the rule set's version.
    run.policies
        .iter()
        .map(|p| {
            let same = run
                .policies
                .iter()
                .filter(|q| q.name == p.name)
                .map(|q| q.policy)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let mut label = if same > 1 {
                format!("{}#{}", p.name, p.policy + 1)
            } else {
                p.name.clone()
            };
            if run.scenario.bindings.len() > 1 {
                let _ = write!(label, " / {}", p.bindings);
            }
            label
        })
        .collect()
}

/// "Where the gap is" and "Fairness".
fn gap_and_fairness(m: &mut String, run: &Run, sums: &[Summary], names: &[String]) {
    if sums.iter().any(|x| x.estimation_loss.is_some()) {
        let _ = writeln!(m, "\n## Where the gap is\n");
        let _ = writeln!(
            m,
            "For each policy that estimates value, its gap to the optimum split in two (shares of \
             the optimum): what its **estimates** lose (the optimum minus the true value of the \
             best allocation by its own estimates, the exact optimum of each day on them) and what \
             its **allocation** loses (the rest: routing one lead at a time, without tomorrow's \
             leads, against that allocation). Every model was learned from earlier days only.\n"
        );
        let _ = writeln!(
            m,
            "| policy | value / optimum | estimates lose | allocation loses |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|");
        for (x, name) in sums.iter().zip(names) {
            if let (Some(e), Some(a)) = (x.estimation_loss, x.allocation_loss) {
                let _ = writeln!(m, "| `{name}` | {:.4} | {:.4} | {:.4} |", x.ratio, e, a);
            }
        }
        if let Some(b) = run.blind_ratio() {
            let _ = writeln!(
                m,
                "\nThe best allocation by every lead's true conversion probabilities, but not its \
                 basket (which no router sees before the order), reaches {b:.4} of the optimum: \
                 of what the estimates lose, {:.4} is the basket, the rest the conversion \
                 estimate.",
                1.0 - b
            );
        }
    }
    let _ = writeln!(m, "\n## Fairness\n");
    let _ = writeln!(
        m,
        "Per business day, over the {} active guides with capacity: the Gini of their used share \
         of capacity and how many got no lead. A policy with a floor (`floor` = f) serves every \
         guide under f × its peers' mean load first; its cost is its value against the same \
         policy without the floor in this run.\n",
        run.active_guides
    );
    let _ = writeln!(
        m,
        "| policy | floor | load Gini per day | idle guides per day | value / optimum | cost of the floor |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---|");
    let configs = &run.scenario.policies;
    for (k, (x, name)) in sums.iter().zip(names).enumerate() {
        let cost = if x.floor > 0.0 {
            let plain = configs[k].with_floor(0.0);
            match configs.iter().position(|c| *c == plain) {
                Some(j) if sums[j].ratio > 0.0 => format!(
                    "{:+.2} % value against `{}`",
                    100.0 * (x.ratio - sums[j].ratio) / sums[j].ratio,
                    names[j]
                ),
                _ => "add the policy without the floor to compare".into(),
            }
        } else {
            "—".into()
        };
        let _ = writeln!(
            m,
            "| `{name}` | {} | {:.3} | {:.1} ({:.1}%) | {:.4} | {cost} |",
            x.floor,
            x.day_load_gini,
            x.idle_guides_per_day,
            100.0 * x.idle_guides_per_day / run.active_guides.max(1) as f64,
            x.ratio,
        );
    }
}

/// The first columns of a run's line under a rule set: policy, bindings, ownership, split.
fn csv_key(name: &str, p: &PolicyReport, x: &Money) -> String {
    format!(
        "{name},{},{},{}",
        csv_field(&p.bindings),
        csv_field(&x.ownership),
        csv_field(&x.split)
    )
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The money of a policy under the rules in service: the first binding rule set, ownership
/// rule set and split policy.
fn in_service(run: &Run, policy: usize) -> Option<&Money> {
    run.policies
        .iter()
        .find(|p| p.policy == policy && p.bindings == run.scenario.bindings[0].version)
        .and_then(|p| p.money.first())
}

/// What a store and its guides are paid.
fn store_total(m: &Money, store: &str) -> i64 {
    m.by_store.get(store).map_or(0, |(a, b)| a + b)
}

/// How a rule set differs from the one in service: the versions that differ ("in service"
/// when none), with the policy's label first when `with_policy`.
fn alternative_label(
    run: &Run,
    p: &PolicyReport,
    x: &Money,
    with_policy: bool,
    name: &str,
) -> String {
    let s = &run.scenario;
    let mut parts = Vec::new();
    if p.bindings != s.bindings[0].version {
        parts.push(p.bindings.clone());
    }
    if x.ownership != s.ownership[0].version {
        parts.push(x.ownership.clone());
    }
    if x.split != s.splits[0].version {
        parts.push(x.split.clone());
    }
    let rules = if parts.is_empty() {
        "in service".to_string()
    } else {
        parts.join(" + ")
    };
    if with_policy && run.scenario.policies.len() > 1 {
        format!("{name}: {rules}")
    } else {
        rules
    }
}

/// The first policy's alternatives (every binding rule set × ownership rule set × split
/// policy but the one in service), at most six, by label.
fn alternatives_of_first(run: &Run) -> Vec<(String, &Money)> {
    let mut out = Vec::new();
    for p in run.policies.iter().filter(|p| p.policy == 0) {
        for x in &p.money {
            let label = alternative_label(run, p, x, false, "");
            if label != "in service" && out.len() < 6 {
                out.push((label, x));
            }
        }
    }
    out
}

/// The stores whose pay changes most under the first policy's alternatives (at most `n`), and
/// per alternative the change of each, in yuan.
fn store_changes(run: &Run, n: usize) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let Some(base) = in_service(run, 0) else {
        return (Vec::new(), Vec::new());
    };
    let alts = alternatives_of_first(run);
    let ids: std::collections::BTreeSet<&String> = base
        .by_store
        .keys()
        .chain(alts.iter().flat_map(|(_, m)| m.by_store.keys()))
        .collect();
    let change = |m: &Money, id: &str| store_total(m, id) - store_total(base, id);
    let mut ranked: Vec<(&String, i64)> = ids
        .into_iter()
        .map(|id| {
            let worst = alts
                .iter()
                .map(|(_, m)| change(m, id).abs())
                .max()
                .unwrap_or(0);
            (id, worst)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(n);
    let rows: Vec<String> = ranked.iter().map(|(id, _)| id.to_string()).collect();
    let series = alts
        .iter()
        .map(|(label, m)| {
            (
                label.clone(),
                rows.iter().map(|id| change(m, id) as f64 / 100.0).collect(),
            )
        })
        .collect();
    (rows, series)
}

/// "Members and bindings": who the leads were and what the binding rules did with them.
fn members_section(m: &mut String, run: &Run, sums: &[Summary], names: &[String]) {
    let s = &run.scenario;
    let _ = writeln!(m, "\n## Members and bindings\n");
    let mm = &s.members;
    let _ = writeln!(
        m,
        "{:.0} % of leads had a member ({:.0} % of them returning from an earlier day, {:.0} % \
         through a guide's share link, {:.0} % of those from the member's own guide); every \
         run bound and routed them by its binding rule set through the engine. Orders were paid \
         an hour after their lead; {:.0} % were refunded within {} days.\n",
        100.0 * (1.0 - mm.anonymous),
        100.0 * mm.returning,
        100.0 * mm.share_link,
        100.0 * mm.share_link_own,
        100.0 * mm.refund_rate,
        mm.refund_days
    );
    let _ = writeln!(
        m,
        "| run | bindings | member leads | routed by the binding | served by the share-link guide | new bindings | snatched |"
    );
    let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|");
    for ((x, p), name) in sums.iter().zip(&run.policies).zip(names) {
        let t = &x.totals;
        let _ = writeln!(
            m,
            "| `{name}` | `{}` | {} | {} ({:.1}%) | {} | {} | {} |",
            p.bindings,
            t.member_leads,
            t.bound_routed,
            100.0 * t.bound_routed as f64 / t.member_leads.max(1) as f64,
            t.referrer_served,
            t.binds,
            t.snatches
        );
    }
}

/// "Money": what every rule set pays, by role and kind of party.
fn money_section(m: &mut String, run: &Run, names: &[String]) {
    let s = &run.scenario;
    let _ = writeln!(m, "\n## Money\n");
    let trails: Vec<&crate::money::Trails> = run.policies.iter().map(|p| &p.trails).collect();
    let members: usize = trails.iter().map(|t| t.members).sum();
    let events: usize = trails.iter().map(|t| t.events).sum();
    let bad: Vec<&String> = trails.iter().flat_map(|t| &t.problems).collect();
    let _ = writeln!(
        m,
        "Every run recorded its members' touches, orders and refunds through the production \
         attribution code: owners by the ownership rule set in service (`{}`), splits by the \
         policy in service (`{}`). Its trails were then verified and recomputed as `leadrouter \
         trail verify` does ({members} trails, {events} events over the runs: {}) and restated \
         under every `[[ownership]]` × `[[splits]]` alternative by the same code. Amounts are \
         net of refunds; **owner ≠ server** is the share of orders whose owner is not the guide \
         who served the order's lead (the orders a store or the e-commerce team is likely to \
         dispute); the guide payout Gini is over all {} active guides.\n",
        s.ownership[0].version,
        s.splits[0].version,
        if bad.is_empty() {
            "every chain holds and every order recomputes".to_string()
        } else {
            format!("**{} problem(s)**, first: {}", bad.len(), bad[0])
        },
        run.active_guides
    );
    let _ = writeln!(
        m,
        "| run | bindings | ownership | split | orders | net revenue | owner | fulfilling store | O2O centre | referrers | e-commerce & channels | stores | guides | guides paid | guide payout Gini | owner ≠ server | owner by: bound / service / last touch / channel |"
    );
    let _ = writeln!(
        m,
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for (p, name) in run.policies.iter().zip(names) {
        for x in &p.money {
            let role = |r: &str| x.by_role.get(r).copied().unwrap_or(0) as f64;
            let rule = |r: &str| {
                100.0 * x.by_rule.get(r).copied().unwrap_or(0) as f64 / x.orders.max(1) as f64
            };
            let _ = writeln!(
                m,
                "| `{name}` | `{}` | `{}` | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.1}% | {:.0} / {:.0} / {:.0} / {:.0} % |",
                p.bindings,
                x.ownership,
                x.split,
                x.orders,
                yuan((x.revenue_cents - x.refunded_cents) as f64),
                yuan(role("owner")),
                yuan(role("fulfilling_store")),
                yuan(role("o2o_centre")),
                yuan(role("referrer_1") + role("referrer_2")),
                yuan(x.of_kind("channel") as f64),
                yuan(x.of_kind("store") as f64),
                yuan(x.of_kind("guide") as f64),
                x.guides_paid,
                x.guide_gini,
                100.0 * x.not_served as f64 / x.orders.max(1) as f64,
                rule("BOUND_GUIDE"),
                rule("SERVICE_GUIDE"),
                rule("LAST_TOUCH"),
                rule("PAID_CHANNEL"),
            );
        }
    }
}

/// "What changes for each store": the first policy's alternatives against the rules in service.
fn stores_section(m: &mut String, run: &Run, names: &[String]) {
    let Some(base) = in_service(run, 0) else {
        return;
    };
    let alts = alternatives_of_first(run);
    if alts.is_empty() {
        return;
    }
    let _ = writeln!(m, "\n## What changes for each store\n");
    let _ = writeln!(
        m,
        "Routed by `{}`: what each party is paid under the rules in service, and how much more \
         (+) or less (−) under each alternative, on the same members and arrivals. A store's \
         line is the store's own credit plus its guides'; the {} stores whose pay changes most \
         are shown (`stores.csv` has every store and run, `stores.svg` the chart).\n",
        names.first().map_or("", String::as_str),
        15.min(base.by_store.len())
    );
    let mut head = String::from("| party | in service |");
    let mut rule = String::from("|---|---:|");
    for (label, _) in &alts {
        let _ = write!(head, " {label} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(m, "{head}\n{rule}");
    let row = |m: &mut String, label: &str, f: &dyn Fn(&Money) -> i64| {
        let b = f(base);
        let mut line = format!("| {label} | {} |", yuan(b as f64));
        for (_, x) in &alts {
            let d = f(x) - b;
            let _ = write!(
                line,
                " {}{} |",
                if d > 0 { "+" } else { "" },
                yuan(d as f64)
            );
        }
        let _ = writeln!(m, "{line}");
    };
    row(m, "e-commerce & channels", &|x: &Money| {
        x.of_kind("channel")
    });
    row(m, "O2O centre", &|x: &Money| x.of_kind("o2o"));
    row(m, "all stores with their guides", &|x: &Money| {
        x.of_kind("store") + x.of_kind("guide")
    });
    let (rows, _) = store_changes(run, 15);
    for id in &rows {
        row(m, &format!("store `{id}`"), &|x: &Money| store_total(x, id));
    }
    let _ = writeln!(
        m,
        "\nAcross the stores: {}",
        alts.iter()
            .map(|(label, x)| {
                let (up, down) = base
                    .by_store
                    .keys()
                    .chain(x.by_store.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .map(|id| store_total(x, id) - store_total(base, id))
                    .fold((0, 0), |(u, d), c| {
                        (u + usize::from(c > 0), d + usize::from(c < 0))
                    });
                format!("{label}: {up} stores gain, {down} lose")
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    let guides = |x: &Money| -> std::collections::BTreeMap<String, i64> {
        x.by_party
            .iter()
            .filter(|(p, _)| p.starts_with("guide:"))
            .map(|(p, c)| (p.clone(), *c))
            .collect()
    };
    let before = guides(base);
    let _ = writeln!(
        m,
        "\nAcross the guides (`parties.csv` has each): {}",
        alts.iter()
            .map(|(label, x)| {
                let after = guides(x);
                let ids: std::collections::BTreeSet<&String> =
                    before.keys().chain(after.keys()).collect();
                let changes: Vec<i64> = ids
                    .into_iter()
                    .map(|g| {
                        after.get(g).copied().unwrap_or(0) - before.get(g).copied().unwrap_or(0)
                    })
                    .collect();
                let up = changes.iter().filter(|&&c| c > 0).count();
                let down = changes.iter().filter(|&&c| c < 0).count();
                let worst = changes.iter().copied().min().unwrap_or(0).min(0);
                format!(
                    "{label}: {up} guides gain, {down} lose (the largest loss {})",
                    yuan(worst as f64)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// The Markdown summary.
pub fn markdown(run: &Run) -> String {
    let s = &run.scenario;
    let sums = run.summaries();
    let names = labels(run);
    let leads: usize = run.days.iter().map(|d| d.leads).sum();
    let exact = run
        .days
        .iter()
        .filter(|d| matches!(d.yardstick, crate::run::Yardstick::Exact(_)))
        .count();
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", s.name);
    let _ = writeln!(
        m,
        "Seed {}, {} day(s) from {}, {} leads on a network of {} stores and {} guides \
         (`{}`). Each policy ran the production engine over the in-memory store on the same \
         arrivals. The yardstick is the hindsight optimum of each day on the same true values: \
         exact (min-cost flow) on {exact} day(s), the Lagrangian dual bound on the other {} \
         (an upper bound, so the ratio there is a lower bound on value / optimum).\n",
        s.seed,
        s.days,
        s.start,
        leads,
        run.stores,
        run.guides,
        s.network.source,
        run.days.len() - exact
    );
    let _ = writeln!(m, "## Policies\n");
    let _ = writeln!(
        m,
        "| policy | value / optimum | expected conversions | sampled conversions | expected revenue | sampled revenue | unrouted | mean km | mean utilisation | load Gini | offers: made / declined / expired / exhausted |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let best = sums
        .iter()
        .map(|x| x.ratio)
        .fold(f64::NEG_INFINITY, f64::max);
    for (x, name) in sums.iter().zip(&names) {
        let mark = if x.ratio == best { " **best**" } else { "" };
        let _ = writeln!(
            m,
            "| `{}`{} | {:.4} | {:.1} | {} | {} | {} | {:.2}% | {:.2} | {:.1}% | {:.3} | {} / {} / {} / {} |",
            name,
            mark,
            x.ratio,
            x.totals.expected_conversions,
            x.totals.sampled_conversions,
            yuan(x.totals.expected_revenue_cents),
            yuan(x.totals.sampled_revenue_cents as f64),
            100.0 * x.unrouted_share,
            x.mean_distance_km,
            100.0 * x.mean_utilisation,
            x.load_gini,
            x.totals.offers,
            x.totals.offers_declined,
            x.totals.offers_expired,
            x.totals.offers_exhausted
        );
    }
    let outside: u64 = sums.iter().map(|x| x.totals.outside_reach).sum();
    if outside > 0 {
        let _ = writeln!(
            m,
            "\n**Warning**: {outside} lead(s) were routed outside the guides the yardstick \
             allows; the ratios above are not bounded by 1."
        );
    }
    gap_and_fairness(&mut m, run, &sums, &names);
    members_section(&mut m, run, &sums, &names);
    money_section(&mut m, run, &names);
    stores_section(&mut m, run, &names);
    let _ = writeln!(m, "\n## Days\n");
    let mut head = String::from("| day | leads | edges | yardstick | optimum |");
    let mut rule = String::from("|---|---:|---:|---|---:|");
    for n in &names {
        let _ = write!(head, " {n} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(m, "{head}\n{rule}");
    for d in &run.days {
        let r = d.yardstick.reference();
        let mut row = format!(
            "| {} | {} | {} | {} | {:.2} |",
            d.day,
            d.leads,
            d.edges,
            d.yardstick.kind(),
            r
        );
        for p in &d.policies {
            let _ = write!(row, " {:.4} |", if r > 0.0 { p.value / r } else { 0.0 });
        }
        let _ = writeln!(m, "{row}");
    }
    let offers = if s.offers.channels.is_empty() {
        "No channel routed as offers.".to_string()
    } else {
        format!(
            "Channels {} routed as offers ({}); a guide accepted with probability {}, declined \
             with {} and let the offer expire otherwise, the same answers for every policy. A lead \
             whose offers were all declined or expired counts as unrouted.",
            s.offers.channels.join(", "),
            s.offers.describe(),
            s.truth.offer_accept,
            s.truth.offer_decline
        )
    };
    let _ = writeln!(
        m,
        "\n{offers}\n\nFiles: `days.csv`, `policies.csv`, `utilisation.csv`, `money.csv` (one \
         line per run and rule set), `payouts.csv` (by role), `parties.csv` (by party), \
         `stores.csv` (each store against the rules in service); charts `value_ratio.svg`, \
         `utilisation.svg`, `payouts.svg`, `stores.svg`."
    );
    m
}

/// Writes the report into `dir` (created if needed).
pub fn write(run: &Run, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let names = labels(run);
    let sums = run.summaries();
    let put = |name: &str, text: String| -> anyhow::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    put("report.md", markdown(run))?;

    let mut days = String::from(
        "day,policy,leads,edges,yardstick,reference,value,ratio,expected_conversions,sampled_conversions,expected_revenue_cents,sampled_revenue_cents,routed,unrouted,distance_km,outside_reach,offers,offers_declined,offers_expired,offers_exhausted\n",
    );
    for d in &run.days {
        let r = d.yardstick.reference();
        for (p, name) in d.policies.iter().zip(&names) {
            let _ = writeln!(
                days,
                "{},{},{},{},{},{:.4},{:.4},{:.6},{:.4},{},{},{},{},{},{:.3},{},{},{},{},{}",
                d.day,
                name,
                d.leads,
                d.edges,
                d.yardstick.kind(),
                r,
                p.value,
                if r > 0.0 { p.value / r } else { 0.0 },
                p.expected_conversions,
                p.sampled_conversions,
                p.expected_revenue_cents.round() as i64,
                p.sampled_revenue_cents,
                p.routed,
                p.unrouted,
                p.distance_km,
                p.outside_reach,
                p.offers,
                p.offers_declined,
                p.offers_expired,
                p.offers_exhausted
            );
        }
    }
    put("days.csv", days)?;

    let mut pol = String::from(
        "policy,version,ratio,expected_conversions,sampled_conversions,expected_revenue_cents,sampled_revenue_cents,unrouted_share,mean_distance_km,mean_utilisation,load_gini\n",
    );
    for (x, name) in sums.iter().zip(&names) {
        let _ = writeln!(
            pol,
            "{},\"{}\",{:.6},{:.4},{},{},{},{:.6},{:.4},{:.6},{:.6}",
            name,
            x.version.replace('"', "\"\""),
            x.ratio,
            x.totals.expected_conversions,
            x.totals.sampled_conversions,
            x.totals.expected_revenue_cents.round() as i64,
            x.totals.sampled_revenue_cents,
            x.unrouted_share,
            x.mean_distance_km,
            x.mean_utilisation,
            x.load_gini
        );
    }
    put("policies.csv", pol)?;

    let mut util = String::from("policy,from,to,guides\n");
    let mut util_series = Vec::new();
    for (p, name) in run.policies.iter().zip(&names) {
        let b = buckets(&p.utilisation);
        for (k, n) in b.iter().enumerate() {
            let (from, to) = if k == 10 {
                (1.0, 1.0)
            } else {
                (k as f64 / 10.0, (k + 1) as f64 / 10.0)
            };
            let _ = writeln!(util, "{name},{from:.1},{to:.1},{n}");
        }
        util_series.push((name.clone(), b.iter().map(|&n| n as f64).collect()));
    }
    put("utilisation.csv", util)?;

    let roles = [
        "owner",
        "fulfilling_store",
        "o2o_centre",
        "referrer_1",
        "referrer_2",
    ];
    let mut pay = String::from("policy,bindings,ownership,split,role,cents\n");
    let mut parties = String::from("policy,bindings,ownership,split,party,cents\n");
    let mut money = String::from(
        "policy,bindings,ownership,split,orders,revenue_cents,refunds,refunded_cents,owner_cents,fulfilling_store_cents,o2o_centre_cents,referrer_cents,channel_cents,store_cents,guide_cents,guides_paid,guide_payout_gini,owner_not_serving_guide,bound_guide,service_guide,last_touch,paid_channel\n",
    );
    let mut pay_cats = Vec::new();
    let mut pay_series: Vec<(String, Vec<f64>)> =
        roles.iter().map(|r| (r.to_string(), Vec::new())).collect();
    for (p, name) in run.policies.iter().zip(&names) {
        for x in &p.money {
            let key = csv_key(name, p, x);
            pay_cats.push(alternative_label(run, p, x, true, name));
            for (k, r) in roles.iter().enumerate() {
                let c = x.by_role.get(r).copied().unwrap_or(0);
                let _ = writeln!(pay, "{key},{r},{c}");
                pay_series[k].1.push(c as f64 / 100.0);
            }
            for (party, c) in &x.by_party {
                let _ = writeln!(parties, "{key},{},{c}", csv_field(party));
            }
            let role = |r: &str| x.by_role.get(r).copied().unwrap_or(0);
            let rule = |r: &str| x.by_rule.get(r).copied().unwrap_or(0);
            let _ = writeln!(
                money,
                "{key},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{},{}",
                x.orders,
                x.revenue_cents,
                x.refunds,
                x.refunded_cents,
                role("owner"),
                role("fulfilling_store"),
                role("o2o_centre"),
                role("referrer_1") + role("referrer_2"),
                x.of_kind("channel"),
                x.of_kind("store"),
                x.of_kind("guide"),
                x.guides_paid,
                x.guide_gini,
                x.not_served,
                rule("BOUND_GUIDE"),
                rule("SERVICE_GUIDE"),
                rule("LAST_TOUCH"),
                rule("PAID_CHANNEL"),
            );
        }
    }
    put("payouts.csv", pay)?;
    put("parties.csv", parties)?;
    put("money.csv", money)?;
    let mut stores = String::from(
        "policy,bindings,ownership,split,store,store_cents,guide_cents,total_cents,in_service_cents,change_cents\n",
    );
    for (p, name) in run.policies.iter().zip(&names) {
        let Some(base) = in_service(run, p.policy) else {
            continue;
        };
        for x in &p.money {
            let key = csv_key(name, p, x);
            let ids: std::collections::BTreeSet<&String> =
                x.by_store.keys().chain(base.by_store.keys()).collect();
            for id in ids {
                let (own, guides) = x.by_store.get(id).copied().unwrap_or((0, 0));
                let before = store_total(base, id);
                let _ = writeln!(
                    stores,
                    "{key},{},{own},{guides},{},{before},{}",
                    csv_field(id),
                    own + guides,
                    own + guides - before
                );
            }
        }
    }
    put("stores.csv", stores)?;
    let (rows, series) = store_changes(run, 15);
    put(
        "stores.svg",
        svg::changes(
            "What each store (with its guides) is paid against the rules in service",
            "yuan",
            &rows,
            &series,
        ),
    )?;

    put(
        "value_ratio.svg",
        svg::bars(
            &format!("{}: value / hindsight optimum", run.scenario.name),
            "value / optimum",
            &names,
            &[("all days".into(), sums.iter().map(|x| x.ratio).collect())],
            Some(1.0),
        ),
    )?;
    let bucket_names: Vec<String> = (0..BUCKETS)
        .map(|k| {
            if k == 10 {
                "100%".into()
            } else {
                format!("{}–{}%", k * 10, k * 10 + 10)
            }
        })
        .collect();
    put(
        "utilisation.svg",
        svg::bars(
            "Guides by share of capacity used",
            "guides",
            &bucket_names,
            &util_series,
            None,
        ),
    )?;
    put(
        "payouts.svg",
        svg::bars(
            "Payouts by role, net of refunds",
            "yuan",
            &pay_cats,
            &pay_series,
            None,
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_buckets() {
        assert_eq!(yuan(123456789.0), "¥1,234,567.89");
        assert_eq!(yuan(5.0), "¥0.05");
        assert_eq!(yuan(-100000.0), "-¥1,000.00");
        assert_eq!(
            buckets(&[0.0, 0.05, 0.1, 0.95, 1.0, 0.999_999_999_999_9]),
            {
                let mut b = [0u64; BUCKETS];
                b[0] = 2;
                b[1] = 1;
                b[9] = 1;
                b[10] = 2;
                b
            }
        );
    }
}
