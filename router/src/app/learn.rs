//! The learning loop's steps over exported decisions (`leadrouter trail export --decisions`) and
//! what became of each lead: regional preference, guide skill and the dual prices. The simulator's nightly step calls
//! these same functions on the decisions it has produced, so a simulated week is a week of the
//! production loop.

use crate::catalog::Network;
use crate::domain::export::DecisionLine;
use crate::engine::Engine;
use crate::policy::DualPrice;
use anyhow::Context;
use leadrouter_models::dual::DualOptions;
use leadrouter_models::instance::Instance;
use leadrouter_models::preference_fit::{FitConfig, OrderRow, PreferenceModel};
use leadrouter_models::prices::{PriceDay, PriceModel};
use leadrouter_models::skill::{Outcome, SkillConfig, SkillModel};
use std::collections::HashMap;
use std::path::Path;

/// Every decision of a JSON Lines export, in the order decided (lead id breaks ties). Errors
/// name the file and the line.
pub fn read_decisions(path: &Path) -> anyhow::Result<Vec<DecisionLine>> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let d: DecisionLine = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        out.push(d);
    }
    out.sort_by(|a, b| (a.decided_at_ms, &a.lead_id).cmp(&(b.decided_at_ms, &b.lead_id)));
    Ok(out)
}

/// What became of each lead: `lead_id,converted` labels, or from an exported trail (a member's
/// lead converted when the member ordered within `window_days` after it, five minutes of clock
/// skew allowed). `None`: unknown (an anonymous lead, or one the labels do not name).
pub fn outcomes(
    lines: &[DecisionLine],
    labels: Option<&Path>,
    trail: Option<&Path>,
    window_days: u32,
) -> anyhow::Result<Vec<Option<bool>>> {
    let window_ms = i64::from(window_days.max(1)) * 86_400_000;
    Ok(match (labels, trail) {
        (Some(p), None) => {
            let l = super::models::read_labels(p)?;
            lines.iter().map(|d| l.get(&d.lead_id).copied()).collect()
        }
        (None, Some(p)) => {
            let orders = super::models::trail_orders(p)?;
            lines
                .iter()
                .map(|d| {
                    let m = d.member_id.as_ref()?;
                    Some(orders.get(m).is_some_and(|ts| {
                        ts.iter().any(|&t| {
                            t + 300_000 >= d.decided_at_ms && t - d.decided_at_ms <= window_ms
                        })
                    }))
                })
                .collect()
        }
        _ => anyhow::bail!("give --labels or --trail (one of them)"),
    })
}

/// Routed leads with a known outcome, as skill outcomes (the guide's store and tier as the
/// network has them now; guides the network no longer has are left out and counted).
pub fn skill_outcomes(
    net: &Network,
    lines: &[DecisionLine],
    converted: &[Option<bool>],
) -> (Vec<Outcome>, usize) {
    let mut skipped = 0;
    let mut out = Vec::with_capacity(lines.len());
    for (d, c) in lines.iter().zip(converted) {
        let (Some(g), Some(c)) = (d.guide_id.as_deref(), c) else {
            continue;
        };
        let Some(gi) = net.guide_index(g) else {
            skipped += 1;
            continue;
        };
        let guide = net.guide(gi);
        out.push(Outcome {
            guide: g.to_string(),
            store: net.store(guide.store).id.to_string(),
            tier: guide.tier,
            converted: *c,
            at_ms: d.decided_at_ms,
        });
    }
    (out, skipped)
}

/// Fits the regional preference matrix from orders (what sold, where: the fulfilling store's
/// region) and checks that it fits `net` (its categories, regions the network knows).
pub fn learn_preference(
    net: &Network,
    orders: &[OrderRow],
    cfg: &FitConfig,
    inputs: Vec<String>,
) -> anyhow::Result<PreferenceModel> {
    let model = PreferenceModel::fit(net.categories(), orders, cfg, inputs)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    net.check_learned(&model).map_err(anyhow::Error::msg)?;
    Ok(model)
}

/// Fits conversion propensity from routed decisions in decision order (`lines`, with their
/// outcomes `label`): each example's features as the router computes them at serving time, a
/// guide's past rate counting only outcomes known a `window_days` before the lead, the
/// preference match with the router's `routing.regional_taste`. Returns the
/// model, how many examples it saw and how many decisions were skipped (a store or guide the
/// network lacks).
pub fn learn_propensity(
    net: &Network,
    lines: &[DecisionLine],
    label: &[Option<bool>],
    window_days: u32,
    regional_taste: f64,
    cfg: &leadrouter_models::propensity::PropensityConfig,
    inputs: Vec<String>,
) -> anyhow::Result<(leadrouter_models::propensity::PropensityModel, usize, usize)> {
    use leadrouter_models::propensity::{CHANNELS, Example, Inputs, PropensityModel};
    let window_ms = i64::from(window_days.max(1)) * 86_400_000;
    // Guides' past rates, counting only leads whose outcome was known by then (routed at least
    // a window before), smoothed towards the overall rate.
    let known: Vec<(usize, bool)> = label
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|l| (i, l)))
        .collect();
    let overall = known.iter().filter(|(_, l)| *l).count() as f64 / known.len().max(1) as f64;
    const SMOOTH: f64 = 20.0;
    let mut counts: std::collections::HashMap<&str, (f64, f64)> = Default::default();
    let mut matured = 0;
    let mut examples = Vec::with_capacity(known.len());
    let mut skipped = 0usize;
    for &(i, converted) in &known {
        let d = &lines[i];
        while matured < known.len()
            && lines[known[matured].0].decided_at_ms + window_ms <= d.decided_at_ms
        {
            let (j, l) = known[matured];
            let e = counts
                .entry(lines[j].guide_id.as_deref().unwrap_or_default())
                .or_default();
            e.0 += 1.0;
            e.1 += f64::from(u8::from(l));
            matured += 1;
        }
        let (Some(s), Some(g)) = (
            d.store_id.as_deref().and_then(|s| net.store_index(s)),
            d.guide_id.as_deref().and_then(|g| net.guide_index(g)),
        ) else {
            skipped += 1;
            continue;
        };
        let store = net.store(s);
        let lead = d
            .lead()
            .map_err(|e| anyhow::anyhow!("lead {}: {e}", d.lead_id))?;
        // The match as route() computed it: stated interests with the region's taste.
        let preference = match crate::engine::validate(net, &lead, lead.occurred_at_ms) {
            Ok(v) => f64::from(crate::engine::lead_preference(net, &v, s, regional_taste)),
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        let (n, c) = counts
            .get(d.guide_id.as_deref().unwrap_or_default())
            .copied()
            .unwrap_or_default();
        let hour = ((d.decided_at_ms.rem_euclid(86_400_000) / 3_600_000 + 8) % 24) as u32;
        examples.push(Example {
            inputs: Inputs {
                distance_km: lead.location.map(|at| at.distance_km(&store.location)),
                preference,
                tier: net.guide(g).tier,
                guide_rate: (c + SMOOTH * overall) / (n + SMOOTH),
                direct_store: store.ownership == crate::catalog::Ownership::Direct,
                outlet_store: store.pricing == crate::catalog::Pricing::Outlet,
                hour,
                channel: CHANNELS
                    .iter()
                    .position(|c| *c == d.channel.as_str())
                    .unwrap_or(0),
            },
            converted,
            at_ms: d.decided_at_ms,
        });
    }
    let mut rates = std::collections::BTreeMap::new();
    let mut all: std::collections::HashMap<&str, (f64, f64)> = Default::default();
    for &(i, l) in &known {
        let e = all
            .entry(lines[i].guide_id.as_deref().unwrap_or_default())
            .or_default();
        e.0 += 1.0;
        e.1 += f64::from(u8::from(l));
    }
    for (g, (n, c)) in all {
        rates.insert(g.to_string(), (c + SMOOTH * overall) / (n + SMOOTH));
    }
    let created = lines.last().map_or(0, |d| d.decided_at_ms);
    let model = PropensityModel::fit(&examples, rates, overall, cfg, inputs, created)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((model, examples.len(), skipped))
}

/// Fits guide skill from outcomes (see [`skill_outcomes`]); `created_at_ms` is the artifact's
/// time (the last decision's).
pub fn learn_skill(
    outcomes: &[Outcome],
    shrinkage: Option<f64>,
    created_at_ms: i64,
    inputs: Vec<String>,
) -> anyhow::Result<SkillModel> {
    SkillModel::fit(
        outcomes,
        &SkillConfig {
            shrinkage,
            created_at_ms,
        },
        inputs,
    )
    .map_err(anyhow::Error::msg)
}

/// Each business day of `lines` as an assignment instance: every lead's edges are the guides
/// [`Engine::reachable`] lists for it, valued by `dual`'s estimate on the network in service in
/// `engine` (with its models). Days in order; leads that cannot be routed again (a region the
/// network no longer has) are left out and counted.
pub fn price_days(
    engine: &Engine,
    dual: &DualPrice,
    lines: &[DecisionLine],
    threads: usize,
) -> anyhow::Result<(Vec<(String, Instance)>, usize)> {
    let snap = engine.snapshot();
    let net = &snap.network;
    let tz = engine.config().time_zone;
    let caps: Vec<u32> = (0..net.guides().len() as u32)
        .map(|j| {
            let k = net.guide_key(j);
            if k.active { k.daily_capacity } else { 0 }
        })
        .collect();
    let mut by_day: Vec<(String, Vec<&DecisionLine>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for d in lines {
        let i = *index.entry(&d.day).or_insert_with(|| {
            by_day.push((d.day.clone(), Vec::new()));
            by_day.len() - 1
        });
        by_day[i].1.push(d);
    }
    by_day.sort_by(|a, b| a.0.cmp(&b.0));
    let mut days = Vec::with_capacity(by_day.len());
    let mut skipped = 0;
    for (day, leads) in by_day {
        let chunk = leads.len().div_ceil(threads.max(1)).max(1);
        type Rows = Vec<Option<Vec<(u32, f32)>>>;
        let parts: Vec<Rows> = std::thread::scope(|sc| {
            let hs: Vec<_> = leads
                .chunks(chunk)
                .map(|part| {
                    sc.spawn(move || {
                        part.iter()
                            .map(|d| {
                                let lead = d.lead().ok()?;
                                let cands = engine.reachable(&lead).ok()?;
                                // Valued as route() valued them: the lead's channel and hour.
                                let channel = lead.channel.index();
                                let hour = crate::engine::local_hour(d.decided_at_ms, tz);
                                Some(
                                    cands
                                        .iter()
                                        .map(|c| {
                                            let v = dual.estimate_for(net, channel, hour, c);
                                            (c.guide, v.max(0.0) as f32)
                                        })
                                        .collect(),
                                )
                            })
                            .collect()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut inst = Instance::new(caps.clone());
        for row in parts.into_iter().flatten() {
            match row {
                Some(edges) => {
                    inst.push_lead(edges).map_err(anyhow::Error::msg)?;
                }
                None => skipped += 1,
            }
        }
        days.push((day, inst));
    }
    Ok((days, skipped))
}

/// Learns the dual prices from `lines` (see [`price_days`] and [`PriceModel::learn`]).
pub fn learn_prices(
    engine: &Engine,
    dual: &DualPrice,
    lines: &[DecisionLine],
    warm: Option<&PriceModel>,
    opts: DualOptions,
    inputs: Vec<String>,
) -> anyhow::Result<(PriceModel, usize)> {
    let (days, skipped) = price_days(engine, dual, lines, opts.threads)?;
    let snap = engine.snapshot();
    let guides: Vec<&str> = snap.network.guides().iter().map(|g| &*g.id).collect();
    let refs: Vec<PriceDay<'_>> = days
        .iter()
        .map(|(day, inst)| PriceDay {
            day: day.clone(),
            instance: inst,
        })
        .collect();
    let created = lines.last().map_or(0, |d| d.decided_at_ms);
    let m = PriceModel::learn(&refs, &guides, warm, opts, created, inputs)
        .map_err(anyhow::Error::msg)?;
    Ok((m, skipped))
}

/// The network of an offline step: `--network DIR`, else the config's, else the demo.
fn offline_network(
    config: &crate::config::Config,
    network: Option<&Path>,
) -> anyhow::Result<Network> {
    let regions = std::sync::Arc::new(crate::catalog::RegionTree::embedded());
    match network.or(config.network.as_deref()) {
        Some(d) => Ok(crate::catalog::NetworkFiles::read_dir(d)?.load(regions)?),
        None => Ok(crate::catalog::demo_files().load(regions)?),
    }
}

/// An engine over the in-memory store for offline steps, configured as the service is (routing,
/// policy, the `[models]` it names), with a clock after every decision in `lines`.
pub fn offline_engine(
    config: &crate::config::Config,
    network: Option<&Path>,
    lines: &[DecisionLine],
) -> anyhow::Result<Engine> {
    let net = offline_network(config, network)?;
    let last = lines.iter().map(|d| d.occurred_at_ms).max().unwrap_or(0);
    let clock = std::sync::Arc::new(crate::clock::ManualClock::new(last + 86_400_000));
    let engine = Engine::new(
        net,
        std::sync::Arc::new(crate::storage::MemoryStore::new()),
        clock,
        config.engine().map_err(anyhow::Error::msg)?,
    )?;
    super::published::ModelsBundle::read(&config.models)?.install(&engine)?;
    Ok(engine)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Writes `text` to `out` through a temporary file, so a reader never sees half an artifact.
pub fn write_artifact(out: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}", out.display()))
}

/// What `leadrouter models skill` learns from.
#[derive(Debug, Clone)]
pub struct SkillArgs<'a> {
    pub decisions: &'a Path,
    pub labels: Option<&'a Path>,
    pub trail: Option<&'a Path>,
    pub network: Option<&'a Path>,
    pub window_days: u32,
    /// `None`: estimated from the data.
    pub shrinkage: Option<f64>,
}

/// `leadrouter models skill`: fits guide skill and writes its artifact. Returns the report.
pub fn fit_skill(args: &SkillArgs<'_>, out: &Path) -> anyhow::Result<String> {
    let net = offline_network(&crate::config::Config::default(), args.network)?;
    let lines = read_decisions(args.decisions)?;
    let converted = outcomes(&lines, args.labels, args.trail, args.window_days)?;
    let mut inputs = vec![file_name(args.decisions)];
    inputs.extend(args.labels.or(args.trail).map(file_name));
    let (o, skipped) = skill_outcomes(&net, &lines, &converted);
    let created = lines.last().map_or(0, |d| d.decided_at_ms);
    let m = learn_skill(&o, args.shrinkage, created, inputs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.decisions.display()))?;
    write_artifact(out, &m.to_json())?;
    Ok(skill_report(out, &m, skipped))
}

fn skill_report(out: &Path, m: &SkillModel, skipped: usize) -> String {
    let mut lifts: Vec<(&String, f64)> = m.guides.iter().map(|(g, s)| (g, s.lift())).collect();
    lifts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let show = |v: &[(&String, f64)]| {
        v.iter()
            .map(|(g, l)| format!("{g} {l:+.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let k = lifts.len().min(3);
    format!(
        "{}: {} from {} outcomes ({} guides, conversion rate {:.4}, shrinkage {:.1} leads, lift sd {:.3}; {} outcomes of guides not in the network left out)\nhighest: {}\nlowest: {}",
        out.display(),
        m.meta.version,
        m.overall.leads,
        m.guides.len(),
        m.meta.metrics["conversion_rate"],
        m.shrinkage,
        m.meta.metrics["lift_sd"],
        skipped,
        show(&lifts[..k]),
        show(&lifts[lifts.len() - k..]),
    )
}

/// What `leadrouter models prices` learns from.
#[derive(Debug, Clone)]
pub struct PricesArgs<'a> {
    pub decisions: &'a Path,
    /// The service's configuration (routing, policy, network, `[models]`); defaults without.
    pub config: Option<&'a Path>,
    pub network: Option<&'a Path>,
    /// Earlier prices to start the first day from.
    pub warm: Option<&'a Path>,
    /// Only the latest this many business days.
    pub days: Option<usize>,
    pub max_iterations: usize,
}

/// `leadrouter models prices`: learns `dual_price`'s capacity prices from exported decisions
/// and writes the artifact. Returns the report.
pub fn fit_prices(args: &PricesArgs<'_>, out: &Path) -> anyhow::Result<String> {
    let config = match args.config {
        Some(p) => crate::config::Config::from_file(p)?,
        None => crate::config::Config::default(),
    };
    fit_prices_with(&config, args, out)
}

/// As [`fit_prices`], with the configuration given (its `[models]` in service while pricing).
pub fn fit_prices_with(
    config: &crate::config::Config,
    args: &PricesArgs<'_>,
    out: &Path,
) -> anyhow::Result<String> {
    let mut lines = read_decisions(args.decisions)?;
    if let Some(n) = args.days {
        let mut days: Vec<&str> = lines.iter().map(|d| d.day.as_str()).collect();
        days.sort_unstable();
        days.dedup();
        if n == 0 {
            anyhow::bail!("--days: must be at least 1");
        }
        let from = days.len().saturating_sub(n);
        let keep: std::collections::HashSet<String> =
            days[from..].iter().map(|d| d.to_string()).collect();
        lines.retain(|d| keep.contains(&d.day));
    }
    if lines.is_empty() {
        anyhow::bail!("{}: no decisions to learn from", args.decisions.display());
    }
    let engine = offline_engine(config, args.network, &lines)?;
    let snap = engine.snapshot();
    let (dual, note) = match snap.policy.as_dual_price() {
        Some(_) => (None, String::new()),
        None => (
            Some(DualPrice::new(Default::default()).map_err(anyhow::Error::msg)?),
            format!(
                " (the configured policy is {:?}: priced with dual_price's default estimate)",
                snap.policy.name()
            ),
        ),
    };
    let dual = dual
        .as_ref()
        .or(snap.policy.as_dual_price())
        .unwrap_or_else(|| unreachable!("one of the two is a dual-price policy"));
    let warm = args
        .warm
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
            super::models::parse_prices(&p.display().to_string(), &text)
        })
        .transpose()?;
    let opts = DualOptions {
        max_iterations: args.max_iterations,
        ..Default::default()
    };
    let (m, skipped) = learn_prices(
        &engine,
        dual,
        &lines,
        warm.as_deref(),
        opts,
        vec![file_name(args.decisions)],
    )?;
    write_artifact(out, &m.to_json())?;
    let x = &m.meta.metrics;
    Ok(format!(
        "{}: {} from {} days (the last: {} leads, {} edges), {} of {} guides priced; bound {:.1} with gap {:.2} % after {} steps; {} leads not routable now left out{note}",
        out.display(),
        m.meta.version,
        x["days"],
        x["leads"],
        x["edges"],
        m.prices.len(),
        snap.network.guides().len(),
        x["upper"],
        100.0 * x["gap"],
        x["iterations"],
        skipped,
    ))
}

/// What `leadrouter models learn` learns from: the whole nightly loop in one command.
#[derive(Debug, Clone)]
pub struct LearnArgs<'a> {
    pub decisions: &'a Path,
    /// An exported trail: the outcomes (a member's order within the window) and, with the
    /// decisions, the orders the preference model learns from…
    pub trail: Option<&'a Path>,
    /// …or `lead_id,converted` labels (then the preference model needs `orders`).
    pub labels: Option<&'a Path>,
    /// An orders CSV for the preference model (instead of the trail's orders).
    pub orders: Option<&'a Path>,
    /// Member tags (`member_id,tag,weight`) for segments; none: no segments.
    pub tags: Option<&'a Path>,
    pub config: Option<&'a Path>,
    pub network: Option<&'a Path>,
    pub window_days: u32,
    /// Prices from the latest this many days (default: the last day, warm-started from
    /// `warm_prices` when given).
    pub price_days: usize,
    pub warm_prices: Option<&'a Path>,
    pub segments_k: usize,
}

/// `leadrouter models learn --out-dir DIR`: every artifact the router uses, in the order the
/// loop needs them (preference, then skill and propensity, then the prices on the new
/// estimates), each versioned, and `DIR/models.toml` with the `[models]` table that loads them.
/// Returns the report, one paragraph per artifact.
pub fn learn_all(args: &LearnArgs<'_>, dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let mut config = match args.config {
        Some(p) => crate::config::Config::from_file(p)?,
        None => crate::config::Config::default(),
    };
    let network = args.network.or(config.network.as_deref());
    let mut report = Vec::new();
    let mut models = crate::config::ModelsConfig::default();
    // 1. Preference: from the orders CSV, else from the trail's orders.
    if args.orders.is_some() || args.trail.is_some() {
        let out = dir.join("preference.json");
        report.push(super::models::fit_preference(
            &super::models::PreferenceArgs {
                orders: args.orders.or(args.trail).unwrap_or(Path::new("")),
                decisions: args.orders.is_none().then_some(args.decisions),
                network,
                half_life_days: 90.0,
                shrinkage: 30.0,
                as_of: None,
                by_amount: false,
            },
            &out,
        )?);
        models.preference = Some(out);
    } else {
        report.push("preference: skipped (give --trail or --orders)".into());
    }
    // 2. Skill and propensity, from what became of each lead.
    let out = dir.join("skill.json");
    report.push(fit_skill(
        &SkillArgs {
            decisions: args.decisions,
            labels: args.labels,
            trail: args.trail,
            network,
            window_days: args.window_days,
            shrinkage: None,
        },
        &out,
    )?);
    models.skill = Some(out);
    let out = dir.join("propensity.json");
    report.push(super::models::fit_propensity(
        &super::models::PropensityArgs {
            decisions: args.decisions,
            labels: args.labels,
            trail: args.trail,
            network,
            window_days: args.window_days,
            validation_share: 0.2,
            l2: 1e-3,
            regional_taste: config.routing.regional_taste,
        },
        &out,
    )?);
    models.propensity = Some(out);
    // 3. Segments, when tags are given.
    if let Some(tags) = args.tags {
        let out = dir.join("segments.json");
        let assignments = dir.join("segments.csv");
        report.push(super::models::fit_segments(
            tags,
            args.segments_k,
            0,
            &out,
            Some(&assignments),
        )?);
        models.segments = Some(assignments);
    }
    // 4. Prices, on the estimates the new preference and skill give.
    let out = dir.join("prices.json");
    config.models = models.clone();
    report.push(fit_prices_with(
        &config,
        &PricesArgs {
            decisions: args.decisions,
            config: None,
            network: args.network,
            warm: args.warm_prices,
            days: Some(args.price_days.max(1)),
            max_iterations: DualOptions::default().max_iterations,
        },
        &out,
    )?);
    models.prices = Some(out);
    let toml = models_toml(&models);
    write_artifact(&dir.join("models.toml"), &toml)?;
    report.push(format!(
        "{}: the [models] table for the service's config (send SIGHUP to load it)",
        dir.join("models.toml").display()
    ));
    Ok(report.join("\n\n"))
}

fn models_toml(m: &crate::config::ModelsConfig) -> String {
    let mut s = String::from("[models]\n");
    for (k, v) in [
        ("preference", &m.preference),
        ("propensity", &m.propensity),
        ("segments", &m.segments),
        ("skill", &m.skill),
        ("prices", &m.prices),
    ] {
        if let Some(p) = v {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            s.push_str(&format!("{k} = {:?}\n", abs.display().to_string()));
        }
    }
    s
}
