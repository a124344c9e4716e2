//! `leadrouter models preference`: learn the regional preference matrix from an orders CSV;
//! and loading the learned artifacts into a running engine (at start and on SIGHUP).
//!
//! The orders CSV has the header `order_id,region_code,category,amount_cents,occurred_at`:
//! region codes are GB/T 2260 (6 or 12 digits), categories those of the network, amounts
//! integer cents >= 0, times RFC 3339 (`2026-11-28T10:00:00+08:00`) or Unix milliseconds.
//! Errors name the file, the line and the field.

use crate::catalog::{Network, NetworkFiles, RegionTree, demo_files};
use anyhow::Context;
use leadrouter_models::preference_fit::{FitConfig, OrderRow, PreferenceModel};
use std::path::Path;
use std::sync::Arc;

/// Reads an orders CSV against a network's categories.
pub fn read_orders(path: &Path, net: &Network) -> anyhow::Result<Vec<OrderRow>> {
    let at = |line: u64, msg: String| anyhow::anyhow!("{}:{line}: {msg}", path.display());
    let regions = net.regions();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in csv_records(
        path,
        &[
            "order_id",
            "region_code",
            "category",
            "amount_cents",
            "occurred_at",
        ],
    )? {
        let (line, rec) = item?;
        let id = &rec[0];
        if id.is_empty() || id.len() > 128 {
            return Err(at(line, "order_id: must be 1..=128 bytes".into()));
        }
        if !seen.insert(id.to_string()) {
            return Err(at(line, format!("order_id: {id:?} appears twice")));
        }
        let region = regions
            .resolve(&rec[1])
            .map_err(|e| at(line, format!("region_code: {e}")))?;
        let category = net.category_index(&rec[2]).ok_or_else(|| {
            at(
                line,
                format!(
                    "category: {:?} is not a category of the network ({})",
                    &rec[2],
                    net.categories().join(", ")
                ),
            )
        })?;
        let amount_cents: i64 = rec[3].parse().ok().filter(|a| *a >= 0).ok_or_else(|| {
            at(
                line,
                format!("amount_cents: must be whole cents >= 0, got {:?}", &rec[3]),
            )
        })?;
        let at_ms = parse_time(&rec[4]).map_err(|e| at(line, format!("occurred_at: {e}")))?;
        out.push(OrderRow {
            region: regions.get(region).code,
            category,
            amount_cents,
            at_ms,
        });
    }
    Ok(out)
}

/// A CSV file's records with their line numbers, after checking its header; errors name the
/// file and the line.
fn csv_records<'a>(
    path: &'a Path,
    header: &[&str],
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<(u64, csv::StringRecord)>> + 'a> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    csv_records_in(path.display().to_string(), file, header)
}

/// The records of CSV text read from `reader`, as [`csv_records`]; errors name `name`.
fn csv_records_in<'a>(
    name: String,
    reader: impl std::io::Read + 'a,
    header: &[&str],
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<(u64, csv::StringRecord)>> + 'a> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let got: Vec<String> = r
        .headers()
        .map_err(|e| anyhow::anyhow!("{name}:1: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    if got != header {
        anyhow::bail!(
            "{name}:1: header must be {}, got {}",
            header.join(","),
            got.join(",")
        );
    }
    Ok(r.into_records().map(move |rec| {
        let rec = rec
            .map_err(|e| anyhow::anyhow!("{name}:{}: {e}", e.position().map_or(0, |p| p.line())))?;
        Ok((rec.position().map_or(0, |p| p.line()), rec))
    }))
}

/// The non-empty lines of a JSON Lines file with their 0-based index; errors name the file.
fn jsonl_lines(
    path: &Path,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<(usize, String)>> + '_> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    Ok(std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .map(move |(i, line)| {
            line.map(|l| (i, l))
                .with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .filter(|r| r.as_ref().map_or(true, |(_, l)| !l.trim().is_empty())))
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("must be RFC 3339 or Unix milliseconds, got {s:?}"))
}

/// Orders from an exported trail, with what the trail lacks taken from exported decisions: an
/// order's region is its fulfilling store's (else the sharing guide's store's), and its category
/// is the first interest of the member's latest lead before it (five minutes of clock skew
/// allowed) that the store carries. Orders
/// with neither a known store nor such a lead are left out and counted.
pub fn orders_from_trail(
    trail: &Path,
    decisions: &Path,
    net: &Network,
) -> anyhow::Result<(Vec<OrderRow>, usize)> {
    use crate::domain::export::DecisionLine;
    use crate::domain::trail::{EventBody, TrailEvent};
    let mut leads: std::collections::HashMap<String, Vec<(i64, Vec<String>)>> = Default::default();
    for item in jsonl_lines(decisions)? {
        let (i, line) = item?;
        let d: DecisionLine = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", decisions.display(), i + 1))?;
        if let Some(m) = d.member_id {
            leads.entry(m).or_default().push((
                d.decided_at_ms,
                d.interests.into_iter().map(|x| x.category).collect(),
            ));
        }
    }
    for v in leads.values_mut() {
        v.sort_by_key(|(t, _)| *t);
    }
    let (mut out, mut skipped) = (Vec::new(), 0);
    for item in jsonl_lines(trail)? {
        let (i, line) = item?;
        let Some(e) = TrailEvent::from_export_line(&line)
            .map_err(|err| anyhow::anyhow!("{}:{}: {err}", trail.display(), i + 1))?
        else {
            continue;
        };
        let EventBody::Order(o) = &e.body else {
            continue;
        };
        let store = o
            .facts
            .fulfilling_store_id
            .as_deref()
            .or(o.sharing_guide_store_id.as_deref())
            .and_then(|s| net.store_index(s));
        let category = store.and_then(|s| {
            let carried = net.store(s).categories;
            let before = leads.get(&e.member_id)?;
            // Callers' clocks and the service's differ by seconds: allow five minutes.
            let (_, cats) = before
                .iter()
                .rev()
                .find(|(t, _)| *t <= e.occurred_at_ms + 300_000)?;
            cats.iter()
                .filter_map(|c| net.category_index(c))
                .find(|&c| carried & (1 << c) != 0)
        });
        match (store, category) {
            (Some(s), Some(category)) => out.push(OrderRow {
                region: net.regions().get(net.store(s).region).code,
                category,
                amount_cents: o.facts.amount_cents,
                at_ms: e.occurred_at_ms,
            }),
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// What to learn from.
#[derive(Debug, Clone)]
pub struct PreferenceArgs<'a> {
    /// An orders CSV; or, with `decisions`, an exported trail (see [`orders_from_trail`]).
    pub orders: &'a Path,
    /// Exported decisions, when `orders` is an exported trail.
    pub decisions: Option<&'a Path>,
    /// The network whose categories (and region tree) the orders use; the demo when `None`.
    pub network: Option<&'a Path>,
    pub half_life_days: f64,
    pub shrinkage: f64,
    /// Ages are measured back from this day's end (YYYY-MM-DD, UTC+8); default: the last order.
    pub as_of: Option<&'a str>,
    pub by_amount: bool,
}

/// Fits the preference model and writes its artifact to `out`. Returns a summary line.
pub fn fit_preference(args: &PreferenceArgs<'_>, out: &Path) -> anyhow::Result<String> {
    let regions = Arc::new(RegionTree::embedded());
    let net = match args.network {
        Some(d) => NetworkFiles::read_dir(d)?.load(regions)?,
        None => demo_files().load(regions)?,
    };
    let orders = match args.decisions {
        Some(d) => {
            let (orders, skipped) = orders_from_trail(args.orders, d, &net)?;
            if skipped > 0 {
                tracing::warn!(
                    skipped,
                    "trail orders without a store or a category were left out"
                );
            }
            orders
        }
        None => read_orders(args.orders, &net)?,
    };
    let as_of_ms = match args.as_of {
        Some(d) => {
            let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| anyhow::anyhow!("--as-of: must be a date YYYY-MM-DD, got {d:?}"))?;
            let end = day
                .succ_opt()
                .and_then(|n| n.and_hms_opt(0, 0, 0))
                .ok_or_else(|| anyhow::anyhow!("--as-of: out of range"))?;
            end.and_utc().timestamp_millis() - 8 * 3_600_000 - 1
        }
        None => orders.iter().map(|o| o.at_ms).max().unwrap_or(0),
    };
    let cfg = FitConfig {
        half_life_days: args.half_life_days,
        shrinkage: args.shrinkage,
        as_of_ms,
        by_amount: args.by_amount,
    };
    let input = args.orders.file_name().map_or_else(
        || args.orders.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let model = super::learn::learn_preference(&net, &orders, &cfg, vec![input])
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.orders.display()))?;
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, model.to_json()).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}", out.display()))?;
    Ok(format!(
        "{}: {} from {} orders, {} regions (half-life {} days, shrinkage {})",
        out.display(),
        model.meta.version,
        orders.len(),
        model.matrix.regions(),
        cfg.half_life_days,
        cfg.shrinkage
    ))
}

/// Reads a preference artifact; the error names the file.
pub fn load_preference(path: &Path) -> anyhow::Result<Arc<PreferenceModel>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    parse_preference(&path.display().to_string(), &text)
}

/// A preference artifact's text; the error names `name`.
pub fn parse_preference(name: &str, text: &str) -> anyhow::Result<Arc<PreferenceModel>> {
    let model = PreferenceModel::from_json(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(Arc::new(model))
}

/// A skill artifact's text; the error names `name`.
pub fn parse_skill(
    name: &str,
    text: &str,
) -> anyhow::Result<Arc<leadrouter_models::skill::SkillModel>> {
    leadrouter_models::skill::SkillModel::from_json(text)
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// A prices artifact's text; the error names `name`.
pub fn parse_prices(
    name: &str,
    text: &str,
) -> anyhow::Result<Arc<leadrouter_models::prices::PriceModel>> {
    leadrouter_models::prices::PriceModel::from_json(text)
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// Reads a propensity artifact; the error names the file.
pub fn load_propensity(
    path: &Path,
) -> anyhow::Result<Arc<leadrouter_models::propensity::PropensityModel>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    parse_propensity(&path.display().to_string(), &text)
}

/// A propensity artifact's text; the error names `name`.
pub fn parse_propensity(
    name: &str,
    text: &str,
) -> anyhow::Result<Arc<leadrouter_models::propensity::PropensityModel>> {
    let model = leadrouter_models::propensity::PropensityModel::from_json(text)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(Arc::new(model))
}

/// Reads members' segments (`member_id,segment`); errors name the line and field.
pub fn load_member_segments(
    path: &Path,
) -> anyhow::Result<Arc<leadrouter_models::segments::MemberSegments>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    member_segments_in(&path.display().to_string(), file)
}

/// Members' segments read from `reader`; errors name `name`, the line and the field.
pub fn member_segments_in(
    name: &str,
    reader: impl std::io::Read,
) -> anyhow::Result<Arc<leadrouter_models::segments::MemberSegments>> {
    let at = |line: u64, msg: String| anyhow::anyhow!("{name}:{line}: {msg}");
    let mut pairs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in csv_records_in(name.to_string(), reader, &["member_id", "segment"])? {
        let (line, rec) = item?;
        if rec[0].is_empty() || rec[0].len() > 128 {
            return Err(at(line, "member_id: must be 1..=128 bytes".into()));
        }
        if !seen.insert(rec[0].to_string()) {
            return Err(at(line, format!("member_id: {:?} appears twice", &rec[0])));
        }
        let s: u16 = rec[1].parse().map_err(|_| {
            at(
                line,
                format!(
                    "segment: must be a whole number 0..=65535, got {:?}",
                    &rec[1]
                ),
            )
        })?;
        pairs.push((rec[0].to_string(), s));
    }
    let m = leadrouter_models::segments::MemberSegments::new(pairs)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(Arc::new(m))
}

/// What to learn the propensity model from.
#[derive(Debug, Clone)]
pub struct PropensityArgs<'a> {
    /// Exported decisions (`trail export --decisions`).
    pub decisions: &'a Path,
    /// `lead_id,converted` (1/0): what happened to each lead…
    pub labels: Option<&'a Path>,
    /// …or an exported trail: a member lead converted when the member ordered within
    /// `window_days` after it.
    pub trail: Option<&'a Path>,
    pub network: Option<&'a Path>,
    pub window_days: u32,
    pub validation_share: f64,
    pub l2: f64,
    /// `routing.regional_taste` of the router that made the decisions.
    pub regional_taste: f64,
}

/// Orders per member from an exported trail: (member, order time).
pub(crate) fn trail_orders(
    path: &Path,
) -> anyhow::Result<std::collections::HashMap<String, Vec<i64>>> {
    use crate::domain::trail::{EventBody, TrailEvent};
    let mut out: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for item in jsonl_lines(path)? {
        let (i, line) = item?;
        let Some(e) = TrailEvent::from_export_line(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?
        else {
            continue;
        };
        if matches!(e.body, EventBody::Order(_)) {
            out.entry(e.member_id).or_default().push(e.occurred_at_ms);
        }
    }
    Ok(out)
}

pub(crate) fn read_labels(path: &Path) -> anyhow::Result<std::collections::HashMap<String, bool>> {
    let at = |line: u64, msg: String| anyhow::anyhow!("{}:{line}: {msg}", path.display());
    let mut out = std::collections::HashMap::new();
    for item in csv_records(path, &["lead_id", "converted"])? {
        let (line, rec) = item?;
        let v = match &rec[1] {
            "1" | "true" => true,
            "0" | "false" => false,
            other => {
                return Err(at(
                    line,
                    format!("converted: must be 1, 0, true or false, got {other:?}"),
                ));
            }
        };
        if out.insert(rec[0].to_string(), v).is_some() {
            return Err(at(line, format!("lead_id: {:?} appears twice", &rec[0])));
        }
    }
    Ok(out)
}

/// Fits the propensity model and writes its artifact to `out`. Returns the report: sizes, AUC,
/// log-loss and the calibration table on the validation part.
pub fn fit_propensity(args: &PropensityArgs<'_>, out: &Path) -> anyhow::Result<String> {
    use crate::domain::export::DecisionLine;
    use leadrouter_models::propensity::PropensityConfig;
    let regions = Arc::new(RegionTree::embedded());
    let net = match args.network {
        Some(d) => NetworkFiles::read_dir(d)?.load(regions)?,
        None => demo_files().load(regions)?,
    };
    let mut lines: Vec<DecisionLine> = Vec::new();
    for item in jsonl_lines(args.decisions)? {
        let (i, line) = item?;
        let d: DecisionLine = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", args.decisions.display(), i + 1))?;
        if d.guide_id.is_some() {
            lines.push(d);
        }
    }
    lines.sort_by(|a, b| (a.decided_at_ms, &a.lead_id).cmp(&(b.decided_at_ms, &b.lead_id)));
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.regional_taste),
        "--regional-taste: must be in [0, 1], got {}",
        args.regional_taste
    );
    let label = super::learn::outcomes(&lines, args.labels, args.trail, args.window_days)?;
    let cfg = PropensityConfig {
        validation_share: args.validation_share,
        l2: args.l2,
        ..Default::default()
    };
    let name = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let mut inputs = vec![name(args.decisions)];
    inputs.extend(args.labels.or(args.trail).map(name));
    let (model, examples, skipped) = super::learn::learn_propensity(
        &net,
        &lines,
        &label,
        args.window_days,
        args.regional_taste,
        &cfg,
        inputs,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.decisions.display()))?;
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, model.to_json()).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}", out.display()))?;
    let v = &model.validation;
    let mut report = format!(
        "{}: {} from {} examples ({} without a known store or guide skipped; {} unlabelled)\n\
         validation (latest {:.0} %): {} examples, base rate {:.3}, AUC {:.4}, log-loss {:.4}\n\
         calibration:\n  predicted      n   mean predicted  observed\n",
        out.display(),
        model.meta.version,
        examples,
        skipped,
        label.iter().filter(|l| l.is_none()).count(),
        100.0 * args.validation_share,
        v.examples,
        v.base_rate,
        v.auc,
        v.log_loss
    );
    for b in &v.calibration {
        if b.n > 0 {
            report.push_str(&format!(
                "  {:.1}–{:.1} {:>8} {:>14.3} {:>9.3}\n",
                b.from, b.to, b.n, b.mean_predicted, b.observed
            ));
        }
    }
    Ok(report.trim_end().to_string())
}

/// Reads member tags: `member_id,tag,weight` rows (a member's rows may be anywhere; weights
/// of one tag add up). Errors name the line and field.
pub fn read_tags(path: &Path) -> anyhow::Result<Vec<leadrouter_models::segments::Member>> {
    let at = |line: u64, msg: String| anyhow::anyhow!("{}:{line}: {msg}", path.display());
    let mut by: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>> =
        Default::default();
    for item in csv_records(path, &["member_id", "tag", "weight"])? {
        let (line, rec) = item?;
        for (i, field) in [(0, "member_id"), (1, "tag")] {
            if rec[i].is_empty() || rec[i].len() > 128 {
                return Err(at(line, format!("{field}: must be 1..=128 bytes")));
            }
        }
        let w: f64 = rec[2]
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| {
                at(
                    line,
                    format!("weight: must be a finite number >= 0, got {:?}", &rec[2]),
                )
            })?;
        *by.entry(rec[0].to_string())
            .or_default()
            .entry(rec[1].to_string())
            .or_default() += w;
    }
    Ok(by
        .into_iter()
        .map(|(member_id, tags)| leadrouter_models::segments::Member {
            member_id,
            tags: tags.into_iter().collect(),
        })
        .collect())
}

/// Clusters members into `k` segments; writes the artifact to `out` and, when asked, each
/// member's segment (`member_id,segment`). Returns a summary.
pub fn fit_segments(
    tags: &Path,
    k: usize,
    seed: u64,
    out: &Path,
    assignments: Option<&Path>,
) -> anyhow::Result<String> {
    let members = read_tags(tags)?;
    let name = tags.file_name().map_or_else(
        || tags.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let s = leadrouter_models::segments::Segments::fit(&members, k, seed, vec![name])
        .map_err(|e| anyhow::anyhow!("{}: {e}", tags.display()))?;
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, s.to_json()).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}", out.display()))?;
    if let Some(path) = assignments {
        let mut w = String::from("member_id,segment\n");
        for m in &members {
            w.push_str(&format!("{},{}\n", m.member_id, s.assign(&m.tags)));
        }
        std::fs::write(path, w).with_context(|| format!("{}", path.display()))?;
    }
    let mut summary = format!(
        "{}: {} — {} members, {} tags, {} segments (sizes {:?})",
        out.display(),
        s.meta.version,
        members.len(),
        s.vocabulary.len(),
        k,
        s.sizes
    );
    for (i, c) in s.centroids.iter().enumerate() {
        let mut top: Vec<(usize, f64)> = c.iter().copied().enumerate().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let names: Vec<String> = top
            .iter()
            .take(3)
            .filter(|(_, w)| *w > 0.05)
            .map(|(j, w)| format!("{} {:.2}", s.vocabulary[*j], w))
            .collect();
        summary.push_str(&format!("\n  segment {i}: {}", names.join(", ")));
    }
    Ok(summary)
}
