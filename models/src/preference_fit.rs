//! Learning the regional preference matrix from what sold, where and when.
//!
//! Each order counts for its region and every ancestor (district → city → province →
//! nationwide, by GB/T 2260 code arithmetic), weighted by `2^(−age / half_life)` so that stale
//! purchases fade. Shares are shrunk up the tree: a region's share of category c is
//! `(n_c + κ · parent_c) / (N + κ)`, where n_c is its decayed count of c, N its decayed total and
//! parent_c its parent's (shrunk) share; the nationwide row shrinks towards uniform. A region with
//! little data thus looks like its parent, and one with much data like itself. The matrix value is
//! the share relative to the row's favourite category (1 = the region's favourite), as in the
//! shipped matrix.
//!
//! The result is a versioned artifact ([`PreferenceModel`]) with its metadata: inputs, time
//! range, parameters and metrics. It is written and read as JSON; reading checks the shape and
//! every value, and names what is wrong.

use crate::preference::{NATIONWIDE, PreferenceMatrix};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Artifact format version of this file layout.
pub const FORMAT: u32 = 1;
const DAY_MS: f64 = 86_400_000.0;

/// One order as the fit sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRow {
    /// 12-digit region code of where it sold (a district, or coarser when that is all known).
    pub region: u64,
    /// Category index.
    pub category: usize,
    pub amount_cents: i64,
    pub at_ms: i64,
}

/// How to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    pub half_life_days: f64,
    /// κ: how many (decayed) orders a region needs before its own mix outweighs its parent's.
    pub shrinkage: f64,
    /// Ages are measured back from here; later orders are refused.
    pub as_of_ms: i64,
    /// Weight orders by amount instead of counting them.
    pub by_amount: bool,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            half_life_days: 90.0,
            shrinkage: 30.0,
            as_of_ms: 0,
            by_amount: false,
        }
    }
}

/// What an artifact says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// `preference`.
    pub kind: String,
    pub format: u32,
    /// Names the artifact in every decision that used it.
    pub version: String,
    pub created_at_ms: i64,
    /// Where the training data came from (file names, as given).
    pub inputs: Vec<String>,
    /// First and last order used (Unix ms).
    pub from_ms: i64,
    pub to_ms: i64,
    pub params: BTreeMap<String, f64>,
    pub metrics: BTreeMap<String, f64>,
}

impl ModelMeta {
    /// Checks an artifact's kind, format and version; the message names the key.
    pub fn check(&self, kind: &str, format: u32) -> Result<(), ModelError> {
        if self.kind != kind {
            return Err(err(format!("kind: expected {kind:?}, got {:?}", self.kind)));
        }
        if self.format != format {
            return Err(err(format!(
                "format: this version reads format {format}, got {}",
                self.format
            )));
        }
        if self.version.is_empty() || self.version.len() > 128 {
            return Err(err("version: must be 1..=128 bytes"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    /// 6- or 12-digit code, or `nationwide`.
    region: String,
    values: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(flatten)]
    meta: ModelMeta,
    categories: Vec<String>,
    rows: Vec<Row>,
}

/// A learned preference matrix with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceModel {
    pub matrix: PreferenceMatrix,
    pub meta: ModelMeta,
}

/// What is wrong with a fit's input or an artifact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

fn err(s: impl Into<String>) -> ModelError {
    ModelError(s.into())
}

/// The region's chain, most specific first, ending with nationwide.
pub fn chain_of(code: u64) -> Vec<u64> {
    let province = code / 10_000_000_000 * 10_000_000_000;
    let city = code / 100_000_000 * 100_000_000;
    let district = code / 1_000_000 * 1_000_000;
    let mut out = Vec::with_capacity(4);
    for c in [district, city, province] {
        if c != NATIONWIDE && out.last() != Some(&c) {
            out.push(c);
        }
    }
    out.push(NATIONWIDE);
    out
}

fn code_text(code: u64) -> String {
    if code == NATIONWIDE {
        "nationwide".into()
    } else {
        format!("{:06}", code / 1_000_000)
    }
}

fn parse_code(s: &str) -> Result<u64, String> {
    if s == "nationwide" {
        return Ok(NATIONWIDE);
    }
    if !(s.len() == 6 || s.len() == 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "must be a 6- or 12-digit region code or \"nationwide\", got {s:?}"
        ));
    }
    let n: u64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    Ok(if s.len() == 6 { n * 1_000_000 } else { n })
}

impl PreferenceModel {
    /// Fits the matrix to `orders` over `categories`.
    pub fn fit(
        categories: &[String],
        orders: &[OrderRow],
        cfg: &FitConfig,
        inputs: Vec<String>,
    ) -> Result<Self, ModelError> {
        let k = categories.len();
        if k == 0 {
            return Err(err("categories: at least one is needed"));
        }
        if !cfg.half_life_days.is_finite() || cfg.half_life_days <= 0.0 {
            return Err(err(format!(
                "half_life_days: must be > 0, got {}",
                cfg.half_life_days
            )));
        }
        if !cfg.shrinkage.is_finite() || cfg.shrinkage < 0.0 {
            return Err(err(format!(
                "shrinkage: must be >= 0, got {}",
                cfg.shrinkage
            )));
        }
        if orders.is_empty() {
            return Err(err("orders: none to learn from"));
        }
        let mut counts: HashMap<u64, Vec<f64>> = HashMap::new();
        let (mut from, mut to) = (i64::MAX, i64::MIN);
        let mut total_weight = 0.0;
        for (i, o) in orders.iter().enumerate() {
            if o.category >= k {
                return Err(err(format!(
                    "orders[{i}]: category {} out of range",
                    o.category
                )));
            }
            if o.at_ms > cfg.as_of_ms {
                return Err(err(format!(
                    "orders[{i}]: at {} ms is after as_of ({} ms)",
                    o.at_ms, cfg.as_of_ms
                )));
            }
            if o.amount_cents < 0 {
                return Err(err(format!("orders[{i}]: amount_cents must be >= 0")));
            }
            let age_days = (cfg.as_of_ms - o.at_ms) as f64 / DAY_MS;
            let decay = (-std::f64::consts::LN_2 * age_days / cfg.half_life_days).exp();
            let w = decay
                * if cfg.by_amount {
                    o.amount_cents as f64 / 100.0
                } else {
                    1.0
                };
            total_weight += w;
            from = from.min(o.at_ms);
            to = to.max(o.at_ms);
            for node in chain_of(o.region) {
                counts.entry(node).or_insert_with(|| vec![0.0; k])[o.category] += w;
            }
        }
        // Shrink from the top down: parents before children (fewer trailing zeros first).
        let mut nodes: Vec<u64> = counts.keys().copied().collect();
        nodes.sort_by_key(|&c| (chain_of(c).len(), c));
        let mut shares: HashMap<u64, Vec<f64>> = HashMap::with_capacity(nodes.len());
        let uniform = vec![1.0 / k as f64; k];
        for node in &nodes {
            let chain = chain_of(*node);
            let parent = chain
                .get(1)
                .and_then(|p| shares.get(p))
                .unwrap_or(&uniform)
                .clone();
            let n = &counts[node];
            let total: f64 = n.iter().sum();
            let share: Vec<f64> = (0..k)
                .map(|c| (n[c] + cfg.shrinkage * parent[c]) / (total + cfg.shrinkage))
                .collect();
            shares.insert(*node, share);
        }
        let rows: Vec<(u64, Vec<f32>)> = nodes
            .iter()
            .map(|node| {
                let s = &shares[node];
                let max = s.iter().copied().fold(0.0, f64::max);
                let values = s
                    .iter()
                    .map(|v| if max > 0.0 { (v / max) as f32 } else { 0.0 })
                    .collect();
                (*node, values)
            })
            .collect();
        let matrix = PreferenceMatrix::new(categories.to_vec(), rows.clone())
            .map_err(|e| err(e.to_string()))?;
        let version = {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for (code, values) in &rows {
                for b in code
                    .to_le_bytes()
                    .into_iter()
                    .chain(values.iter().flat_map(|v| v.to_le_bytes()))
                {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
            format!("pref-{h:016x}")
        };
        let mut params = BTreeMap::new();
        params.insert("half_life_days".into(), cfg.half_life_days);
        params.insert("shrinkage".into(), cfg.shrinkage);
        params.insert("as_of_ms".into(), cfg.as_of_ms as f64);
        params.insert("by_amount".into(), if cfg.by_amount { 1.0 } else { 0.0 });
        let mut metrics = BTreeMap::new();
        metrics.insert("orders".into(), orders.len() as f64);
        metrics.insert("decayed_weight".into(), total_weight);
        metrics.insert("regions".into(), rows.len() as f64);
        Ok(Self {
            matrix,
            meta: ModelMeta {
                kind: "preference".into(),
                format: FORMAT,
                version,
                created_at_ms: cfg.as_of_ms,
                inputs,
                from_ms: from,
                to_ms: to,
                params,
                metrics,
            },
        })
    }

    /// The artifact as JSON (rows sorted by region).
    pub fn to_json(&self) -> String {
        let file = File {
            meta: self.meta.clone(),
            categories: self.matrix.categories().to_vec(),
            rows: self
                .matrix
                .rows()
                .into_iter()
                .map(|(code, values)| Row {
                    region: code_text(code),
                    values,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Reads an artifact, checking its kind, format, shape and every value.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let f: File = serde_json::from_str(text)
            .map_err(|e| err(format!("not a preference artifact: {e}")))?;
        f.meta.check("preference", FORMAT)?;
        let mut rows = Vec::with_capacity(f.rows.len());
        for (i, r) in f.rows.iter().enumerate() {
            let code = parse_code(&r.region).map_err(|e| err(format!("rows[{i}].region: {e}")))?;
            rows.push((code, r.values.clone()));
        }
        if !rows.iter().any(|(c, _)| *c == NATIONWIDE) {
            return Err(err(
                "rows: a nationwide row is needed (every lookup ends there)",
            ));
        }
        let matrix =
            PreferenceMatrix::new(f.categories, rows).map_err(|e| err(format!("rows: {e}")))?;
        Ok(Self {
            matrix,
            meta: f.meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> Vec<String> {
        ["shoes", "kids", "sports"].map(String::from).to_vec()
    }

    /// A tiny deterministic generator (xorshift) for test data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn pick(&mut self, w: &[f64]) -> usize {
            let t: f64 = w.iter().sum();
            let mut x = self.next() * t;
            for (i, v) in w.iter().enumerate() {
                if x < *v {
                    return i;
                }
                x -= v;
            }
            w.len() - 1
        }
    }

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    fn orders(region: u64, mix: &[f64], n: usize, rng: &mut Rng, age_days: i64) -> Vec<OrderRow> {
        (0..n)
            .map(|_| OrderRow {
                region,
                category: rng.pick(mix),
                amount_cents: 10_000,
                at_ms: NOW - age_days * DAY - (rng.next() * DAY as f64) as i64,
            })
            .collect()
    }

    #[test]
    fn a_planted_preference_is_recovered_and_thin_regions_lean_on_their_parents() {
        let mut rng = Rng(7);
        let gz_tianhe = 440106000000; // Guangzhou districts: shoes
        let gz_yuexiu = 440104000000;
        let sz_futian = 440304000000; // Shenzhen: kids
        let mut all = Vec::new();
        all.extend(orders(gz_tianhe, &[0.7, 0.2, 0.1], 3000, &mut rng, 10));
        all.extend(orders(gz_yuexiu, &[0.7, 0.2, 0.1], 3000, &mut rng, 10));
        all.extend(orders(sz_futian, &[0.1, 0.8, 0.1], 3000, &mut rng, 10));
        // A thin district of Guangzhou: three sports orders only.
        let thin = 440113000000;
        all.extend(orders(thin, &[0.0, 0.0, 1.0], 3, &mut rng, 10));
        let m = PreferenceModel::fit(
            &cats(),
            &all,
            &FitConfig {
                as_of_ms: NOW,
                ..Default::default()
            },
            vec!["t".into()],
        )
        .unwrap();
        let row = |code: u64| m.matrix.row(code).unwrap().to_vec();
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        assert_eq!(argmax(&row(gz_tianhe)), 0);
        assert_eq!(argmax(&row(sz_futian)), 1);
        // Tianhe's kids share relative to shoes ≈ 0.2 / 0.7.
        assert!(
            (row(gz_tianhe)[1] - 0.2 / 0.7).abs() < 0.06,
            "{:?}",
            row(gz_tianhe)
        );
        // The thin district keeps Guangzhou's taste (shoes first), nudged towards sports.
        let t = row(thin);
        assert_eq!(argmax(&t), 0, "{t:?}");
        assert!(t[2] > row(gz_tianhe)[2]);
        // Every row: values in [0, 1], the favourite at 1.
        for (_, v) in m.matrix.rows() {
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
            assert!(v.contains(&1.0));
        }
        assert_eq!(m.meta.metrics["orders"], all.len() as f64);
        assert!(m.meta.from_ms < m.meta.to_ms && m.meta.to_ms <= NOW);
    }

    #[test]
    fn stale_purchases_fade() {
        let mut rng = Rng(9);
        let region = 330106000000;
        let mut all = orders(region, &[1.0, 0.0, 0.0], 500, &mut rng, 365);
        all.extend(orders(region, &[0.0, 1.0, 0.0], 200, &mut rng, 5));
        let fit = |half_life_days| {
            let cfg = FitConfig {
                half_life_days,
                as_of_ms: NOW,
                ..Default::default()
            };
            PreferenceModel::fit(&cats(), &all, &cfg, vec![])
                .unwrap()
                .matrix
                .row(region)
                .unwrap()
                .to_vec()
        };
        let short = fit(30.0);
        let long = fit(100_000.0);
        assert!(short[1] > short[0], "recent kids should win: {short:?}");
        assert!(
            long[0] > long[1],
            "without decay last year's shoes win: {long:?}"
        );
    }

    #[test]
    fn artifacts_round_trip_and_bad_files_are_named() {
        let mut rng = Rng(3);
        let all = orders(440106000000, &[0.5, 0.3, 0.2], 200, &mut rng, 3);
        let m = PreferenceModel::fit(
            &cats(),
            &all,
            &FitConfig {
                as_of_ms: NOW,
                ..Default::default()
            },
            vec!["orders.csv".into()],
        )
        .unwrap();
        let text = m.to_json();
        let back = PreferenceModel::from_json(&text).unwrap();
        assert_eq!(back.meta, m.meta);
        assert_eq!(back.matrix.rows(), m.matrix.rows());
        assert!(m.meta.version.starts_with("pref-"));
        let cases = [
            (text.replacen("\"preference\"", "\"propensity\"", 1), "kind"),
            (text.replacen("\"format\": 1", "\"format\": 9", 1), "format"),
            (text.replacen("\"nationwide\"", "\"44\"", 1), "rows["),
            (
                text.replacen("\"sports\"", "\"sports\", \"hats\"", 1),
                "expected one per category",
            ),
            ("{\"kind\": 1}".to_string(), "not a preference artifact"),
        ];
        for (bad, want) in cases {
            let e = PreferenceModel::from_json(&bad).unwrap_err().0;
            assert!(e.contains(want), "{want}: {e}");
        }
        // Edits of the parsed file: a value out of range, no nationwide row.
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            f(&mut v);
            PreferenceModel::from_json(&v.to_string()).unwrap_err().0
        };
        let e = edit(&|v| v["rows"][0]["values"][0] = serde_json::json!(1.5));
        assert!(e.contains("not a finite number in [0, 1]"), "{e}");
        let e = edit(&|v| {
            let rows = v["rows"].as_array_mut().unwrap();
            rows.retain(|r| r["region"] != "nationwide");
        });
        assert!(e.contains("nationwide row"), "{e}");
    }

    #[test]
    fn bad_fits_are_refused() {
        let o = OrderRow {
            region: 440106000000,
            category: 0,
            amount_cents: 1,
            at_ms: NOW,
        };
        let cfg = FitConfig {
            as_of_ms: NOW,
            ..Default::default()
        };
        assert!(
            PreferenceModel::fit(&cats(), &[], &cfg, vec![])
                .unwrap_err()
                .0
                .contains("none")
        );
        let late = OrderRow {
            at_ms: NOW + 1,
            ..o
        };
        assert!(
            PreferenceModel::fit(&cats(), &[late], &cfg, vec![])
                .unwrap_err()
                .0
                .contains("after as_of")
        );
        let wrong = OrderRow { category: 7, ..o };
        assert!(
            PreferenceModel::fit(&cats(), &[wrong], &cfg, vec![])
                .unwrap_err()
                .0
                .contains("category 7")
        );
        let c = FitConfig {
            half_life_days: 0.0,
            ..cfg
        };
        assert!(
            PreferenceModel::fit(&cats(), &[o], &c, vec![])
                .unwrap_err()
                .0
                .contains("half_life_days")
        );
    }

    #[test]
    fn chains_by_code() {
        assert_eq!(
            chain_of(440106000000),
            vec![440106000000, 440100000000, 440000000000, 0]
        );
        assert_eq!(chain_of(440100000000), vec![440100000000, 440000000000, 0]);
        assert_eq!(chain_of(440000000000), vec![440000000000, 0]);
    }
}
