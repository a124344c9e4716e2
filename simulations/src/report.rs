//! The report of a run: `report.md` (the summary an analyst reads first), CSV tables for their
//! own tools, and SVG charts. Money is in integer cents in the CSV files and in yuan (two
//! decimals) in the Markdown. The same run gives byte-identical files.

use crate::run::{PolicyDay, Run, gini};
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
                    floor: self.scenario.policies.get(k).map_or(0.0, |c| c.floor()),
                    totals: t,
                }
            })
            .collect()
    }
}

fn yuan(cents: f64) -> String {
    leadrouter::domain::money::yuan(cents.round() as i64)
}

fn labels(run: &Run) -> Vec<String> {
    // Two policies of the same name (different parameters) get their index.
    run.policies
        .iter()
        .enumerate()
        .map(|(k, p)| {
            if run.policies.iter().filter(|q| q.name == p.name).count() > 1 {
                format!("{}#{}", p.name, k + 1)
            } else {
                p.name.clone()
            }
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
    let _ = writeln!(m, "\n## Payouts (sampled orders)\n");
    let _ = writeln!(
        m,
        "The routed guide owns each sampled order (ownership rule SERVICE_GUIDE) and the \
         guide's store fulfils it.\n"
    );
    let _ = writeln!(
        m,
        "| policy | split | owner | fulfilling store | O2O centre | referrers | guides paid | guide payout Gini |"
    );
    let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (p, name) in run.policies.iter().zip(&names) {
        for pay in &p.payouts {
            let role = |r: &str| pay.by_role.get(r).copied().unwrap_or(0) as f64;
            let guides: Vec<f64> = pay
                .by_party
                .iter()
                .filter(|(k, _)| k.starts_with("guide:"))
                .map(|(_, v)| *v as f64)
                .collect();
            let _ = writeln!(
                m,
                "| `{name}` | `{}` | {} | {} | {} | {} | {} | {:.3} |",
                pay.split,
                yuan(role("owner")),
                yuan(role("fulfilling_store")),
                yuan(role("o2o_centre")),
                yuan(role("referrer_1") + role("referrer_2")),
                guides.len(),
                gini(&guides)
            );
        }
    }
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
        "\nLeads are anonymous (no member bindings). {offers}\n\nFiles: `days.csv`, \
         `policies.csv`, `utilisation.csv`, `payouts.csv` (by role), `parties.csv` (by \
         party); charts `value_ratio.svg`, `utilisation.svg`, `payouts.svg`."
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

    let mut pay = String::from("policy,split,role,cents\n");
    let roles = [
        "owner",
        "fulfilling_store",
        "o2o_centre",
        "referrer_1",
        "referrer_2",
    ];
    let mut pay_cats = Vec::new();
    let mut pay_series: Vec<(String, Vec<f64>)> =
        roles.iter().map(|r| (r.to_string(), Vec::new())).collect();
    for (p, name) in run.policies.iter().zip(&names) {
        for x in &p.payouts {
            pay_cats.push(format!("{name} / {}", x.split));
            for (k, r) in roles.iter().enumerate() {
                let c = x.by_role.get(r).copied().unwrap_or(0);
                let _ = writeln!(pay, "{name},{},{r},{c}", x.split);
                pay_series[k].1.push(c as f64 / 100.0);
            }
        }
    }
    put("payouts.csv", pay)?;
    let mut parties = String::from("policy,split,party,cents\n");
    for (p, name) in run.policies.iter().zip(&names) {
        for x in &p.payouts {
            for (party, c) in &x.by_party {
                let _ = writeln!(parties, "{name},{},{party},{c}", x.split);
            }
        }
    }
    put("parties.csv", parties)?;

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
            "Payouts by role (sampled orders)",
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
