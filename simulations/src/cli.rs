//! The `leadrouter-sim` commands.

use crate::dual::{self, DualOptions};
use crate::explicit::Explicit;
use crate::flow;
use crate::replay::{self, ReplayConfig};
use crate::report;
use crate::run::{self, Options};
use crate::scenario::Scenario;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "leadrouter-sim",
    version,
    about = "Compare routing policies and split rules on the same arrivals, against the hindsight optimum."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a scenario file and writes the report (report.md, CSV tables, SVG charts).
    Run {
        scenario: PathBuf,
        /// Report directory (created if needed).
        #[arg(long, default_value = "sim-report")]
        out: PathBuf,
        /// Override the scenario's number of days.
        #[arg(long)]
        days: Option<u32>,
        /// Override the scenario's leads per day.
        #[arg(long)]
        leads_per_day: Option<u32>,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
        /// No progress on stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Writes the sampled orders of a scenario routed by one policy as an orders CSV
    /// (order_id,region_code,category,amount_cents,occurred_at), e.g. a history to train
    /// `leadrouter models preference` on.
    History {
        scenario: PathBuf,
        /// The policy that routes (default: the scenario's first).
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        days: Option<u32>,
        /// Also write the routed decisions (JSON Lines, as `trail export --decisions`)…
        #[arg(long, requires = "labels")]
        decisions: Option<PathBuf>,
        /// …and whether each lead converted (lead_id,converted), to train
        /// `leadrouter models propensity` on.
        #[arg(long, requires = "decisions")]
        labels: Option<PathBuf>,
        /// Also write the members' trails (JSON Lines, as `leadrouter trail export`), under
        /// the scenario's first binding rule set, ownership rule set and split policy.
        #[arg(long)]
        trail: Option<PathBuf>,
    },
    /// Routes the leads of exported decisions (`leadrouter trail export --decisions`) again
    /// under other policies and compares them with what happened.
    Replay {
        /// Exported decisions (JSON Lines).
        #[arg(long)]
        decisions: PathBuf,
        /// An exported trail (JSON Lines), to compare against the orders' owners.
        #[arg(long)]
        trail: Option<PathBuf>,
        /// The network directory the decisions were made on (default: the demo network).
        #[arg(long)]
        network: Option<PathBuf>,
        /// A policy to replay with default parameters (repeat; default: every built-in).
        #[arg(long = "policy", conflicts_with = "scenario")]
        policies: Vec<String>,
        /// Take the policies, [routing], seed and time zone from a scenario file instead, and
        /// its [[ownership]] rule sets × [[splits]] policies to restate the trail under (default:
        /// the default rule set and the "361" split).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Report directory (created if needed).
        #[arg(long, default_value = "replay-report")]
        out: PathBuf,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Solves an explicit instance (edges.csv, capacities.csv) exactly and by the dual bound,
    /// and scores an assignment against the optimum when one is given.
    Instance {
        #[arg(long)]
        edges: PathBuf,
        #[arg(long)]
        capacities: PathBuf,
        #[arg(long)]
        assignment: Option<PathBuf>,
        /// Writes the optimal assignment here (lead,guide).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the exact solver above this many edges.
        #[arg(long, default_value_t = 1_000_000)]
        exact_max_edges: usize,
    },
    /// Estimates a candidate policy's value from logged decisions by IPS, SNIPS, DM and DR,
    /// with bootstrap intervals, the effective sample size and warnings when the log does not
    /// support the estimate: from a logged-bandit file (`--log` `round,action,position,reward,
    /// pscore` with `--eval` `round,action,position,prob`, `round` may be `*` for every round),
    /// or from the router's own exported decisions with their propensities (`--decisions`, the
    /// outcomes from `--labels` or `--trail`) for a built-in `--policy`.
    Ope {
        #[arg(long, required_unless_present = "decisions", requires = "eval")]
        log: Option<PathBuf>,
        #[arg(long, requires = "log")]
        eval: Option<PathBuf>,
        /// Exported decisions (`leadrouter trail export --decisions`)…
        #[arg(long, conflicts_with = "log", requires = "policy")]
        decisions: Option<PathBuf>,
        /// …with `lead_id,converted` labels…
        #[arg(long, requires = "decisions", conflicts_with = "trail")]
        labels: Option<PathBuf>,
        /// …or an exported trail (a lead converted when its member ordered within 7 days).
        #[arg(long, requires = "decisions")]
        trail: Option<PathBuf>,
        /// The candidate policy, with default parameters (with --decisions).
        #[arg(long, requires = "decisions")]
        policy: Option<String>,
        /// The network directory the decisions were made on (default: the demo network).
        #[arg(long, requires = "decisions")]
        network: Option<PathBuf>,
        /// Bootstrap resamples for the intervals.
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// The intervals' level.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Writes the action distribution of Bernoulli Thompson sampling with the priors of
    /// `--prior` (`action,alpha,beta`) over `--positions` slots, by simulation, as an
    /// evaluation file for `ope`.
    Thompson {
        #[arg(long)]
        prior: PathBuf,
        #[arg(long, default_value_t = 3)]
        positions: usize,
        #[arg(long, default_value_t = 100_000)]
        sims: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

/// A built-in policy by name, with default parameters (`--policy`).
fn builtin_policy(name: &str) -> anyhow::Result<leadrouter::policy::PolicyConfig> {
    toml::from_str(&format!("name = {name:?}")).map_err(|_| {
        anyhow::anyhow!(
            "--policy: must be one of {}, got {name:?}",
            leadrouter::policy::PolicyConfig::NAMES.join(", ")
        )
    })
}

/// Builds the network of `--network DIR` (default: the demo network) once to check it, and
/// returns a builder of fresh copies (one per engine).
fn offline_network(
    dir: Option<&std::path::Path>,
) -> anyhow::Result<impl Fn() -> anyhow::Result<leadrouter::catalog::Network> + Sync> {
    let regions = std::sync::Arc::new(leadrouter::catalog::RegionTree::embedded());
    let files = match dir {
        Some(d) => leadrouter::catalog::NetworkFiles::read_dir(d)?,
        None => leadrouter::catalog::demo_files(),
    };
    files.load(regions.clone())?;
    Ok(
        move || -> anyhow::Result<leadrouter::catalog::Network> {
            Ok(files.load(regions.clone())?)
        },
    )
}

/// Runs a command, writing what it reports to `out`.
pub fn main_with(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Ope {
            log,
            eval,
            decisions,
            labels,
            trail,
            policy,
            network,
            bootstrap,
            confidence,
            seed,
            json,
        } => {
            let (logged, candidate) = match (log, eval, decisions) {
                (Some(log), Some(eval), None) => (
                    crate::ope::read_log(&log)?,
                    crate::ope::read_candidate(&eval)?,
                ),
                (None, None, Some(decisions)) => {
                    let name = policy.unwrap_or_default();
                    let policy = builtin_policy(&name)?;
                    let lines = replay::read_decisions(&decisions)?;
                    let outcomes = leadrouter::app::learn::outcomes(
                        &lines,
                        labels.as_deref(),
                        trail.as_deref(),
                        7,
                    )?;
                    let build = offline_network(network.as_deref())?;
                    let f = crate::ope::from_decisions(
                        &build,
                        &lines,
                        &outcomes,
                        &policy,
                        &replay::ReplayConfig::default(),
                    )?;
                    if !json {
                        writeln!(
                            out,
                            "{} decisions: {} evaluated, left out {} without an outcome, {} \
                             unrouted, {} without a propensity, {} of guides the network lacks; \
                             `{name}` lists {:.3} of its probability on average{}\n",
                            lines.len(),
                            f.logged.len(),
                            f.no_outcome,
                            f.unrouted,
                            f.no_propensity,
                            f.unknown_guide,
                            f.listed_mass,
                            if f.listed_mass < 0.99 {
                                " (the rest is unknown: IPS and DR under-count it)"
                            } else {
                                ""
                            }
                        )?;
                    }
                    (f.logged, f.candidate)
                }
                _ => anyhow::bail!("give --log with --eval, or --decisions with --policy"),
            };
            let e =
                leadrouter_models::ope::evaluate(&logged, &candidate, bootstrap, confidence, seed)?;
            crate::ope::write_report(&e, json, out)?;
        }
        Command::Thompson {
            prior,
            positions,
            sims,
            seed,
            out: path,
        } => {
            crate::ope::write_thompson(&prior, positions, sims, seed, &path)?;
            writeln!(out, "wrote {}", path.display())?;
        }
        Command::Run {
            scenario,
            out: dir,
            days,
            leads_per_day,
            threads,
            quiet,
        } => {
            let (mut s, _) = Scenario::read(&scenario)?;
            if let Some(d) = days {
                s.days = d;
                // A shorter run drops the bursts planned after its end.
                let before = s.demand.bursts.len();
                s.demand.bursts.retain(|b| b.day.is_none_or(|x| x < d));
                if s.demand.bursts.len() < before && !quiet {
                    eprintln!(
                        "note: --days {d} leaves out {} burst(s) planned for later days",
                        before - s.demand.bursts.len()
                    );
                }
            }
            if let Some(n) = leads_per_day {
                s.demand.leads_per_day = n;
            }
            let checked = s
                .check()
                .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
            let mut opts = Options {
                progress: !quiet,
                ..Default::default()
            };
            if let Some(t) = threads {
                anyhow::ensure!(
                    (1..=256).contains(&t),
                    "--threads: must be 1..=256, got {t}"
                );
                opts.threads = t;
            }
            let r = run::run(&s, &checked, opts)?;
            report::write(&r, &dir)?;
            let names = report::labels(&r);
            let width = names.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
            writeln!(
                out,
                "{:<width$} {:>10} {:>12} {:>10} {:>16}",
                "policy", "value/opt", "conversions", "unrouted", "owner != server"
            )?;
            for ((x, p), name) in r.summaries().iter().zip(&r.policies).zip(&names) {
                let m = p.money.first();
                writeln!(
                    out,
                    "{:<width$} {:>10.4} {:>12.1} {:>9.2}% {:>15.1}%",
                    name,
                    x.ratio,
                    x.totals.expected_conversions,
                    100.0 * x.unrouted_share,
                    m.map_or(0.0, |m| 100.0 * m.not_served as f64
                        / m.orders.max(1) as f64)
                )?;
            }
            writeln!(out, "report: {}", dir.join("report.md").display())?;
            if !quiet {
                let t = r.timings;
                eprintln!(
                    "time: arrivals and edges {:.2} s, yardstick {:.2} s, routing {:.2} s, nightly learning {:.2} s, trails and money {:.2} s",
                    t.edges.as_secs_f64(),
                    t.yardstick.as_secs_f64(),
                    t.routing.as_secs_f64(),
                    t.learning.as_secs_f64(),
                    t.money.as_secs_f64(),
                );
            }
        }
        Command::History {
            scenario,
            policy,
            out: path,
            days,
            decisions,
            labels,
            trail,
        } => {
            let (mut s, _) = Scenario::read(&scenario)?;
            s.bindings.truncate(1);
            if let Some(d) = days {
                s.days = d;
                s.demand.bursts.retain(|b| b.day.is_none_or(|x| x < d));
            }
            if let Some(n) = policy {
                s.policies = vec![builtin_policy(&n)?];
            } else {
                s.policies.truncate(1);
            }
            let checked = s
                .check()
                .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
            let r = run::run(
                &s,
                &checked,
                Options {
                    progress: false,
                    record_orders: true,
                    ..Default::default()
                },
            )?;
            let mut w = String::from("order_id,region_code,category,amount_cents,occurred_at\n");
            let orders = &r.policies[0].orders;
            for o in orders {
                w.push_str(&format!(
                    "{},{},{},{},{}\n",
                    o.order_id, o.region_code, o.category, o.amount_cents, o.at_ms
                ));
            }
            std::fs::write(&path, w).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if let (Some(dp), Some(lp)) = (&decisions, &labels) {
                let mut d = String::new();
                let mut l = String::from("lead_id,converted\n");
                for (line, converted) in &r.policies[0].decisions {
                    d.push_str(&serde_json::to_string(line)?);
                    d.push('\n');
                    l.push_str(&format!("{},{}\n", line.lead_id, u8::from(*converted)));
                }
                std::fs::write(dp, d).map_err(|e| anyhow::anyhow!("{}: {e}", dp.display()))?;
                std::fs::write(lp, l).map_err(|e| anyhow::anyhow!("{}: {e}", lp.display()))?;
                writeln!(
                    out,
                    "{}, {}: {} routed decisions",
                    dp.display(),
                    lp.display(),
                    r.policies[0].decisions.len()
                )?;
            }
            if let Some(tp) = &trail {
                let p = &r.policies[0];
                std::fs::write(tp, &p.trail)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", tp.display()))?;
                writeln!(
                    out,
                    "{}: {} events of {} members",
                    tp.display(),
                    p.trails.events,
                    p.trails.members
                )?;
            }
            writeln!(
                out,
                "{}: {} orders over {} day(s), routed by {}",
                path.display(),
                orders.len(),
                s.days,
                r.policies[0].name
            )?;
        }
        Command::Replay {
            decisions,
            trail,
            network,
            policies,
            scenario,
            out: dir,
            threads,
        } => {
            let mut cfg = ReplayConfig::default();
            // What the trail is restated under: the scenario's ownership rule sets × split
            // policies, or the defaults.
            let mut alternatives = Vec::new();
            let mut rules = (Scenario::parse("")?.ownership, Scenario::parse("")?.splits);
            if let Some(path) = &scenario {
                let (s, c) = Scenario::read(path)?;
                rules = (s.ownership.clone(), s.splits.clone());
                cfg.policies = s.policies;
                cfg.routing = s.routing;
                cfg.seed = s.seed;
                cfg.time_zone = c.time_zone;
            } else if policies.is_empty() {
                cfg.policies = Scenario::parse("")?.policies;
            } else {
                for n in &policies {
                    cfg.policies.push(builtin_policy(n)?);
                }
            }
            if let Some(t) = threads {
                anyhow::ensure!(
                    (1..=256).contains(&t),
                    "--threads: must be 1..=256, got {t}"
                );
                cfg.threads = t;
            }
            let lines = replay::read_decisions(&decisions)?;
            let orders = match &trail {
                Some(p) => replay::read_orders(p)?,
                None => Vec::new(),
            };
            for o in &rules.0 {
                for p in &rules.1 {
                    alternatives.push(leadrouter::attribution::restate::Alternative {
                        ownership: o.clone(),
                        split: p.clone(),
                    });
                }
            }
            let build = offline_network(network.as_deref())?;
            let mut r = replay::replay(&build, &lines, &orders, &cfg)?;
            if let Some(p) = &trail {
                r.money = replay::restate_trail(
                    p,
                    &lines,
                    &build()?,
                    alternatives,
                    leadrouter::attribution::AttributionConfig::default().history_limit,
                )?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            let md = replay::markdown(&r);
            std::fs::write(dir.join("replay.md"), &md)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("replay.csv"), replay::csv(&r))
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            if !r.money.is_empty() {
                std::fs::write(dir.join("replay_parties.csv"), replay::parties_csv(&r))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            }
            write!(out, "{md}")?;
            writeln!(out, "\nreport: {}", dir.join("replay.md").display())?;
        }
        Command::Instance {
            edges,
            capacities,
            assignment,
            out: opt_out,
            exact_max_edges,
        } => {
            let x = Explicit::read(&edges, &capacities)?;
            let inst = &x.instance;
            writeln!(
                out,
                "leads {}  guides {}  edges {}  capacity {}",
                inst.leads(),
                inst.guides(),
                inst.edge_count(),
                inst.capacities().iter().map(|&c| u64::from(c)).sum::<u64>()
            )?;
            let b = dual::bound(inst, None, DualOptions::default());
            writeln!(
                out,
                "dual bound     {:.4}  (feasible {:.4}, gap {:.4}%, {} steps)",
                b.upper,
                b.lower,
                100.0 * b.gap(),
                b.iterations
            )?;
            let (greedy, _) = inst.greedy();
            let opt = (inst.edge_count() <= exact_max_edges).then(|| flow::solve(inst));
            let reference = opt.as_ref().map_or(b.upper, |o| o.value);
            let ratio = |v: f64| if reference > 0.0 { v / reference } else { 1.0 };
            if let Some(o) = &opt {
                writeln!(out, "optimum        {:.4}", o.value)?;
            }
            writeln!(
                out,
                "greedy         {:.4}  ({:.4} of the {})",
                greedy,
                ratio(greedy),
                if opt.is_some() { "optimum" } else { "bound" }
            )?;
            if let Some(path) = assignment {
                let a = x.read_assignment(&path)?;
                let v = inst.value_of(&a)?;
                writeln!(
                    out,
                    "assignment     {:.4}  ({:.4} of the {})",
                    v,
                    ratio(v),
                    if opt.is_some() { "optimum" } else { "bound" }
                )?;
            }
            if let (Some(path), Some(o)) = (opt_out, &opt) {
                let mut w = String::from("lead,guide\n");
                for (i, g) in o.assignment.iter().enumerate() {
                    w.push_str(&x.lead_ids[i]);
                    w.push(',');
                    if let Some(g) = g {
                        w.push_str(&x.guide_ids[*g as usize]);
                    }
                    w.push('\n');
                }
                std::fs::write(&path, w).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                writeln!(out, "optimal assignment: {}", path.display())?;
            }
        }
    }
    Ok(())
}
