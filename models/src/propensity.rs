//! Conversion propensity: the probability that a routed lead orders within N days, by logistic
//! regression (linfa-logistic) on routing features. Examples are split by time (the last share
//! validates), features are standardised on the training part, and the evaluation reports AUC,
//! log-loss and a calibration table. The artifact is versioned JSON like the preference model's,
//! with the per-guide conversion rates the `guide_rate` feature reads at serving time.

use crate::preference_fit::{ModelError, ModelMeta};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Artifact format version.
pub const FORMAT: u32 = 1;

/// Channels, in the order of their one-hot features (the contract's names).
pub const CHANNELS: [&str; 7] = [
    "MINI_PROGRAM",
    "LIVESTREAM",
    "ECOMMERCE",
    "PARTNER",
    "BOOKING",
    "COMMUNITY",
    "STORE_QR",
];

/// Number of features.
pub const FEATURES: usize = 9 + CHANNELS.len();

/// Feature names, in vector order.
pub fn feature_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "log1p_distance_km",
        "no_distance",
        "preference",
        "tier",
        "guide_rate",
        "direct_store",
        "outlet_store",
        "hour_sin",
        "hour_cos",
    ]
    .map(String::from)
    .to_vec();
    v.extend(CHANNELS.iter().map(|c| format!("channel_{c}")));
    v
}

/// What routing knows of a (lead, guide) pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    pub distance_km: Option<f64>,
    /// Regional preference match in [0, 1].
    pub preference: f64,
    /// 1..=5.
    pub tier: u8,
    /// The guide's past conversion rate (smoothed).
    pub guide_rate: f64,
    pub direct_store: bool,
    pub outlet_store: bool,
    /// Local hour 0..=23.
    pub hour: u32,
    /// Index into [`CHANNELS`].
    pub channel: usize,
}

impl Inputs {
    /// The feature vector, in [`feature_names`] order.
    pub fn features(&self) -> [f64; FEATURES] {
        let angle = std::f64::consts::TAU * f64::from(self.hour % 24) / 24.0;
        let mut v = [0.0; FEATURES];
        v[..9].copy_from_slice(&[
            self.distance_km.map_or(0.0, |d| d.max(0.0).ln_1p()),
            f64::from(u8::from(self.distance_km.is_none())),
            self.preference,
            f64::from(self.tier.clamp(1, 5)),
            self.guide_rate,
            f64::from(u8::from(self.direct_store)),
            f64::from(u8::from(self.outlet_store)),
            angle.sin(),
            angle.cos(),
        ]);
        if self.channel < CHANNELS.len() {
            v[9 + self.channel] = 1.0;
        }
        v
    }
}

/// A propensity model with one lead's channel and hour already applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeadScorer {
    base: f64,
    /// Weights of the candidate's features: log1p distance, no distance, preference, tier,
    /// guide rate, direct store, outlet store.
    w: [f64; 7],
}

impl LeadScorer {
    /// The probability of conversion with a candidate; `log1p_km` is `ln(1 + km)` of the
    /// distance (or `None` without coordinates), which callers may compute once per store.
    #[allow(clippy::too_many_arguments)]
    pub fn predict(
        &self,
        log1p_km: Option<f64>,
        preference: f64,
        tier: u8,
        guide_rate: f64,
        direct_store: bool,
        outlet_store: bool,
    ) -> f64 {
        let w = &self.w;
        let z = self.base
            + match log1p_km {
                Some(d) => w[0] * d,
                None => w[1],
            }
            + w[2] * preference
            + w[3] * f64::from(tier.clamp(1, 5))
            + w[4] * guide_rate
            + if direct_store { w[5] } else { 0.0 }
            + if outlet_store { w[6] } else { 0.0 };
        1.0 / (1.0 + (-z).exp())
    }
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub inputs: Inputs,
    pub converted: bool,
    /// When the lead was routed (the split is by time).
    pub at_ms: i64,
}

/// How to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct PropensityConfig {
    /// Share of the latest examples kept for validation.
    pub validation_share: f64,
    /// L2 penalty.
    pub l2: f64,
    pub max_iterations: u64,
}

impl Default for PropensityConfig {
    fn default() -> Self {
        Self {
            validation_share: 0.2,
            l2: 1e-3,
            max_iterations: 200,
        }
    }
}

/// One row of a calibration table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub n: u64,
    pub mean_predicted: f64,
    pub observed: f64,
}

/// How well a model does on held-out examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub examples: u64,
    pub base_rate: f64,
    pub auc: f64,
    pub log_loss: f64,
    pub calibration: Vec<CalibrationBin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(flatten)]
    meta: ModelMeta,
    features: Vec<String>,
    means: Vec<f64>,
    scales: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
    /// Smoothed past conversion rate per guide id; `prior_rate` for guides not listed.
    guide_rates: BTreeMap<String, f64>,
    prior_rate: f64,
    validation: Evaluation,
}

/// A fitted propensity model.
#[derive(Debug, Clone, PartialEq)]
pub struct PropensityModel {
    pub meta: ModelMeta,
    means: Vec<f64>,
    scales: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
    /// The weights on raw features (standardisation folded in), for fast scoring.
    folded: [f64; FEATURES],
    folded_intercept: f64,
    pub guide_rates: BTreeMap<String, f64>,
    pub prior_rate: f64,
    pub validation: Evaluation,
}

fn err(s: impl Into<String>) -> ModelError {
    ModelError(s.into())
}

/// Area under the ROC curve by ranks (ties share their mean rank).
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    let sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Evaluates predictions against labels.
pub fn evaluate(predicted: &[f64], labels: &[bool]) -> Evaluation {
    let n = predicted.len().max(1) as f64;
    let log_loss = predicted
        .iter()
        .zip(labels)
        .map(|(p, l)| {
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            if *l { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n;
    let mut bins: Vec<CalibrationBin> = (0..10)
        .map(|b| CalibrationBin {
            from: f64::from(b) / 10.0,
            to: f64::from(b + 1) / 10.0,
            n: 0,
            mean_predicted: 0.0,
            observed: 0.0,
        })
        .collect();
    for (p, l) in predicted.iter().zip(labels) {
        let b = ((p * 10.0).floor() as usize).min(9);
        bins[b].n += 1;
        bins[b].mean_predicted += p;
        bins[b].observed += f64::from(u8::from(*l));
    }
    for b in &mut bins {
        if b.n > 0 {
            b.mean_predicted /= b.n as f64;
            b.observed /= b.n as f64;
        }
    }
    Evaluation {
        examples: predicted.len() as u64,
        base_rate: labels.iter().filter(|l| **l).count() as f64 / n,
        auc: auc(predicted, labels),
        log_loss,
        calibration: bins,
    }
}

impl PropensityModel {
    /// Fits on the earliest examples and validates on the latest `validation_share`.
    pub fn fit(
        examples: &[Example],
        guide_rates: BTreeMap<String, f64>,
        prior_rate: f64,
        cfg: &PropensityConfig,
        inputs: Vec<String>,
        created_at_ms: i64,
    ) -> Result<Self, ModelError> {
        if !(0.0..1.0).contains(&cfg.validation_share) {
            return Err(err(format!(
                "validation_share: must be in [0, 1), got {}",
                cfg.validation_share
            )));
        }
        if !cfg.l2.is_finite() || cfg.l2 < 0.0 {
            return Err(err(format!("l2: must be >= 0, got {}", cfg.l2)));
        }
        let mut ex: Vec<&Example> = examples.iter().collect();
        ex.sort_by_key(|e| e.at_ms);
        let n_valid = ((ex.len() as f64) * cfg.validation_share).round() as usize;
        let n_train = ex.len() - n_valid;
        let train = &ex[..n_train];
        let positives = train.iter().filter(|e| e.converted).count();
        if n_train < 20 || positives == 0 || positives == n_train {
            return Err(err(format!(
                "examples: need at least 20 training examples with both outcomes, got {n_train} with {positives} conversions"
            )));
        }
        let names = feature_names();
        let k = names.len();
        let rows: Vec<[f64; FEATURES]> = ex.iter().map(|e| e.inputs.features()).collect();
        if let Some((i, _)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.iter().any(|v| !v.is_finite()))
        {
            return Err(err(format!(
                "examples[{i}]: a feature is not a finite number"
            )));
        }
        let mut means = vec![0.0; k];
        for r in &rows[..n_train] {
            for (m, v) in means.iter_mut().zip(r) {
                *m += v / n_train as f64;
            }
        }
        let mut scales = vec![0.0; k];
        for r in &rows[..n_train] {
            for ((s, v), m) in scales.iter_mut().zip(r).zip(&means) {
                *s += (v - m) * (v - m) / n_train as f64;
            }
        }
        for s in &mut scales {
            *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let standard = |r: &[f64]| -> Vec<f64> {
            r.iter()
                .zip(&means)
                .zip(&scales)
                .map(|((v, m), s)| (v - m) / s)
                .collect()
        };
        let x = Array2::from_shape_vec(
            (n_train, k),
            rows[..n_train].iter().flat_map(|r| standard(r)).collect(),
        )
        .map_err(|e| err(e.to_string()))?;
        let y: Array1<bool> = train.iter().map(|e| e.converted).collect();
        let dataset = Dataset::new(x, y);
        let fitted = LogisticRegression::default()
            .alpha(cfg.l2)
            .max_iterations(cfg.max_iterations)
            .fit(&dataset)
            .map_err(|e| err(format!("fit: {e}")))?;
        // linfa's parameters give the probability of its `pos` class, which may be `false`:
        // orient them to give the probability of a conversion.
        let flip = !fitted.labels().pos.class;
        let sign = if flip { -1.0 } else { 1.0 };
        let model = Self {
            meta: ModelMeta {
                kind: "propensity".into(),
                format: FORMAT,
                version: String::new(),
                created_at_ms,
                inputs,
                from_ms: ex.first().map_or(0, |e| e.at_ms),
                to_ms: ex.last().map_or(0, |e| e.at_ms),
                params: BTreeMap::from([
                    ("validation_share".into(), cfg.validation_share),
                    ("l2".into(), cfg.l2),
                ]),
                metrics: BTreeMap::new(),
            },
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
            folded: [0.0; FEATURES],
            folded_intercept: 0.0,
            means,
            scales,
            guide_rates,
            prior_rate,
            validation: Evaluation {
                examples: 0,
                base_rate: 0.0,
                auc: 0.5,
                log_loss: 0.0,
                calibration: vec![],
            },
        };
        let mut model = model.fold();
        let on = |part: &[&Example]| {
            let p: Vec<f64> = part.iter().map(|e| model.predict(&e.inputs)).collect();
            let l: Vec<bool> = part.iter().map(|e| e.converted).collect();
            evaluate(&p, &l)
        };
        let train_eval = on(train);
        let valid = &ex[n_train..];
        model.validation = if valid.is_empty() {
            train_eval.clone()
        } else {
            on(valid)
        };
        let m = &mut model.meta.metrics;
        m.insert("train_examples".into(), n_train as f64);
        m.insert("validation_examples".into(), valid.len() as f64);
        m.insert("train_auc".into(), train_eval.auc);
        m.insert("validation_auc".into(), model.validation.auc);
        m.insert("validation_log_loss".into(), model.validation.log_loss);
        model.meta.version = {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for v in model
                .weights
                .iter()
                .chain([&model.intercept])
                .chain(&model.means)
            {
                for b in v.to_le_bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
            format!("prop-{h:016x}")
        };
        Ok(model)
    }

    /// The probability of conversion for these inputs.
    pub fn predict(&self, inputs: &Inputs) -> f64 {
        let f = inputs.features();
        let z: f64 =
            self.folded_intercept + f.iter().zip(&self.folded).map(|(v, w)| v * w).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// The part of the score that depends on the lead alone (channel and hour), for scoring
    /// many candidates of one lead: [`LeadScorer::predict`] equals [`PropensityModel::predict`].
    pub fn for_lead(&self, channel: usize, hour: u32) -> LeadScorer {
        let lead = Inputs {
            distance_km: Some(0.0),
            preference: 0.0,
            tier: 0,
            guide_rate: 0.0,
            direct_store: false,
            outlet_store: false,
            hour,
            channel,
        }
        .features();
        let base = self.folded_intercept
            + lead[7..]
                .iter()
                .zip(&self.folded[7..])
                .map(|(v, w)| v * w)
                .sum::<f64>();
        let mut w = [0.0; 7];
        w.copy_from_slice(&self.folded[..7]);
        LeadScorer { base, w }
    }

    /// Folds the standardisation into the weights: w'_j = w_j / s_j, b' = b − Σ w_j m_j / s_j.
    fn fold(mut self) -> Self {
        let mut b = self.intercept;
        for j in 0..FEATURES {
            self.folded[j] = self.weights[j] / self.scales[j];
            b -= self.weights[j] * self.means[j] / self.scales[j];
        }
        self.folded_intercept = b;
        self
    }

    /// A guide's smoothed past conversion rate (the prior for guides without history).
    pub fn guide_rate(&self, guide_id: &str) -> f64 {
        self.guide_rates
            .get(guide_id)
            .copied()
            .unwrap_or(self.prior_rate)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&File {
            meta: self.meta.clone(),
            features: feature_names(),
            means: self.means.clone(),
            scales: self.scales.clone(),
            weights: self.weights.clone(),
            intercept: self.intercept,
            guide_rates: self.guide_rates.clone(),
            prior_rate: self.prior_rate,
            validation: self.validation.clone(),
        })
        .unwrap_or_default()
    }

    /// Reads an artifact, checking kind, format, feature layout and every number.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let f: File = serde_json::from_str(text)
            .map_err(|e| err(format!("not a propensity artifact: {e}")))?;
        f.meta.check("propensity", FORMAT)?;
        let names = feature_names();
        if f.features != names {
            return Err(err(format!(
                "features: expected [{}], got [{}]",
                names.join(", "),
                f.features.join(", ")
            )));
        }
        for (name, v) in [
            ("means", &f.means),
            ("scales", &f.scales),
            ("weights", &f.weights),
        ] {
            if v.len() != names.len() {
                return Err(err(format!(
                    "{name}: expected {} values (one per feature), got {}",
                    names.len(),
                    v.len()
                )));
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(err(format!("{name}: {x} is not a finite number")));
            }
        }
        if f.scales.iter().any(|s| *s <= 0.0) {
            return Err(err("scales: must be > 0"));
        }
        if !f.intercept.is_finite() {
            return Err(err("intercept: not a finite number"));
        }
        for (g, r) in f
            .guide_rates
            .iter()
            .chain([(&"prior_rate".to_string(), &f.prior_rate)])
        {
            if !r.is_finite() || !(0.0..=1.0).contains(r) {
                return Err(err(format!("guide_rates.{g}: must be in [0, 1], got {r}")));
            }
        }
        Ok(Self {
            meta: f.meta,
            means: f.means,
            scales: f.scales,
            weights: f.weights,
            intercept: f.intercept,
            folded: [0.0; FEATURES],
            folded_intercept: 0.0,
            guide_rates: f.guide_rates,
            prior_rate: f.prior_rate,
            validation: f.validation,
        }
        .fold())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The planted truth: nearer, better matched, senior guides convert more; livestream more.
    fn truth(i: &Inputs) -> f64 {
        let z = -1.5 - 0.8 * i.distance_km.unwrap_or(10.0).ln_1p()
            + 2.0 * i.preference
            + 0.3 * f64::from(i.tier)
            + if i.channel == 1 { 0.7 } else { 0.0 };
        1.0 / (1.0 + (-z).exp())
    }

    fn examples(n: usize, seed: u64) -> Vec<Example> {
        let mut r = Rng(seed);
        (0..n)
            .map(|k| {
                let inputs = Inputs {
                    distance_km: Some(r.next() * 30.0),
                    preference: r.next(),
                    tier: 1 + (r.next() * 5.0) as u8,
                    guide_rate: 0.2,
                    direct_store: r.next() < 0.5,
                    outlet_store: r.next() < 0.2,
                    hour: (r.next() * 24.0) as u32,
                    channel: (r.next() * 7.0) as usize,
                };
                Example {
                    converted: r.next() < truth(&inputs),
                    inputs,
                    at_ms: k as i64 * 1000,
                }
            })
            .collect()
    }

    #[test]
    fn a_planted_propensity_ranks_leads_like_the_truth() {
        let ex = examples(6000, 11);
        let m = PropensityModel::fit(
            &ex,
            BTreeMap::new(),
            0.2,
            &PropensityConfig::default(),
            vec![],
            0,
        )
        .unwrap();
        // Validation is the latest 20 %.
        assert_eq!(m.validation.examples, 1200);
        let valid = &ex[4800..];
        let truth_auc = auc(
            &valid.iter().map(|e| truth(&e.inputs)).collect::<Vec<_>>(),
            &valid.iter().map(|e| e.converted).collect::<Vec<_>>(),
        );
        assert!(
            m.validation.auc > truth_auc - 0.02,
            "model {} vs truth {truth_auc}",
            m.validation.auc
        );
        assert!(m.validation.auc > 0.7);
        // It orders fresh pairs as the truth does.
        let near = Inputs {
            distance_km: Some(1.0),
            preference: 0.9,
            tier: 5,
            ..ex[0].inputs
        };
        let far = Inputs {
            distance_km: Some(25.0),
            preference: 0.1,
            tier: 1,
            ..ex[0].inputs
        };
        assert!(m.predict(&near) > m.predict(&far) + 0.2);
        // Calibrated: within 0.08 in every well-filled bin.
        for b in &m.validation.calibration {
            if b.n >= 60 {
                assert!((b.mean_predicted - b.observed).abs() < 0.08, "{b:?}");
            }
        }
        // The per-lead scorer gives the same probabilities.
        for e in &ex[..200] {
            let i = &e.inputs;
            let s = m.for_lead(i.channel, i.hour).predict(
                i.distance_km.map(|d| d.max(0.0).ln_1p()),
                i.preference,
                i.tier,
                i.guide_rate,
                i.direct_store,
                i.outlet_store,
            );
            assert!((s - m.predict(i)).abs() < 1e-12);
        }
        let back = PropensityModel::from_json(&m.to_json()).unwrap();
        assert_eq!(back.meta, m.meta);
        for e in &ex[..50] {
            assert!((back.predict(&e.inputs) - m.predict(&e.inputs)).abs() < 1e-9);
        }
        assert!(m.meta.version.starts_with("prop-"));
    }

    #[test]
    fn auc_and_log_loss_by_hand() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        let e = evaluate(&[0.5, 0.5], &[true, false]);
        assert!((e.log_loss - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(e.calibration[5].n, 2);
        assert_eq!(e.base_rate, 0.5);
    }

    #[test]
    fn bad_inputs_and_files_are_named() {
        let ex = examples(10, 1);
        let e = PropensityModel::fit(
            &ex,
            BTreeMap::new(),
            0.2,
            &PropensityConfig::default(),
            vec![],
            0,
        )
        .unwrap_err();
        assert!(e.0.contains("at least 20"), "{e}");
        let mut nan = examples(100, 2);
        nan[3].inputs.preference = f64::NAN;
        let e = PropensityModel::fit(
            &nan,
            BTreeMap::new(),
            0.2,
            &PropensityConfig::default(),
            vec![],
            0,
        )
        .unwrap_err();
        assert!(e.0.contains("examples[") && e.0.contains("finite"), "{e}");
        let m = PropensityModel::fit(
            &examples(500, 3),
            BTreeMap::new(),
            0.2,
            &PropensityConfig::default(),
            vec![],
            0,
        )
        .unwrap();
        let text = m.to_json();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            f(&mut v);
            PropensityModel::from_json(&v.to_string()).unwrap_err().0
        };
        assert!(
            edit(&|v| v["weights"].as_array_mut().unwrap().truncate(3))
                .contains("weights: expected")
        );
        assert!(edit(&|v| v["kind"] = serde_json::json!("preference")).contains("kind"));
        assert!(edit(&|v| v["features"][0] = serde_json::json!("colour")).contains("features"));
        assert!(edit(&|v| v["prior_rate"] = serde_json::json!(2.0)).contains("prior_rate"));
        assert!(
            PropensityModel::from_json("[]")
                .unwrap_err()
                .0
                .contains("not a propensity artifact")
        );
    }
}
