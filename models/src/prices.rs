//! Guides' capacity prices for the `dual_price` policy: the Lagrange multipliers β of each day's
//! capacity constraints in the assignment of its leads to guides, valued by the policy's own
//! estimates ([`crate::dual::bound`]). Days are taken in order, each warm-started from the prices
//! of the day before (and the first from an earlier artifact, when given), so the prices in the
//! artifact are the last day's: what tomorrow's capacity is likely worth.

use crate::dual::{DualOptions, bound};
use crate::instance::Instance;
use crate::preference_fit::{ModelError, ModelMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Artifact format version.
pub const FORMAT: u32 = 1;

/// One day to learn from: its instance, with guide j of the instance named `guides[j]`.
#[derive(Debug, Clone)]
pub struct PriceDay<'a> {
    /// The business day, YYYY-MM-DD.
    pub day: String,
    pub instance: &'a Instance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(flatten)]
    meta: ModelMeta,
    prices: BTreeMap<String, f64>,
}

/// Learned capacity prices by guide id.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceModel {
    pub meta: ModelMeta,
    pub prices: BTreeMap<String, f64>,
}

fn err(s: impl Into<String>) -> ModelError {
    ModelError(s.into())
}

impl PriceModel {
    /// Learns from `days` (in order) whose instances share the guides `guides`; `warm` starts
    /// the first day from earlier prices. `inputs` names the history.
    pub fn learn(
        days: &[PriceDay<'_>],
        guides: &[&str],
        warm: Option<&PriceModel>,
        opts: DualOptions,
        created_at_ms: i64,
        inputs: Vec<String>,
    ) -> Result<Self, ModelError> {
        let Some(last) = days.last() else {
            return Err(err("days: none to learn from"));
        };
        for d in days {
            if d.instance.guides() != guides.len() {
                return Err(err(format!(
                    "days.{}: the instance has {} guides, {} are named",
                    d.day,
                    d.instance.guides(),
                    guides.len()
                )));
            }
        }
        let mut beta: Option<Vec<f64>> = warm.map(|w| {
            guides
                .iter()
                .map(|g| w.prices.get(*g).copied().unwrap_or(0.0))
                .collect()
        });
        let mut last_bound = None;
        for d in days {
            let b = bound(d.instance, beta.as_deref(), opts);
            beta = Some(b.beta.clone());
            last_bound = Some(b);
        }
        let b = last_bound.unwrap_or_else(|| unreachable!("days is not empty"));
        let prices: BTreeMap<String, f64> = guides
            .iter()
            .zip(&b.beta)
            .filter(|(_, p)| **p > 0.0)
            .map(|(g, p)| ((*g).to_string(), *p))
            .collect();
        let mut metrics = BTreeMap::new();
        metrics.insert("days".to_string(), days.len() as f64);
        metrics.insert("leads".to_string(), last.instance.leads() as f64);
        metrics.insert("edges".to_string(), last.instance.edge_count() as f64);
        metrics.insert("upper".to_string(), b.upper);
        metrics.insert("lower".to_string(), b.lower);
        metrics.insert("gap".to_string(), b.gap());
        metrics.insert("iterations".to_string(), b.iterations as f64);
        metrics.insert("priced_guides".to_string(), prices.len() as f64);
        let mut model = Self {
            meta: ModelMeta {
                kind: "prices".into(),
                format: FORMAT,
                version: String::new(),
                created_at_ms,
                inputs,
                from_ms: 0,
                to_ms: 0,
                params: BTreeMap::from([
                    ("max_iterations".to_string(), opts.max_iterations as f64),
                    ("gap".to_string(), opts.gap),
                ]),
                metrics,
            },
            prices,
        };
        model.meta.version = model.digest(&last.day);
        Ok(model)
    }

    /// A guide's price, if the model names it (a guide it does not name has price 0 on the
    /// day learned: its capacity was not short).
    pub fn price(&self, guide: &str) -> Option<f64> {
        self.prices.get(guide).copied()
    }

    fn digest(&self, day: &str) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (g, p) in &self.prices {
            eat(g.as_bytes());
            eat(&p.to_le_bytes());
        }
        format!("prices-{day}-{h:016x}")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&File {
            meta: self.meta.clone(),
            prices: self.prices.clone(),
        })
        .unwrap_or_default()
    }

    /// Reads an artifact, checking kind, format and every price (finite, >= 0).
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let f: File =
            serde_json::from_str(text).map_err(|e| err(format!("not a prices artifact: {e}")))?;
        f.meta.check("prices", FORMAT)?;
        for (g, p) in &f.prices {
            if !(p.is_finite() && *p >= 0.0) {
                return Err(err(format!(
                    "prices.{g}: must be a finite number >= 0, got {p}"
                )));
            }
        }
        Ok(Self {
            meta: f.meta,
            prices: f.prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DualOptions {
        DualOptions {
            max_iterations: 200,
            gap: 0.0,
            threads: 1,
        }
    }

    #[test]
    fn a_short_guide_gets_a_price_and_a_roomy_one_none() {
        // Guide a (capacity 1) is everyone's favourite; guide b has room for all.
        let mut inst = Instance::new(vec![1, 10]);
        for v in [9.0, 8.0, 7.0] {
            inst.push_lead([(0, v), (1, 2.0)]).unwrap();
        }
        let days = [PriceDay {
            day: "2026-12-01".into(),
            instance: &inst,
        }];
        let m = PriceModel::learn(&days, &["a", "b"], None, opts(), 0, vec!["x".into()]).unwrap();
        // β_a lies between the second-best lead's gain (8 − 2) and the best's (9 − 2).
        let pa = m.price("a").unwrap();
        assert!((6.0 - 1e-3..=7.0 + 1e-3).contains(&pa), "{m:?}");
        assert_eq!(m.price("b"), None);
        assert!(m.meta.version.starts_with("prices-2026-12-01-"));
        let back = PriceModel::from_json(&m.to_json()).unwrap();
        assert_eq!(back.prices.len(), 1);
        assert!((back.price("a").unwrap() - pa).abs() < 1e-9);
        // Warm from the learned prices: no step needed to be as good.
        let again = PriceModel::learn(
            &days,
            &["a", "b"],
            Some(&m),
            DualOptions {
                max_iterations: 0,
                ..opts()
            },
            0,
            vec![],
        )
        .unwrap();
        assert!((again.meta.metrics["upper"] - m.meta.metrics["upper"]).abs() < 1e-6);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let inst = Instance::new(vec![1, 1]);
        let day = [PriceDay {
            day: "d".into(),
            instance: &inst,
        }];
        let e = PriceModel::learn(&day, &["a"], None, opts(), 0, vec![]).unwrap_err();
        assert!(e.0.contains("2 guides, 1 are named"), "{e}");
        assert!(PriceModel::learn(&[], &[], None, opts(), 0, vec![]).is_err());
        let bad = r#"{"kind":"prices","format":1,"version":"v","created_at_ms":0,"inputs":[],"from_ms":0,"to_ms":0,"params":{},"metrics":{},"prices":{"g":-1}}"#;
        let e = PriceModel::from_json(bad).unwrap_err();
        assert!(e.0.contains("prices.g"), "{e}");
    }
}
