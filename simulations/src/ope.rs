//! `leadrouter-sim ope` on generic logged-bandit files, and the evaluation file of a Thompson
//! sampling policy. The estimators are `leadrouter_models::ope`.
//!
//! Log: `round,action,position,reward,pscore` (one row per logged decision; pscore is the
//! logging policy's probability of that action at that position). Evaluation:
//! `round,action,position,prob` (the candidate's distribution; `round` may be `*` for every
//! round without rows of its own).

use anyhow::{Context, bail};
use leadrouter_models::ope::{self, Candidate, Evaluation, Logged};
use std::io::Write;
use std::path::Path;

fn reader(path: &Path, header: &[&str]) -> anyhow::Result<csv::Reader<std::fs::File>> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let got: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    if got != header {
        bail!(
            "{}: the header must be `{}`, got `{}`",
            path.display(),
            header.join(","),
            got.join(",")
        );
    }
    Ok(r)
}

fn field<T: std::str::FromStr>(
    path: &Path,
    line: u64,
    name: &str,
    value: &str,
) -> anyhow::Result<T> {
    value.parse().map_err(|_| {
        anyhow::anyhow!(
            "{} line {line}: {name}: not a valid number: {:?}",
            path.display(),
            value
        )
    })
}

/// Reads a log file; an error names the file, line and field.
pub fn read_log(path: &Path) -> anyhow::Result<Vec<Logged>> {
    let mut r = reader(path, &["round", "action", "position", "reward", "pscore"])?;
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec?;
        let line = i as u64 + 2;
        let l = Logged {
            round: field(path, line, "round", &rec[0])?,
            action: field(path, line, "action", &rec[1])?,
            position: field(path, line, "position", &rec[2])?,
            reward: field(path, line, "reward", &rec[3])?,
            pscore: field(path, line, "pscore", &rec[4])?,
        };
        ope::check_row(&l).map_err(|e| anyhow::anyhow!("{} line {line}: {e}", path.display()))?;
        out.push(l);
    }
    if out.is_empty() {
        bail!("{}: has no rows", path.display());
    }
    Ok(out)
}

/// Reads an evaluation file.
pub fn read_candidate(path: &Path) -> anyhow::Result<Candidate> {
    let mut r = reader(path, &["round", "action", "position", "prob"])?;
    let mut c = Candidate::default();
    for (i, rec) in r.records().enumerate() {
        let rec = rec?;
        let line = i as u64 + 2;
        let key = (
            field(path, line, "action", &rec[1])?,
            field(path, line, "position", &rec[2])?,
        );
        let p: f64 = field(path, line, "prob", &rec[3])?;
        let into = if &rec[0] == "*" {
            &mut c.every_round
        } else {
            c.by_round
                .entry(field(path, line, "round", &rec[0])?)
                .or_default()
        };
        if into.insert(key, p).is_some() {
            bail!(
                "{} line {line}: round {}, action {}, position {} is given twice",
                path.display(),
                &rec[0],
                key.0,
                key.1
            );
        }
    }
    Ok(c)
}

/// Writes the evaluation report: a table, or JSON.
pub fn write_report(e: &Evaluation, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({
            "rows": e.rows,
            "logged_value": e.logged_value,
            "estimates": e.estimates.iter().map(|x| serde_json::json!({
                "estimator": x.estimator,
                "value": x.value,
                "relative_to_logged": x.value / e.logged_value,
                "low": x.low,
                "high": x.high,
            })).collect::<Vec<_>>(),
            "confidence": e.confidence,
            "bootstrap": e.bootstrap,
            "effective_sample_size": e.effective_sample_size,
            "max_weight": e.max_weight,
            "unsupported": e.unsupported,
            "warnings": e.warnings,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} logged rows; the logging policy's value (mean reward) {:.6}",
        e.rows, e.logged_value
    )?;
    writeln!(
        out,
        "{:<8} {:>12} {:>12}   {:.0}% interval ({} bootstrap draws)",
        "",
        "value",
        "relative",
        100.0 * e.confidence,
        e.bootstrap
    )?;
    for x in &e.estimates {
        writeln!(
            out,
            "{:<8} {:>12.6} {:>12.4}   [{:.6}, {:.6}]",
            x.estimator.to_uppercase(),
            x.value,
            x.value / e.logged_value,
            x.low,
            x.high
        )?;
    }
    writeln!(
        out,
        "effective sample size {:.1} of {}; largest weight {:.2}; probability on actions never logged {:.2}%",
        e.effective_sample_size,
        e.rows,
        e.max_weight,
        100.0 * e.unsupported
    )?;
    if e.warnings.is_empty() {
        writeln!(out, "the log supports the estimate")?;
    }
    for w in &e.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// Reads `action,alpha,beta` priors and writes Thompson sampling's distribution over
/// `positions` slots as an evaluation file for every round.
pub fn write_thompson(
    prior: &Path,
    positions: usize,
    sims: usize,
    seed: u64,
    out: &Path,
) -> anyhow::Result<()> {
    let mut r = reader(prior, &["action", "alpha", "beta"])?;
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    for (i, rec) in r.records().enumerate() {
        let rec = rec?;
        let line = i as u64 + 2;
        let a: usize = field(prior, line, "action", &rec[0])?;
        if a != i {
            bail!(
                "{} line {line}: action: must number the actions 0, 1, … in order, got {a}",
                prior.display()
            );
        }
        alpha.push(field(prior, line, "alpha", &rec[1])?);
        beta.push(field(prior, line, "beta", &rec[2])?);
    }
    let dist = ope::thompson_top_k(&alpha, &beta, positions, sims, seed)?;
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("writing {}", out.display()))?;
    w.write_record(["round", "action", "position", "prob"])?;
    for (a, per) in dist.iter().enumerate() {
        for (k, &p) in per.iter().enumerate() {
            if p > 0.0 {
                w.write_record(["*", &a.to_string(), &k.to_string(), &format!("{p}")])?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

/// What [`from_decisions`] made of a router's log.
pub struct FromDecisions {
    pub logged: Vec<Logged>,
    pub candidate: Candidate,
    /// Decisions left out of the estimate: no outcome known, nothing routed, no propensity
    /// recorded (a log from before propensities were kept), or a guide the network lacks.
    pub no_outcome: usize,
    pub unrouted: usize,
    pub no_propensity: usize,
    pub unknown_guide: usize,
    /// The candidate's mean probability mass over the options its decisions list (1 for a
    /// deterministic policy; below 1, IPS and DR under-count what it would have gained).
    pub listed_mass: f64,
}

/// Turns a router's exported decisions with what became of each lead into a logged-bandit
/// problem: a round per decision, the routed guide as the action (one position), the lead's
/// conversion as the reward and the recorded propensity as the logging probability. The
/// candidate `policy` routes every lead again in order, on a fresh engine over `network` (its
/// own capacity use, as [`crate::replay`]), and its probabilities for the round are those of its
/// pick and of every alternative it lists.
pub fn from_decisions(
    network: &(dyn Fn() -> anyhow::Result<leadrouter::catalog::Network> + Sync),
    lines: &[leadrouter::domain::export::DecisionLine],
    outcomes: &[Option<bool>],
    policy: &leadrouter::policy::PolicyConfig,
    cfg: &crate::replay::ReplayConfig,
) -> anyhow::Result<FromDecisions> {
    // As many options as a decision lists: an exploring candidate's distribution beyond them
    // is unknown, and counted in `listed_mass`.
    let (engine, clock) = crate::replay::engine_for(network, cfg, policy, 20)
        .map_err(|e| anyhow::anyhow!("--policy: {e}"))?;
    let snap = engine.snapshot();
    let net = &snap.network;
    let mut out = FromDecisions {
        logged: Vec::new(),
        candidate: Candidate::default(),
        no_outcome: 0,
        unrouted: 0,
        no_propensity: 0,
        unknown_guide: 0,
        listed_mass: 0.0,
    };
    let mut mass = 0.0;
    for (i, (line, outcome)) in lines.iter().zip(outcomes).enumerate() {
        let lead = line
            .lead()
            .map_err(|e| anyhow::anyhow!("lead {}: {e}", line.lead_id))?;
        clock.set(line.decided_at_ms);
        let d = engine
            .route(&lead)
            .map_err(|e| anyhow::anyhow!("lead {}: {e}", line.lead_id))?;
        let round = i as u64;
        let Some(guide) = &line.guide_id else {
            out.unrouted += 1;
            continue;
        };
        let Some(converted) = outcome else {
            out.no_outcome += 1;
            continue;
        };
        let Some(pscore) = line.propensity.filter(|p| *p > 0.0 && *p <= 1.0) else {
            out.no_propensity += 1;
            continue;
        };
        let Some(action) = net.guide_index(guide) else {
            out.unknown_guide += 1;
            continue;
        };
        out.logged.push(Logged {
            round,
            action,
            position: 0,
            reward: if *converted { 1.0 } else { 0.0 },
            pscore,
        });
        let mut probs = std::collections::HashMap::new();
        if let Some((_, g)) = &d.assigned
            && let Some(gi) = net.guide_index(g)
        {
            probs.insert((gi, 0), d.propensity.clamp(0.0, 1.0));
        }
        for a in &d.alternatives {
            if a.propensity > 0.0
                && let Some(gi) = net.guide_index(&a.guide_id)
            {
                probs.entry((gi, 0)).or_insert(a.propensity.clamp(0.0, 1.0));
            }
        }
        // A tie's share is recorded on each tied option and a capacity race marks its pick
        // certain: where those add up past 1, the distribution is the shares, normalised.
        let total: f64 = probs.values().sum();
        if total > 1.0 {
            for p in probs.values_mut() {
                *p /= total;
            }
        }
        mass += total.min(1.0);
        out.candidate.by_round.insert(round, probs);
    }
    out.listed_mass = if out.logged.is_empty() {
        1.0
    } else {
        mass / out.logged.len() as f64
    };
    Ok(out)
}
