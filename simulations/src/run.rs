//! Runs a scenario: every policy routes the same arrivals through its own production engine
//! (in-memory store, a manual clock set to each arrival's time), and every day is measured
//! against the hindsight optimum of the same leads and the same true values.
//!
//! Per day:
//! 1. the day's arrivals are drawn (the same for every policy);
//! 2. each lead's edges are the guides [`Engine::reachable`] lists, valued by the hidden truth
//!    (expected basket × conversion probability) — so no policy can place a lead outside them;
//! 3. the yardstick: the exact optimum when the day has at most `exact_max_edges` edges, else
//!    the Lagrangian dual bound;
//! 4. the policies run, in parallel with each other, each on its own engine;
//! 5. the night (`[learning]`): each policy's engine learns from the history it has produced so
//!    far through the production loop's own code (`leadrouter::app::learn`): guide skill from
//!    every sampled outcome so far, then (for `dual_price`) the prices of the day just routed on
//!    the policy's own estimates, warm-started from the night before; both go into service for
//!    the next day, so every day is routed with models learned only from earlier days.

use crate::dual::{self, DualOptions};
use crate::flow;
use crate::instance::Instance;
use crate::scenario::{Checked, Scenario};
use crate::world::{Answer, Arrival, World};
use leadrouter::clock::ManualClock;
use leadrouter::domain::Day;
use leadrouter::domain::export::DecisionLine;
use leadrouter::domain::offer::OfferStatus;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::policy::Candidate;
use leadrouter::storage::MemoryStore;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Report progress on stderr (a bar on a terminal, a line per day otherwise).
    pub progress: bool,
    pub threads: usize,
    /// Keep every sampled order, every routed decision and the trails (for `leadrouter-sim
    /// history`).
    pub record_orders: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            progress: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            record_orders: false,
        }
    }
}

/// A sampled order, as a history for model training.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOrder {
    pub order_id: String,
    /// 12-digit code of the fulfilling store's region.
    pub region_code: String,
    pub category: String,
    pub amount_cents: i64,
    pub at_ms: i64,
}

/// The yardstick of a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Yardstick {
    Exact(f64),
    /// The dual bound (`upper`) with the best feasible value found on the way (`lower`).
    Dual {
        upper: f64,
        lower: f64,
    },
}

impl Yardstick {
    /// The value policies are divided by: the optimum, or the upper bound.
    pub fn reference(&self) -> f64 {
        match *self {
            Yardstick::Exact(v) => v,
            Yardstick::Dual { upper, .. } => upper,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Yardstick::Exact(_) => "exact",
            Yardstick::Dual { .. } => "dual_bound",
        }
    }
}

/// One policy on one day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyDay {
    /// Σ true expected value (yuan) of the assignments made.
    pub value: f64,
    pub expected_conversions: f64,
    pub sampled_conversions: u64,
    pub expected_revenue_cents: f64,
    pub sampled_revenue_cents: i64,
    pub routed: u64,
    pub unrouted: u64,
    /// Σ km from lead to store over routed leads.
    pub distance_km: f64,
    /// Routed leads whose guide was not among their reachable guides (should stay 0).
    pub outside_reach: u64,
    /// Offers made (first offers and re-offers), and how they ended.
    pub offers: u64,
    pub offers_declined: u64,
    pub offers_expired: u64,
    /// Leads whose every offer was declined or expired.
    pub offers_exhausted: u64,
    /// Active guides with capacity who got no lead that day (summed over days in totals).
    pub idle_guides: u64,
    /// The Gini of active guides' used share of capacity that day (summed over days in totals).
    pub load_gini: f64,
    /// The true value of the best allocation by the policy's own estimates (the exact optimum
    /// of the day on its estimates, valued by the truth): what the policy could reach with
    /// perfect allocation and its estimates. `None`: the policy does not estimate value, or the
    /// day is above `exact_max_edges`.
    pub own_optimum: Option<f64>,
    /// Member leads; of the routed ones, those sent to their bound guide or the bound guide's
    /// store by the binding, those served by the guide whose share link they came through, and
    /// what the routes did to bindings (new bindings, snatches).
    pub member_leads: u64,
    pub bound_routed: u64,
    pub referrer_served: u64,
    pub binds: u64,
    pub snatches: u64,
}

/// A day of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct DayReport {
    pub day: Day,
    pub leads: usize,
    pub edges: usize,
    pub yardstick: Yardstick,
    /// The true value of the exact optimum on every edge's true conversion probability without
    /// the basket (which no router sees before the order); `None` above `exact_max_edges`.
    pub blind_optimum: Option<f64>,
    /// In the order of the scenario's policies.
    pub policies: Vec<PolicyDay>,
}

/// One policy under one binding rule set, over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyReport {
    pub name: String,
    pub version: String,
    /// Its place in the scenario's `[[policies]]`, and the `[[bindings]]` rule set it ran under.
    pub policy: usize,
    pub bindings: String,
    /// Per active guide: leads taken over the run / capacity offered over the run.
    pub utilisation: Vec<f64>,
    /// What each `[[ownership]]` × `[[splits]]` alternative pays, in that order (ownership
    /// major); the first is the rules in service.
    pub money: Vec<crate::money::Money>,
    /// The run's trails, verified and recomputed.
    pub trails: crate::money::Trails,
    /// The trails as `leadrouter trail export` writes them (with `record_orders`).
    pub trail: Vec<u8>,
    /// Sampled orders, when [`Options::record_orders`] asked for them.
    pub orders: Vec<SimOrder>,
    /// Every routed decision with whether the lead converted (with `record_orders`).
    pub decisions: Vec<(leadrouter::domain::export::DecisionLine, bool)>,
}

/// Where a run's time went (not part of the report: it differs from run to run).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Drawing arrivals, listing each lead's reachable guides and valuing them.
    pub edges: std::time::Duration,
    /// The exact optimum or the dual bound of each day.
    pub yardstick: std::time::Duration,
    /// The policies routing (in parallel with each other).
    pub routing: std::time::Duration,
    /// Dual-price policies learning their prices each night.
    pub learning: std::time::Duration,
    /// The end of the run: the last orders and refunds, and the trails verified, recomputed
    /// and restated under every alternative.
    pub money: std::time::Duration,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Run {
    pub timings: Timings,
    pub scenario: Scenario,
    pub days: Vec<DayReport>,
    pub policies: Vec<PolicyReport>,
    pub guides: usize,
    /// Active guides with capacity.
    pub active_guides: usize,
    pub stores: usize,
}

struct Lane {
    policy: usize,
    binding: usize,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    store: Arc<MemoryStore>,
    books: crate::money::Books,
    used: Vec<u64>,
    orders: Option<Vec<SimOrder>>,
    decisions: Vec<(leadrouter::domain::export::DecisionLine, bool)>,
    /// The day's decisions (every arrival) and their sampled outcomes, for the night.
    today: Vec<(leadrouter::domain::export::DecisionLine, Option<bool>)>,
    /// Every skill outcome so far.
    outcomes: Vec<leadrouter_models::skill::Outcome>,
    /// Every routed decision so far with its outcome (with `learning.propensity`).
    seen: Vec<leadrouter::domain::export::DecisionLine>,
    /// Their outcomes, in the same order.
    seen_outcomes: Vec<Option<bool>>,
    /// Every sampled order so far, as the preference fit reads them (with `learning.preference`).
    sold: Option<Vec<leadrouter_models::preference_fit::OrderRow>>,
}

pub use leadrouter_models::fairness::gini;

fn engine_config(s: &Scenario, c: &Checked, k: usize, b: usize) -> EngineConfig {
    EngineConfig {
        time_zone: c.time_zone,
        candidates: s.routing.clone(),
        policy: s.policies[k].clone(),
        seed: s.seed,
        alternatives: 0,
        offers: s.offers.clone(),
        bindings: vec![s.bindings[b].clone()],
        ..Default::default()
    }
}

/// Runs the scenario.
pub fn run(s: &Scenario, checked: &Checked, opts: Options) -> anyhow::Result<Run> {
    let world = World::build(s, checked)?;
    let net = &world.network;
    let mut lanes: Vec<Lane> = Vec::with_capacity(s.policies.len() * s.bindings.len());
    for (k, b) in (0..s.policies.len()).flat_map(|k| (0..s.bindings.len()).map(move |b| (k, b))) {
        let clock = Arc::new(ManualClock::new(0));
        let store = Arc::new(MemoryStore::new());
        let engine = Arc::new(
            Engine::new(
                world.fresh_network(),
                store.clone(),
                clock.clone(),
                engine_config(s, checked, k, b),
            )
            .map_err(|e| anyhow::anyhow!("policies[{k}]: {e}"))?,
        );
        lanes.push(Lane {
            policy: k,
            binding: b,
            books: crate::money::Books::new(engine.clone(), s)?,
            engine,
            clock,
            store,
            used: vec![0; net.guides().len()],
            orders: opts.record_orders.then(Vec::new),
            decisions: Vec::new(),
            today: Vec::new(),
            outcomes: Vec::new(),
            sold: s.learning.preference.then(Vec::new),
            seen: Vec::new(),
            seen_outcomes: Vec::new(),
        });
    }
    let model = match &s.models.preference {
        Some(path) => Some(leadrouter::app::models::load_preference(path)?),
        None => None,
    };
    let propensity = match &s.models.propensity {
        Some(path) => Some(leadrouter::app::models::load_propensity(path)?),
        None => None,
    };
    let probe_clock = Arc::new(ManualClock::new(0));
    let probe = Engine::new(
        world.fresh_network(),
        Arc::new(MemoryStore::new()),
        probe_clock.clone(),
        engine_config(s, checked, 0, 0),
    )
    .map_err(|e| anyhow::anyhow!("routing: {e}"))?;
    for engine in lanes.iter().map(|l| &*l.engine).chain([&probe]) {
        if let Some(m) = &model {
            engine
                .set_preference_model(Some(m.clone()))
                .map_err(|e| anyhow::anyhow!("models.preference: {e}"))?;
        }
        if let Some(m) = &propensity {
            engine
                .set_propensity_model(Some(m.clone()))
                .map_err(|e| anyhow::anyhow!("models.propensity: {e}"))?;
        }
    }
    let progress = Progress::new(opts.progress, s.days as usize * lanes.len());
    let mut days = Vec::with_capacity(s.days as usize);
    let capacity_per_day: Vec<u64> = net
        .guides()
        .iter()
        .map(|g| {
            if net.guide_key(net.guide_index(&g.id).unwrap_or(0)).active {
                u64::from(g.daily_capacity)
            } else {
                0
            }
        })
        .collect();
    let mut timings = Timings::default();
    for d in 0..s.days {
        let t0 = std::time::Instant::now();
        let day = world.day(d);
        let arrivals = world.arrivals(d);
        probe_clock.set(crate::world::day_start_ms(Day(day.0 + 1), world.time_zone) - 1);
        let (truth, cands) = edges(&world, &probe, &arrivals, opts.threads)?;
        let t1 = std::time::Instant::now();
        timings.edges += t1 - t0;
        let yardstick = if truth.edge_count() <= s.yardstick.exact_max_edges {
            Yardstick::Exact(flow::solve(&truth).value)
        } else {
            let b = dual::bound(
                &truth,
                None,
                DualOptions {
                    max_iterations: s.yardstick.dual_iterations,
                    threads: opts.threads,
                    ..Default::default()
                },
            );
            Yardstick::Dual {
                upper: b.upper,
                lower: b.lower,
            }
        };
        // What each policy's own estimates would reach, allocated perfectly (before the day
        // is routed: the models that day used).
        let exact = truth.edge_count() <= s.yardstick.exact_max_edges;
        let blind = if exact {
            Some(blind_optimum(&world, &arrivals, &cands, &truth)?)
        } else {
            None
        };
        let owns: Vec<anyhow::Result<Option<f64>>> = if exact {
            parallel(&mut lanes, opts.threads, |lane| {
                own_optimum(&world, lane, &arrivals, &cands, &truth)
            })
        } else {
            lanes.iter().map(|_| Ok(None)).collect()
        };
        drop(cands);
        let t2 = std::time::Instant::now();
        timings.yardstick += t2 - t1;
        let mut results = run_day(
            &world,
            &mut lanes,
            &arrivals,
            &truth,
            s,
            opts.threads,
            &progress,
            d,
        )?;
        for (r, own) in results.iter_mut().zip(owns) {
            r.own_optimum = own?;
        }
        let t3 = std::time::Instant::now();
        timings.routing += t3 - t2;
        // The night: every policy's engine learns from its own history.
        let learned = parallel(&mut lanes, opts.threads, |lane| {
            night(lane, s, opts.threads)
        });
        for (k, r) in learned.into_iter().enumerate() {
            r.map_err(|e| anyhow::anyhow!("policies[{k}], night of day {}: {e}", d + 1))?;
        }
        timings.learning += t3.elapsed();
        days.push(DayReport {
            day,
            leads: arrivals.len(),
            edges: truth.edge_count(),
            yardstick,
            blind_optimum: blind,
            policies: results,
        });
    }
    progress.finish();
    // Orders and refunds still due before the run ends happen; later ones are outside it.
    let end = crate::world::day_start_ms(world.day(s.days), world.time_zone) - 1;
    let t_money = std::time::Instant::now();
    let closed = parallel(&mut lanes, opts.threads, |lane| {
        lane.books.settle(&lane.clock, end)?;
        lane.books.close(net, s, opts.record_orders)
    });
    timings.money = t_money.elapsed();
    let policies = lanes
        .into_iter()
        .zip(closed)
        .map(|(lane, closed)| {
            let (money, trails, trail) = closed?;
            let snap = lane.engine.snapshot();
            let utilisation = lane
                .used
                .iter()
                .zip(&capacity_per_day)
                .filter(|(_, c)| **c > 0)
                .map(|(u, c)| *u as f64 / (*c as f64 * f64::from(s.days)))
                .collect();
            Ok(PolicyReport {
                name: snap.policy.name().to_string(),
                version: snap.policy.version().to_string(),
                policy: lane.policy,
                bindings: s.bindings[lane.binding].version.clone(),
                utilisation,
                money,
                trails,
                trail,
                orders: lane.orders.unwrap_or_default(),
                decisions: lane.decisions,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Run {
        timings,
        scenario: s.clone(),
        days,
        policies,
        guides: net.guides().len(),
        active_guides: capacity_per_day.iter().filter(|c| **c > 0).count(),
        stores: net.stores().len(),
    })
}

/// The day's edges valued by the truth, with each lead's candidates (the edges' features).
fn edges(
    world: &World,
    probe: &Engine,
    arrivals: &[Arrival],
    threads: usize,
) -> anyhow::Result<(Instance, Vec<Vec<Candidate>>)> {
    type Rows = Vec<(Vec<(u32, f32)>, Vec<Candidate>)>;
    let chunk = arrivals.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<anyhow::Result<Rows>> = std::thread::scope(|sc| {
        let hs: Vec<_> = arrivals
            .chunks(chunk)
            .map(|part| {
                sc.spawn(move || {
                    let mut rows = Vec::with_capacity(part.len());
                    for a in part {
                        let cands = probe
                            .reachable_with(&a.lead, &a.stores)
                            .map_err(|e| anyhow::anyhow!("lead {}: {e}", a.lead.lead_id))?;
                        rows.push((
                            cands
                                .iter()
                                .map(|c| (c.guide, world.value(a, c) as f32))
                                .collect(),
                            cands,
                        ));
                    }
                    Ok(rows)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("edge worker panicked")))
            })
            .collect()
    });
    let caps: Vec<u32> = world
        .network
        .guides()
        .iter()
        .enumerate()
        .map(|(j, g)| {
            if world.network.guide_key(j as u32).active {
                g.daily_capacity
            } else {
                0
            }
        })
        .collect();
    let mut truth = Instance::new(caps);
    let mut all = Vec::with_capacity(arrivals.len());
    for part in parts {
        for (t, cands) in part? {
            truth.push_lead(t)?;
            all.push(cands);
        }
    }
    Ok((truth, all))
}

/// The true value of the exact optimum of the day on the true conversion probabilities alone:
/// the best any router can do that knows everything about a lead but its basket.
fn blind_optimum(
    world: &World,
    arrivals: &[Arrival],
    cands: &[Vec<Candidate>],
    truth: &Instance,
) -> anyhow::Result<f64> {
    let mut est = Instance::new(truth.capacities().to_vec());
    for (a, cs) in arrivals.iter().zip(cands) {
        est.push_lead(
            cs.iter()
                .map(|c| (c.guide, (world.p_convert(a, c) + 1e-9) as f32))
                .collect::<Vec<_>>(),
        )?;
    }
    let best = flow::solve(&est);
    Ok(best
        .assignment
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.map(|g| f64::from(truth.value(i, g))))
        .sum())
}

/// The true value of the exact optimum of the day on the lane's own value estimates (the models
/// in service that day); `None` when its policy estimates no value.
fn own_optimum(
    world: &World,
    lane: &Lane,
    arrivals: &[Arrival],
    cands: &[Vec<Candidate>],
    truth: &Instance,
) -> anyhow::Result<Option<f64>> {
    let snap = lane.engine.snapshot();
    let net = &snap.network;
    let mut est = Instance::new(truth.capacities().to_vec());
    for (a, cs) in arrivals.iter().zip(cands) {
        let channel = a.lead.channel.index();
        let hour = leadrouter::engine::local_hour(a.lead.occurred_at_ms, world.time_zone);
        let mut edges = Vec::with_capacity(cs.len());
        for c in cs {
            let Some(v) = snap.policy.value_estimate(net, channel, hour, c) else {
                return Ok(None);
            };
            // A positive floor keeps every edge: an estimate of 0 is still a possible route.
            edges.push((c.guide, (v.max(0.0) + 1e-6) as f32));
        }
        est.push_lead(edges)?;
    }
    let best = flow::solve(&est);
    Ok(Some(
        best.assignment
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.map(|g| f64::from(truth.value(i, g))))
            .sum(),
    ))
}

/// Conversions and non-conversions the history needs before the night fits propensity.
const MIN_OUTCOMES: usize = 50;

/// One policy's night: what `[learning]` asks for, learned by the production loop's code from
/// the lane's own history, and put in service in its engine for the next day.
fn night(lane: &mut Lane, s: &Scenario, threads: usize) -> anyhow::Result<()> {
    use leadrouter::app::learn;
    // The loop's order (as `leadrouter models learn`): preference first, then what is learned
    // on the estimates it gives.
    if let Some(sold) = lane.sold.as_ref().filter(|o| !o.is_empty()) {
        let snap = lane.engine.snapshot();
        let mut models = snap.network.learned_models();
        let as_of_ms = sold.iter().map(|o| o.at_ms).max().unwrap_or(0);
        let m = learn::learn_preference(
            &snap.network,
            sold,
            &leadrouter_models::preference_fit::FitConfig {
                half_life_days: s.learning.preference_half_life_days,
                shrinkage: s.learning.preference_shrinkage,
                as_of_ms,
                by_amount: false,
            },
            vec!["simulated orders".into()],
        )?;
        models.preference = Some(Arc::new(m));
        lane.engine
            .set_learned_models(models)
            .map_err(anyhow::Error::msg)?;
    }
    let today = std::mem::take(&mut lane.today);
    if today.is_empty() {
        return Ok(());
    }
    // Only the policies that weigh p̂ learn it (the others would not use it).
    let propensity = s.learning.propensity
        && matches!(
            lane.engine.snapshot().policy.name(),
            "scored" | "softmax" | "dual_price"
        );
    if propensity {
        for (d, c) in today.iter().filter(|(d, _)| d.guide_id.is_some()) {
            lane.seen.push(d.clone());
            lane.seen_outcomes.push(*c);
        }
    }
    let (lines, converted): (Vec<_>, Vec<_>) = today.into_iter().unzip();
    let snap = lane.engine.snapshot();
    let mut models = snap.network.learned_models();
    let created = lines.last().map_or(0, |d| d.decided_at_ms);
    if s.learning.skill {
        let (o, _) = learn::skill_outcomes(&snap.network, &lines, &converted);
        lane.outcomes.extend(o);
        if !lane.outcomes.is_empty() {
            models.skill = Some(Arc::new(learn::learn_skill(
                &lane.outcomes,
                None,
                created,
                vec!["simulated history".into()],
            )?));
            lane.engine
                .set_learned_models(models.clone())
                .map_err(anyhow::Error::msg)?;
        }
    }
    // A fit needs both outcomes among its training examples (the latest fifth validates): a
    // thin history waits for more nights rather than stopping the run.
    let converted = lane
        .seen_outcomes
        .iter()
        .filter(|c| **c == Some(true))
        .count();
    let failed = lane
        .seen_outcomes
        .iter()
        .filter(|c| **c == Some(false))
        .count();
    if propensity && converted >= MIN_OUTCOMES && failed >= MIN_OUTCOMES {
        let (m, _, _) = learn::learn_propensity(
            &snap.network,
            &lane.seen,
            &lane.seen_outcomes,
            1,
            s.routing.regional_taste,
            &Default::default(),
            vec!["simulated history".into()],
        )?;
        models.propensity = Some(Arc::new(m));
        lane.engine
            .set_learned_models(models.clone())
            .map_err(anyhow::Error::msg)?;
    }
    if s.learning.prices
        && let Some(dual) = snap.policy.as_dual_price()
    {
        let warm = models.prices.clone();
        let (m, _) = learn::learn_prices(
            &lane.engine,
            dual,
            &lines,
            warm.as_deref(),
            DualOptions {
                max_iterations: s.yardstick.dual_iterations,
                threads,
                ..Default::default()
            },
            vec!["simulated history".into()],
        )?;
        models.prices = Some(Arc::new(m));
        lane.engine
            .set_learned_models(models)
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_day(
    world: &World,
    lanes: &mut [Lane],
    arrivals: &[Arrival],
    truth: &Instance,
    s: &Scenario,
    threads: usize,
    progress: &Progress,
    d: u32,
) -> anyhow::Result<Vec<PolicyDay>> {
    parallel(lanes, threads, |lane| {
        let learns = s.learning.skill
            || s.learning.propensity
            || (s.learning.prices && lane.engine.snapshot().policy.as_dual_price().is_some());
        let r = route_day(world, lane, arrivals, truth, learns);
        progress.step(d);
        r
    })
    .into_iter()
    .collect()
}

/// Runs `f` on every item, on up to `threads` threads, each item on one thread; results in
/// the items' order.
pub fn parallel<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let queue = std::sync::Mutex::new(items.iter_mut().enumerate().collect::<Vec<_>>());
    let results: Vec<std::sync::Mutex<Option<R>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..threads.max(1).min(n) {
            sc.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some((k, item)) = next else { break };
                    let r = f(item);
                    *results[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| unreachable!("every item is taken by a worker"))
        })
        .collect()
}

/// One policy routes one day.
fn route_day(
    world: &World,
    lane: &mut Lane,
    arrivals: &[Arrival],
    truth: &Instance,
    learns: bool,
) -> anyhow::Result<PolicyDay> {
    let net = &world.network;
    let mut out = PolicyDay::default();
    let lane_learns = learns;
    let mut day_used = vec![0u32; net.guides().len()];
    for (i, a) in arrivals.iter().enumerate() {
        lane.books.settle(&lane.clock, a.lead.occurred_at_ms)?;
        lane.clock.set(a.lead.occurred_at_ms);
        let lead = lane.books.lead(a, net)?;
        lane.books.arrived(a, &lead, net)?;
        let mut dec = lane
            .engine
            .route(&lead)
            .map_err(|e| anyhow::anyhow!("lead {}: {e}", a.lead.lead_id))?;
        // Offers: the guide answers by the truth's odds, the same draw for every policy.
        out.member_leads += u64::from(lead.member_id.is_some());
        if let Some(change) = dec.binding.as_ref().and_then(|b| b.change) {
            use leadrouter::domain::binding::BindingChange;
            out.binds += u64::from(change == BindingChange::Bind);
            out.snatches += u64::from(change == BindingChange::Snatch);
        }
        let mut hop = 0u64;
        while let Some(o) = dec.offer.as_ref().filter(|o| o.status == OfferStatus::Open) {
            out.offers += 1;
            let expires = o.expires_at_ms;
            let guide = dec.guide_id().unwrap_or_default().to_string();
            let lead_id = &a.lead.lead_id;
            let answer = world.offer_answer(a, hop);
            dec = match answer {
                Answer::Accept | Answer::Decline => {
                    lane.engine
                        .respond_to_offer(
                            lead_id,
                            &guide,
                            answer == Answer::Accept,
                            "simulated guide",
                            None,
                        )
                        .map_err(|e| anyhow::anyhow!("lead {lead_id}: {e}"))?
                        .decision
                }
                Answer::Expire => {
                    lane.clock.set(expires);
                    lane.engine.expire_due()?;
                    lane.engine
                        .store()
                        .decision(lead_id)?
                        .ok_or_else(|| anyhow::anyhow!("lead {lead_id}: decision lost"))?
                }
            };
            match answer {
                Answer::Decline => out.offers_declined += 1,
                Answer::Expire => out.offers_expired += 1,
                Answer::Accept => {}
            }
            hop += 1;
        }
        let learning = lane_learns;
        if dec
            .offer
            .as_ref()
            .is_some_and(|o| o.status == OfferStatus::Exhausted)
        {
            out.offers_exhausted += 1;
            out.unrouted += 1;
            if learning {
                lane.today.push((DecisionLine::from(&*dec), None));
            }
            continue;
        }
        let Some((_, guide_id)) = dec.assigned.clone() else {
            out.unrouted += 1;
            if learning {
                lane.today.push((DecisionLine::from(&*dec), None));
            }
            continue;
        };
        out.routed += 1;
        if lead.member_id.is_some() {
            use leadrouter::domain::Reasons;
            if dec.reasons.contains(Reasons::BOUND)
                || dec.reasons.contains(Reasons::BOUND_GUIDE_UNAVAILABLE)
            {
                out.bound_routed += 1;
            }
            if dec.reasons.contains(Reasons::REFERRER) {
                out.referrer_served += 1;
            }
        }
        let g = net
            .guide_index(&guide_id)
            .ok_or_else(|| anyhow::anyhow!("engine routed to unknown guide {guide_id}"))?;
        lane.used[g as usize] += 1;
        day_used[g as usize] += 1;
        if truth.edges(i).0.binary_search(&g).is_err() {
            out.outside_reach += 1;
        }
        let w = f64::from(truth.value(i, g));
        let basket = a.basket_cents as f64;
        let p = if basket > 0.0 {
            w * 100.0 / basket
        } else {
            0.0
        };
        out.value += w;
        out.expected_conversions += p;
        out.expected_revenue_cents += p * basket;
        let st = net.store(net.guide(g).store);
        if let Some(at) = &a.lead.location {
            out.distance_km += at.distance_km(&st.location);
        }
        if lane.orders.is_some() {
            lane.decisions.push((DecisionLine::from(&*dec), a.draw < p));
        }
        if learning {
            lane.today
                .push((DecisionLine::from(&*dec), Some(a.draw < p)));
        }
        if a.draw < p {
            out.sampled_conversions += 1;
            out.sampled_revenue_cents += a.basket_cents;
            let s = net.guide(g).store;
            // What the customer bought: their first interest the store carries.
            let cat = || {
                let carried = net.store(s).categories;
                a.interests
                    .iter()
                    .map(|&(c, _)| c)
                    .find(|&c| carried & (1 << c) != 0)
                    .or(a.interests.first().map(|&(c, _)| c))
                    .unwrap_or(0)
            };
            if let Some(sold) = &mut lane.sold {
                sold.push(leadrouter_models::preference_fit::OrderRow {
                    region: net.regions().get(net.store(s).region).code,
                    category: cat(),
                    amount_cents: a.basket_cents,
                    at_ms: a.lead.occurred_at_ms + 3_600_000,
                });
            }
            if let Some(orders) = &mut lane.orders {
                let cat = cat();
                orders.push(SimOrder {
                    order_id: format!("o-{}", a.lead.lead_id),
                    region_code: net.store_region_code(s),
                    category: net.categories()[cat].clone(),
                    amount_cents: a.basket_cents,
                    at_ms: a.lead.occurred_at_ms + 3_600_000,
                });
            }
        }
        lane.books.served(a, &lead, g, a.draw < p, net)?;
    }
    let (gini, idle) =
        leadrouter_models::fairness::load_spread((0..net.guides().len()).filter_map(|j| {
            let k = net.guide_key(j as u32);
            k.active.then_some((day_used[j], k.daily_capacity))
        }));
    out.load_gini = gini;
    out.idle_guides = idle as u64;
    // Yesterday's decisions are not needed again: keep the store's memory flat.
    lane.store
        .forget_decisions_before(Day(lane.engine.today().0));
    Ok(out)
}

/// Progress on stderr.
struct Progress {
    on: bool,
    tty: bool,
    total: usize,
    done: AtomicUsize,
}

impl Progress {
    fn new(on: bool, total: usize) -> Self {
        Self {
            on,
            tty: std::io::stderr().is_terminal(),
            total: total.max(1),
            done: AtomicUsize::new(0),
        }
    }

    fn step(&self, day: u32) {
        if !self.on {
            return;
        }
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut err = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = n * width / self.total;
            let _ = write!(
                err,
                "\r[{}{}] {:3}% day {}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                n * 100 / self.total,
                day + 1
            );
            let _ = err.flush();
        } else if n.is_multiple_of((self.total / 20).max(1)) || n == self.total {
            let _ = writeln!(
                err,
                "progress: {n}/{} policy-days (day {})",
                self.total,
                day + 1
            );
        }
    }

    fn finish(&self) {
        if self.on && self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}
