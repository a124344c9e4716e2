//! Replay: what happened, routed again by other policies.
//!
//! The arrivals are the leads of exported routing decisions (`leadrouter trail export
//! --decisions`), in the order they were decided; each policy routes them through its own
//! production engine (in-memory store, the clock set to each original decision time), on the
//! network given. The comparison with what happened:
//!
//! - routed and unrouted leads, and the share sent to the same guide and the same store;
//! - mean distance to the store, and load fairness (Gini of each guide's leads per unit of
//!   capacity over the replayed days);
//! - the estimated value of the assignments: the `scored` match without its load term
//!   (preference, distance, tier), for every side alike; only leads whose guide is among the
//!   lead's reachable guides are valued (`valued` says how many);
//! - with an exported trail: for each order, the member's latest lead before it (at most 30
//!   days) — how often its guide is the guide who owns the order;
//! - the hindsight optimum of the replayed days: per business day, the best assignment of its
//!   leads to their reachable guides within each guide's daily capacity by the same estimated
//!   value (exact min-cost flow; the dual bound above a million edges), and each side's
//!   estimated value against it;
//! - with an exported trail, what it paid: as recorded, and restated under every alternative
//!   ownership rule set × split policy ([`restate_trail`]), per role and per party, with the
//!   share of orders whose owner is not the guide who served the member's latest lead.
//!
//! Same engine, same seed, same policy: the replay reproduces the decisions exactly.

use crate::instance::Instance;
use crate::run::parallel;
use leadrouter::attribution::restate::{Alternative, Restater};
use leadrouter::catalog::Network;
use leadrouter::clock::ManualClock;
use leadrouter::domain::Lead;
use leadrouter::domain::export::DecisionLine;
use leadrouter::domain::trail::{EventBody, TrailEvent};
use leadrouter::engine::{CandidateConfig, Engine, EngineConfig};
use leadrouter::policy::{DualPrice, DualPriceConfig, PolicyConfig};
use leadrouter::storage::MemoryStore;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

/// One side of the comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    pub name: String,
    pub routed: u64,
    pub unrouted: u64,
    pub same_guide: u64,
    pub same_store: u64,
    pub distance_km: f64,
    pub with_distance: u64,
    pub estimated_value: f64,
    pub valued: u64,
    pub load_gini: f64,
    /// Orders whose member's latest lead went to the order's owner guide.
    pub orders_to_owner: u64,
}

/// A replay's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub leads: usize,
    pub orders: usize,
    pub happened: Side,
    pub policies: Vec<Side>,
    /// What happened, by experiment arm (`experiment/arm`, or `[policy]` for leads no
    /// experiment took); empty when no decision names an arm.
    pub arms: Vec<Side>,
    /// Σ over the replayed days of the hindsight optimum of the estimated value, with how many
    /// days were solved exactly and how many bounded.
    pub optimum: f64,
    pub exact_days: usize,
    pub bound_days: usize,
    /// With a trail: what it paid as recorded, then under each alternative
    /// ([`restate_trail`]); empty without.
    pub money: Vec<crate::money::Money>,
}

/// An order from the trail: who bought, when, and which guide owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSeen {
    pub member_id: String,
    pub at_ms: i64,
    pub owner_guide: Option<String>,
}

/// Calls `f` with each non-empty line of a JSON Lines file; errors name the file and line.
fn each_line(path: &Path, mut f: impl FnMut(&str) -> Result<(), String>) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1);
        let line = line.map_err(|e| at(&e))?;
        if !line.trim().is_empty() {
            f(&line).map_err(|e| at(&e))?;
        }
    }
    Ok(())
}

/// Reads exported decisions, in the order they were decided; errors name the line.
pub fn read_decisions(path: &Path) -> anyhow::Result<Vec<DecisionLine>> {
    let mut out = Vec::new();
    each_line(path, |line| {
        let d: DecisionLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
        d.lead()?;
        out.push(d);
        Ok(())
    })?;
    out.sort_by(|a, b| (a.decided_at_ms, &a.lead_id).cmp(&(b.decided_at_ms, &b.lead_id)));
    Ok(out)
}

/// Reads the orders of an exported trail; errors name the line.
pub fn read_orders(path: &Path) -> anyhow::Result<Vec<OrderSeen>> {
    let mut out = Vec::new();
    each_line(path, |line| {
        let Some(e) = TrailEvent::from_export_line(line)? else {
            return Ok(());
        };
        if let EventBody::Order(o) = &e.body {
            out.push(OrderSeen {
                member_id: e.member_id.clone(),
                at_ms: e.occurred_at_ms,
                owner_guide: o.ownership.guide_id.clone(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub policies: Vec<PolicyConfig>,
    pub routing: CandidateConfig,
    pub seed: u64,
    pub time_zone: chrono_tz::Tz,
    pub threads: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            policies: Vec::new(),
            routing: e.candidates,
            seed: e.seed,
            time_zone: e.time_zone,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

const LOOKBACK_MS: i64 = 30 * 86_400_000;

/// `(store, guide)` per lead, `None` where it was not routed.
type Assigned = Vec<Option<(String, String)>>;

/// Replays `lines` on networks built by `network` (one per engine) under every policy.
pub fn replay(
    network: &(dyn Fn() -> anyhow::Result<Network> + Sync),
    lines: &[DecisionLine],
    orders: &[OrderSeen],
    cfg: &ReplayConfig,
) -> anyhow::Result<Replay> {
    let leads: Vec<Lead> = lines
        .iter()
        .map(|l| {
            l.lead()
                .map_err(|e| anyhow::anyhow!("lead {}: {e}", l.lead_id))
        })
        .collect::<anyhow::Result<_>>()?;
    let net = network()?;
    let probe_clock = Arc::new(ManualClock::new(0));
    let probe = Engine::new(
        network()?,
        Arc::new(MemoryStore::new()),
        probe_clock.clone(),
        EngineConfig {
            candidates: cfg.routing.clone(),
            ..Default::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("routing: {e}"))?;
    let estimator = DualPrice::new(DualPriceConfig::default()).map_err(anyhow::Error::msg)?;
    let value = |lead: &Lead, at: i64, guide: &str| -> Option<f64> {
        let g = net.guide_index(guide)?;
        probe_clock.set(at);
        let cands = probe.reachable(lead).ok()?;
        cands
            .iter()
            .find(|c| c.guide == g)
            .map(|c| estimator.estimate(&net, c))
    };
    let days: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.day.as_str()).collect();
    let n_days = days.len().max(1) as f64;
    // The hindsight optimum of each replayed day by the same estimates.
    let caps: Vec<u32> = net
        .guides()
        .iter()
        .enumerate()
        .map(|(j, g)| {
            if net.guide_key(j as u32).active {
                g.daily_capacity
            } else {
                0
            }
        })
        .collect();
    let (mut optimum, mut exact_days, mut bound_days) = (0.0, 0, 0);
    for day in &days {
        let mut inst = Instance::new(caps.clone());
        for (lead, line) in leads.iter().zip(lines).filter(|(_, l)| l.day == *day) {
            probe_clock.set(line.decided_at_ms);
            // A lead the network can no longer route (e.g. a store closed since) has no edge.
            let cands = probe.reachable(lead).unwrap_or_default();
            inst.push_lead(
                cands
                    .iter()
                    .map(|c| (c.guide, estimator.estimate(&net, c).max(0.0) as f32))
                    .collect::<Vec<_>>(),
            )?;
        }
        if inst.edge_count() <= EXACT_MAX_EDGES {
            optimum += crate::flow::solve(&inst).value;
            exact_days += 1;
        } else {
            optimum += crate::dual::bound(
                &inst,
                None,
                crate::dual::DualOptions {
                    threads: cfg.threads,
                    ..Default::default()
                },
            )
            .upper;
            bound_days += 1;
        }
    }

    // What happened, and each policy's guides, lead by lead.
    let happened_guides: Vec<Option<(String, String)>> = lines
        .iter()
        .map(|l| l.store_id.clone().zip(l.guide_id.clone()))
        .collect();
    let mut lanes: Vec<(usize, Option<anyhow::Result<Assigned>>)> =
        (0..cfg.policies.len()).map(|k| (k, None)).collect();
    parallel(&mut lanes, cfg.threads, |(k, out)| {
        *out = Some((|| {
            let (engine, clock) = engine_for(
                network,
                cfg,
                &cfg.policies[*k],
                EngineConfig::default().alternatives,
            )
            .map_err(|e| anyhow::anyhow!("policies[{k}]: {e}"))?;
            let mut got = Vec::with_capacity(leads.len());
            for (lead, line) in leads.iter().zip(lines) {
                clock.set(line.decided_at_ms);
                let d = engine
                    .route(lead)
                    .map_err(|e| anyhow::anyhow!("lead {}: {e}", lead.lead_id))?;
                got.push(
                    d.assigned
                        .as_ref()
                        .map(|(s, g)| (s.to_string(), g.to_string())),
                );
            }
            Ok(got)
        })());
    });
    let mut sides = vec![side(
        "as happened",
        &happened_guides,
        &happened_guides,
        lines,
        &leads,
        &net,
        orders,
        n_days,
        &value,
    )];
    for (k, (_, r)) in lanes.into_iter().enumerate() {
        let got = r.unwrap_or_else(|| Err(anyhow::anyhow!("policy {k} did not run")))?;
        let name = policy_name(&cfg.policies[k]);
        sides.push(side(
            &name,
            &got,
            &happened_guides,
            lines,
            &leads,
            &net,
            orders,
            n_days,
            &value,
        ));
    }
    let happened = sides.remove(0);
    let mut arms = Vec::new();
    if lines.iter().any(|l| l.arm.is_some()) {
        let label = |l: &DecisionLine| match (&l.experiment, &l.arm) {
            (Some(e), Some(a)) => format!("{e}/{a}"),
            _ => "[policy]".to_string(),
        };
        let groups: std::collections::BTreeSet<String> = lines.iter().map(label).collect();
        for g in groups {
            let idx: Vec<usize> = (0..lines.len())
                .filter(|&i| label(&lines[i]) == g)
                .collect();
            let sub_h: Vec<_> = idx.iter().map(|&i| happened_guides[i].clone()).collect();
            let sub_l: Vec<_> = idx.iter().map(|&i| lines[i].clone()).collect();
            let sub_d: Vec<_> = idx.iter().map(|&i| leads[i].clone()).collect();
            arms.push(side(
                &format!("arm {g}"),
                &sub_h,
                &sub_h,
                &sub_l,
                &sub_d,
                &net,
                orders,
                n_days,
                &value,
            ));
        }
    }
    Ok(Replay {
        leads: lines.len(),
        orders: orders.len(),
        happened,
        policies: sides,
        arms,
        optimum,
        exact_days,
        bound_days,
        money: Vec::new(),
    })
}

/// Days with at most this many edges get the exact optimum; larger ones the dual bound.
const EXACT_MAX_EDGES: usize = 1_000_000;

/// What an exported trail paid: as recorded (first, named `as recorded`), then restated under
/// each alternative, in order. An order's server is the guide of the member's latest decision
/// in `lines` before it (at most 30 days). Errors name the file and line.
pub fn restate_trail(
    path: &Path,
    lines: &[DecisionLine],
    net: &Network,
    alternatives: Vec<Alternative>,
    history_limit: usize,
) -> anyhow::Result<Vec<crate::money::Money>> {
    use crate::money::Money;
    let mut by_member: HashMap<&str, Vec<(i64, &str)>> = HashMap::new();
    for l in lines {
        if let (Some(m), Some(g)) = (&l.member_id, &l.guide_id) {
            by_member.entry(m).or_default().push((l.decided_at_ms, g));
        }
    }
    for v in by_member.values_mut() {
        v.sort();
    }
    let served = |member: &str, at: i64| -> Option<String> {
        let v = by_member.get(member)?;
        let k = v.partition_point(|(t, _)| *t <= at);
        let (t, g) = v.get(k.checked_sub(1)?)?;
        (at - t <= LOOKBACK_MS).then(|| format!("guide:{g}"))
    };
    let mut money = vec![Money::named("as recorded", "as recorded")];
    money.extend(
        alternatives
            .iter()
            .map(|a| Money::named(&a.ownership.version, &a.split.version)),
    );
    let mut restater = Restater::new(alternatives, history_limit);
    each_line(path, |line| {
        let Some(e) = TrailEvent::from_export_line(line)? else {
            return Ok(());
        };
        let server = e
            .order()
            .and_then(|_| served(&e.member_id, e.occurred_at_ms));
        money[0].add(&e, server.as_deref());
        for (m, x) in money[1..].iter_mut().zip(restater.push(e)?) {
            m.add(&x, server.as_deref());
        }
        Ok(())
    })?;
    for m in &mut money {
        m.finish(net);
    }
    Ok(money)
}

/// A fresh engine over the in-memory store, on a clock the caller sets to each decision's
/// time, routing with `policy` under the replay's routing, seed and time zone; `alternatives`
/// as in `[routing]`.
pub fn engine_for(
    network: &(dyn Fn() -> anyhow::Result<Network> + Sync),
    cfg: &ReplayConfig,
    policy: &PolicyConfig,
    alternatives: usize,
) -> anyhow::Result<(Engine, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(0));
    let engine = Engine::new(
        network()?,
        Arc::new(MemoryStore::new()),
        clock.clone(),
        EngineConfig {
            time_zone: cfg.time_zone,
            candidates: cfg.routing.clone(),
            policy: policy.clone(),
            seed: cfg.seed,
            alternatives,
            ..Default::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((engine, clock))
}

fn policy_name(p: &PolicyConfig) -> String {
    match p {
        PolicyConfig::Scored(_) => "scored",
        PolicyConfig::Nearest => "nearest",
        PolicyConfig::RoundRobin => "round_robin",
        PolicyConfig::DualPrice(_) => "dual_price",
        PolicyConfig::Balance => "balance",
        PolicyConfig::Ranking { .. } => "ranking",
        PolicyConfig::Softmax(_) => "softmax",
    }
    .to_string()
}

#[allow(clippy::too_many_arguments)]
fn side(
    name: &str,
    got: &[Option<(String, String)>],
    happened: &[Option<(String, String)>],
    lines: &[DecisionLine],
    leads: &[Lead],
    net: &Network,
    orders: &[OrderSeen],
    n_days: f64,
    value: &dyn Fn(&Lead, i64, &str) -> Option<f64>,
) -> Side {
    let mut s = Side {
        name: name.to_string(),
        ..Default::default()
    };
    let mut per_guide: HashMap<&str, u64> = HashMap::new();
    for (i, g) in got.iter().enumerate() {
        let Some((store, guide)) = g else {
            s.unrouted += 1;
            continue;
        };
        s.routed += 1;
        *per_guide.entry(guide.as_str()).or_default() += 1;
        if let Some((hs, hg)) = &happened[i] {
            s.same_guide += u64::from(hg == guide);
            s.same_store += u64::from(hs == store);
        }
        if let (Some(at), Some(st)) = (&leads[i].location, net.store_index(store)) {
            s.distance_km += at.distance_km(&net.store(st).location);
            s.with_distance += 1;
        }
        if let Some(v) = value(&leads[i], lines[i].decided_at_ms, guide) {
            s.estimated_value += v;
            s.valued += 1;
        }
    }
    let shares: Vec<f64> = net
        .guides()
        .iter()
        .enumerate()
        .filter(|(j, _)| net.guide_key(*j as u32).active)
        .map(|(_, g)| {
            per_guide.get(&*g.id).copied().unwrap_or(0) as f64
                / (f64::from(g.daily_capacity.max(1)) * n_days)
        })
        .collect();
    s.load_gini = crate::run::gini(&shares);
    // Each member's leads in time order, for the orders.
    let mut by_member: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(m) = &l.member_id {
            by_member.entry(m.as_str()).or_default().push(i);
        }
    }
    for o in orders {
        let Some(owner) = &o.owner_guide else {
            continue;
        };
        let Some(idx) = by_member.get(o.member_id.as_str()) else {
            continue;
        };
        let last = idx.iter().rev().find(|&&i| {
            lines[i].decided_at_ms <= o.at_ms && o.at_ms - lines[i].decided_at_ms <= LOOKBACK_MS
        });
        if let Some(&i) = last
            && got[i].as_ref().is_some_and(|(_, g)| g == owner)
        {
            s.orders_to_owner += 1;
        }
    }
    s
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// The replay report as Markdown.
pub fn markdown(r: &Replay) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# Replay\n");
    let _ = writeln!(
        m,
        "{} leads replayed in the order they were decided; {} orders in the trail. \
         Estimated value: the `scored` match without its load term, for every side alike.\n",
        r.leads, r.orders
    );
    let _ = writeln!(
        m,
        "The hindsight optimum of the replayed days by the same estimates (each day's leads on \
         their reachable guides within each guide's daily capacity; {} day(s) exact, {} by the \
         dual bound): {:.1}.\n",
        r.exact_days, r.bound_days, r.optimum
    );
    let _ = writeln!(
        m,
        "| side | routed | unrouted | same guide | same store | mean km | estimated value | value / optimum | valued | load Gini | orders to their owner's lead |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in std::iter::once(&r.happened).chain(&r.policies) {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {:.1}% | {:.1}% | {:.2} | {:.1} | {:.4} | {} | {:.3} | {} |",
            s.name,
            s.routed,
            s.unrouted,
            pct(s.same_guide, r.leads as u64),
            pct(s.same_store, r.leads as u64),
            if s.with_distance > 0 {
                s.distance_km / s.with_distance as f64
            } else {
                0.0
            },
            s.estimated_value,
            if r.optimum > 0.0 {
                s.estimated_value / r.optimum
            } else {
                0.0
            },
            s.valued,
            s.load_gini,
            s.orders_to_owner
        );
    }
    money_markdown(&mut m, r);
    if !r.arms.is_empty() {
        let _ = writeln!(m, "\n## By experiment arm (as happened)\n");
        let _ = writeln!(
            m,
            "| arm | routed | unrouted | mean km | estimated value per routed lead | load Gini | orders to their owner's lead |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|");
        for s in &r.arms {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.2} | {:.4} | {:.3} | {} |",
                s.name,
                s.routed,
                s.unrouted,
                if s.with_distance > 0 {
                    s.distance_km / s.with_distance as f64
                } else {
                    0.0
                },
                s.estimated_value / s.valued.max(1) as f64,
                s.load_gini,
                s.orders_to_owner
            );
        }
    }
    m
}

/// "What the trail paid": as recorded and under each alternative, and the parties whose pay
/// changes most.
fn money_markdown(m: &mut String, r: &Replay) {
    use crate::money::Money;
    let Some(base) = r.money.first() else {
        return;
    };
    let yuan = |c: i64| leadrouter::domain::money::yuan(c);
    let _ = writeln!(m, "\n## What the trail paid, and under other rules\n");
    let _ = writeln!(
        m,
        "As recorded, then every order's owner and split, every refund's reversal and every \
         reassignment restated under each alternative ownership rule set × split policy by the \
         production code. Net of refunds; **owner ≠ server**: orders whose owner is not the \
         guide of the member's latest lead before them.\n"
    );
    let _ = writeln!(
        m,
        "| rules | orders | net revenue | owner | fulfilling store | O2O centre | e-commerce & channels | stores | guides | guides paid | guide payout Gini | owner ≠ server |"
    );
    let _ = writeln!(
        m,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let label = |x: &Money| {
        if x.ownership == "as recorded" {
            "as recorded".to_string()
        } else {
            format!("`{}` × `{}`", x.ownership, x.split)
        }
    };
    for x in &r.money {
        let role = |k: &str| x.by_role.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.1}% |",
            label(x),
            x.orders,
            yuan(x.revenue_cents - x.refunded_cents),
            yuan(role("owner")),
            yuan(role("fulfilling_store")),
            yuan(role("o2o_centre")),
            yuan(x.of_kind("channel")),
            yuan(x.of_kind("store")),
            yuan(x.of_kind("guide")),
            x.guides_paid,
            x.guide_gini,
            pct(x.not_served, x.orders)
        );
    }
    // The parties whose pay changes most against what was recorded.
    let mut changes: Vec<(String, i64)> = Vec::new();
    let parties: std::collections::BTreeSet<&String> =
        r.money.iter().flat_map(|x| x.by_party.keys()).collect();
    for p in parties {
        let before = base.by_party.get(p).copied().unwrap_or(0);
        let worst = r.money[1..]
            .iter()
            .map(|x| x.by_party.get(p).copied().unwrap_or(0) - before)
            .max_by_key(|d| d.abs())
            .unwrap_or(0);
        if worst != 0 {
            changes.push((p.clone(), worst));
        }
    }
    changes.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
    if changes.is_empty() || r.money.len() < 2 {
        return;
    }
    let _ = writeln!(
        m,
        "\nThe parties whose pay changes most (of {}; `replay_parties.csv` has every party):\n",
        changes.len()
    );
    let mut head = String::from("| party | as recorded |");
    let mut rule = String::from("|---|---:|");
    for x in &r.money[1..] {
        let _ = write!(head, " {} |", label(x));
        rule.push_str("---:|");
    }
    let _ = writeln!(m, "{head}\n{rule}");
    for (p, _) in changes.iter().take(12) {
        let before = base.by_party.get(p).copied().unwrap_or(0);
        let mut line = format!("| `{p}` | {} |", yuan(before));
        for x in &r.money[1..] {
            let d = x.by_party.get(p).copied().unwrap_or(0) - before;
            let _ = write!(line, " {}{} |", if d > 0 { "+" } else { "" }, yuan(d));
        }
        let _ = writeln!(m, "{line}");
    }
}

/// Every party's pay as recorded and under each alternative (`rules,party,cents`).
pub fn parties_csv(r: &Replay) -> String {
    let mut c = String::from("ownership,split,party,cents\n");
    for x in &r.money {
        for (p, cents) in &x.by_party {
            let _ = writeln!(c, "{},{},{p},{cents}", x.ownership, x.split);
        }
    }
    c
}

/// The replay report as CSV.
pub fn csv(r: &Replay) -> String {
    let mut c = String::from(
        "side,routed,unrouted,same_guide,same_store,distance_km,with_distance,estimated_value,valued,load_gini,orders_to_owner\n",
    );
    for s in std::iter::once(&r.happened)
        .chain(&r.policies)
        .chain(&r.arms)
    {
        let _ = writeln!(
            c,
            "{},{},{},{},{},{:.3},{},{:.4},{},{:.6},{}",
            s.name,
            s.routed,
            s.unrouted,
            s.same_guide,
            s.same_store,
            s.distance_km,
            s.with_distance,
            s.estimated_value,
            s.valued,
            s.load_gini,
            s.orders_to_owner
        );
    }
    c
}
