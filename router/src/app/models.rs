//! `leadrouter models preference`: learn the regional preference matrix from an orders CSV;
//! and loading the learned artifacts into a running engine (at start and on SIGHUP).
//!
//! The orders CSV has the header `order_id,region_code,category,amount_cents,occurred_at`:
//! region codes are GB/T 2260 (6 or 12 digits), categories those of the network, amounts
//! integer cents >= 0, times RFC 3339 (`2026-11-28T10:00:00+08:00`) or Unix milliseconds.
//! Errors name the file, the line and the field.

use crate::catalog::{Network, NetworkFiles, RegionTree, demo_files};
use crate::engine::Engine;
use anyhow::Context;
use leadrouter_models::preference_fit::{FitConfig, OrderRow, PreferenceModel};
use std::path::Path;
use std::sync::Arc;

/// Reads an orders CSV against a network's categories.
pub fn read_orders(path: &Path, net: &Network) -> anyhow::Result<Vec<OrderRow>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let at = |line: u64, msg: String| anyhow::anyhow!("{}:{line}: {msg}", path.display());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| at(1, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let want = [
        "order_id",
        "region_code",
        "category",
        "amount_cents",
        "occurred_at",
    ];
    if header != want {
        return Err(at(
            1,
            format!(
                "header must be {}, got {}",
                want.join(","),
                header.join(",")
            ),
        ));
    }
    let regions = net.regions();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| at(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
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

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("must be RFC 3339 or Unix milliseconds, got {s:?}"))
}

/// What to learn from.
#[derive(Debug, Clone)]
pub struct PreferenceArgs<'a> {
    pub orders: &'a Path,
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
    let orders = read_orders(args.orders, &net)?;
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
    let model = PreferenceModel::fit(net.categories(), &orders, &cfg, vec![input])
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.orders.display()))?;
    net.check_learned(&model).map_err(anyhow::Error::msg)?;
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
    let model = PreferenceModel::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Arc::new(model))
}

/// Reads the artifact at `path` and puts it in service; on any error the model in service
/// stays and the error names the file. Returns the new version.
pub fn install_preference(engine: &Engine, path: &Path) -> anyhow::Result<String> {
    let model = load_preference(path)?;
    let version = model.meta.version.clone();
    engine
        .set_preference_model(Some(model))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(version)
}
