//! Guide skill: each guide's conversion rate, learned from routed leads and their outcomes and
//! shrunk towards the guide's peers, so that a guide with little history looks like them.
//!
//! With C conversions of N leads overall (rate r₀):
//!
//! - a store's rate is `r_s = (C_s + k·r₀) / (N_s + k)` and a tier's `r_t = (C_t + k·r₀) / (N_t + k)`;
//! - a guide's prior is their geometric mean `π_g = √(r_s · r_t)` (the store's level and the tier's);
//! - the guide's rate is `r_g = (C_g + k·π_g) / (N_g + k)`;
//! - the guide's **lift** is `ln(r_g / π_g)`: how much better (or worse) the guide converts than
//!   their peers, in log-odds-like units. Policies add `skill · lift` to their value estimate, so
//!   a guide without history (lift 0) scores as their peers do, and what the store and tier say
//!   is left to the terms that already carry them (preference, tier).
//!
//! The shrinkage k (pseudo-leads) is estimated from the data when not given, by the method of
//! moments: the spread of guides' raw rates beyond what binomial noise explains is the spread
//! τ² of true rates, and `k = r₀(1 − r₀) / τ²` (clamped to 1..=100,000). The artifact is versioned
//! JSON like the other models.

use crate::preference_fit::{ModelError, ModelMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Artifact format version.
pub const FORMAT: u32 = 1;

/// Most the estimated shrinkage may be (pseudo-leads).
pub const MAX_SHRINKAGE: f64 = 100_000.0;

fn err(s: impl Into<String>) -> ModelError {
    ModelError(s.into())
}

/// One routed lead and whether it converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub guide: String,
    pub store: String,
    /// 1..=5.
    pub tier: u8,
    pub converted: bool,
    /// When the lead was routed (Unix ms), for the artifact's span.
    pub at_ms: i64,
}

/// How to fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkillConfig {
    /// Pseudo-leads of shrinkage towards the peers; `None`: estimated from the data.
    pub shrinkage: Option<f64>,
    pub created_at_ms: i64,
}

/// Leads and conversions of one guide, store or tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub leads: u64,
    pub conversions: u64,
}

impl Counts {
    fn add(&mut self, converted: bool) {
        self.leads += 1;
        self.conversions += u64::from(converted);
    }

    fn shrunk(&self, towards: f64, k: f64) -> f64 {
        (self.conversions as f64 + k * towards) / (self.leads as f64 + k)
    }
}

/// One guide as learned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuideSkill {
    pub leads: u64,
    pub conversions: u64,
    /// The shrunk rate r_g.
    pub rate: f64,
    /// The peers' rate π_g it was shrunk towards.
    pub prior: f64,
}

impl GuideSkill {
    /// ln(r_g / π_g).
    pub fn lift(&self) -> f64 {
        (self.rate / self.prior).ln()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(flatten)]
    meta: ModelMeta,
    shrinkage: f64,
    overall: Counts,
    stores: BTreeMap<String, Counts>,
    tiers: BTreeMap<u8, Counts>,
    guides: BTreeMap<String, GuideSkill>,
}

/// Learned guide skill.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillModel {
    pub meta: ModelMeta,
    /// k, pseudo-leads.
    pub shrinkage: f64,
    pub overall: Counts,
    pub stores: BTreeMap<String, Counts>,
    pub tiers: BTreeMap<u8, Counts>,
    pub guides: BTreeMap<String, GuideSkill>,
}

/// The moment estimate of k from guides' counts (see the module's text).
fn estimate_shrinkage(guides: &BTreeMap<String, Counts>, r0: f64) -> f64 {
    let noise = r0 * (1.0 - r0);
    let used: Vec<&Counts> = guides.values().filter(|c| c.leads > 0).collect();
    if used.len() < 2 || noise <= 0.0 {
        return MAX_SHRINKAGE;
    }
    // Weighted by leads: Σ N_g (r̂_g − r₀)² / Σ N_g estimates τ² + noise·G / Σ N_g.
    let total: f64 = used.iter().map(|c| c.leads as f64).sum();
    let spread: f64 = used
        .iter()
        .map(|c| {
            let r = c.conversions as f64 / c.leads as f64;
            c.leads as f64 * (r - r0) * (r - r0)
        })
        .sum::<f64>()
        / total;
    let tau2 = spread - noise * used.len() as f64 / total;
    if tau2 <= 0.0 {
        return MAX_SHRINKAGE;
    }
    (noise / tau2).clamp(1.0, MAX_SHRINKAGE)
}

impl SkillModel {
    /// Fits from outcomes; `inputs` names where they came from.
    pub fn fit(
        outcomes: &[Outcome],
        cfg: &SkillConfig,
        inputs: Vec<String>,
    ) -> Result<Self, ModelError> {
        if outcomes.is_empty() {
            return Err(err("outcomes: none to learn from"));
        }
        if let Some(k) = cfg.shrinkage
            && !(k.is_finite() && (0.0..=MAX_SHRINKAGE).contains(&k))
        {
            return Err(err(format!(
                "shrinkage: must be in 0..={MAX_SHRINKAGE} pseudo-leads, got {k}"
            )));
        }
        let mut overall = Counts::default();
        let mut stores: BTreeMap<String, Counts> = BTreeMap::new();
        let mut tiers: BTreeMap<u8, Counts> = BTreeMap::new();
        let mut raw: BTreeMap<String, (Counts, String, u8)> = BTreeMap::new();
        for (i, o) in outcomes.iter().enumerate() {
            if !(1..=5).contains(&o.tier) {
                return Err(err(format!(
                    "outcomes[{i}].tier: must be 1..=5, got {}",
                    o.tier
                )));
            }
            if o.guide.is_empty() || o.store.is_empty() {
                return Err(err(format!("outcomes[{i}]: guide and store must be named")));
            }
            overall.add(o.converted);
            stores.entry(o.store.clone()).or_default().add(o.converted);
            tiers.entry(o.tier).or_default().add(o.converted);
            let e = raw
                .entry(o.guide.clone())
                .or_insert_with(|| (Counts::default(), o.store.clone(), o.tier));
            e.0.add(o.converted);
            // A guide who moved: the latest store and tier are the peers.
            e.1.clone_from(&o.store);
            e.2 = o.tier;
        }
        // Rates of exactly 0 or 1 would give infinite lifts: keep r₀ inside (0, 1).
        let r0 = ((overall.conversions as f64 + 0.5) / (overall.leads as f64 + 1.0))
            .clamp(1e-6, 1.0 - 1e-6);
        let counts: BTreeMap<String, Counts> =
            raw.iter().map(|(g, (c, _, _))| (g.clone(), *c)).collect();
        let k = cfg
            .shrinkage
            .unwrap_or_else(|| estimate_shrinkage(&counts, r0))
            .max(1e-9);
        let mut model = Self {
            meta: ModelMeta {
                kind: "skill".into(),
                format: FORMAT,
                version: String::new(),
                created_at_ms: cfg.created_at_ms,
                inputs,
                from_ms: outcomes.iter().map(|o| o.at_ms).min().unwrap_or(0),
                to_ms: outcomes.iter().map(|o| o.at_ms).max().unwrap_or(0),
                params: BTreeMap::from([("shrinkage".to_string(), k)]),
                metrics: BTreeMap::new(),
            },
            shrinkage: k,
            overall,
            stores,
            tiers,
            guides: BTreeMap::new(),
        };
        let mut spread = 0.0;
        for (g, (c, store, tier)) in raw {
            let prior = model.prior(&store, tier);
            let rate = c.shrunk(prior, k);
            let s = GuideSkill {
                leads: c.leads,
                conversions: c.conversions,
                rate,
                prior,
            };
            spread += s.lift() * s.lift();
            model.guides.insert(g, s);
        }
        let m = &mut model.meta.metrics;
        m.insert("outcomes".into(), overall.leads as f64);
        m.insert(
            "conversion_rate".into(),
            overall.conversions as f64 / overall.leads as f64,
        );
        m.insert("guides".into(), model.guides.len() as f64);
        m.insert(
            "lift_sd".into(),
            (spread / model.guides.len().max(1) as f64).sqrt(),
        );
        model.meta.version = model.digest();
        Ok(model)
    }

    /// r₀, kept inside (0, 1).
    pub fn overall_rate(&self) -> f64 {
        ((self.overall.conversions as f64 + 0.5) / (self.overall.leads as f64 + 1.0))
            .clamp(1e-6, 1.0 - 1e-6)
    }

    /// The peers' rate π for a guide of this store and tier (also for guides never seen).
    pub fn prior(&self, store: &str, tier: u8) -> f64 {
        let r0 = self.overall_rate();
        let k = self.shrinkage;
        let rs = self.stores.get(store).map_or(r0, |c| c.shrunk(r0, k));
        let rt = self.tiers.get(&tier).map_or(r0, |c| c.shrunk(r0, k));
        (rs * rt).sqrt().clamp(1e-6, 1.0 - 1e-6)
    }

    /// A guide's lift ln(r_g / π_g); 0 for a guide the model has not seen.
    pub fn lift(&self, guide: &str) -> f64 {
        self.guides.get(guide).map_or(0.0, GuideSkill::lift)
    }

    fn digest(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&self.shrinkage.to_le_bytes());
        for (g, s) in &self.guides {
            eat(g.as_bytes());
            eat(&s.leads.to_le_bytes());
            eat(&s.conversions.to_le_bytes());
            eat(&s.prior.to_le_bytes());
        }
        format!("skill-{h:016x}")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&File {
            meta: self.meta.clone(),
            shrinkage: self.shrinkage,
            overall: self.overall,
            stores: self.stores.clone(),
            tiers: self.tiers.clone(),
            guides: self.guides.clone(),
        })
        .unwrap_or_default()
    }

    /// Reads an artifact, checking kind, format and every number.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let f: File =
            serde_json::from_str(text).map_err(|e| err(format!("not a skill artifact: {e}")))?;
        f.meta.check("skill", FORMAT)?;
        if !(f.shrinkage.is_finite() && f.shrinkage > 0.0 && f.shrinkage <= MAX_SHRINKAGE) {
            return Err(err(format!(
                "shrinkage: must be in (0, {MAX_SHRINKAGE}], got {}",
                f.shrinkage
            )));
        }
        let count_ok = |c: &Counts| c.conversions <= c.leads;
        if !count_ok(&f.overall) {
            return Err(err("overall: more conversions than leads"));
        }
        for (s, c) in &f.stores {
            if !count_ok(c) {
                return Err(err(format!("stores.{s}: more conversions than leads")));
            }
        }
        for (t, c) in &f.tiers {
            if !(1..=5).contains(t) || !count_ok(c) {
                return Err(err(format!(
                    "tiers.{t}: a tier is 1..=5 with no more conversions than leads"
                )));
            }
        }
        for (g, s) in &f.guides {
            let unit = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
            if !unit(s.rate) || !unit(s.prior) || s.conversions > s.leads {
                return Err(err(format!(
                    "guides.{g}: rate and prior must be in (0, 1), conversions at most leads"
                )));
            }
        }
        Ok(Self {
            meta: f.meta,
            shrinkage: f.shrinkage,
            overall: f.overall,
            stores: f.stores,
            tiers: f.tiers,
            guides: f.guides,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// `guides` guides over 10 stores, tier by index; guide g converts with `rate(g)`.
    fn outcomes(guides: usize, per_guide: usize, rate: impl Fn(usize) -> f64) -> Vec<Outcome> {
        let mut rng = SplitMix64::new(11);
        let mut out = Vec::new();
        for g in 0..guides {
            for i in 0..per_guide {
                out.push(Outcome {
                    guide: format!("g{g}"),
                    store: format!("s{}", g % 10),
                    tier: 1 + (g % 5) as u8,
                    converted: rng.next_f64() < rate(g),
                    at_ms: i as i64,
                });
            }
        }
        out
    }

    fn cfg(shrinkage: Option<f64>) -> SkillConfig {
        SkillConfig {
            shrinkage,
            created_at_ms: 0,
        }
    }

    #[test]
    fn better_guides_get_higher_lifts_and_shrinkage_pulls_the_noise_in() {
        // Every third guide converts twice as often as the rest.
        let rate = |g: usize| if g.is_multiple_of(3) { 0.2 } else { 0.1 };
        let o = outcomes(90, 400, rate);
        let m = SkillModel::fit(&o, &cfg(None), vec!["t".into()]).unwrap();
        let mean = |good: bool| {
            let v: Vec<f64> = (0..90)
                .filter(|g: &usize| g.is_multiple_of(3) == good)
                .map(|g| m.lift(&format!("g{g}")))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(true) > 0.2, "{}", mean(true));
        assert!(mean(false) < 0.0, "{}", mean(false));
        // The estimated k is finite: the rates do differ.
        assert!(m.shrinkage < MAX_SHRINKAGE, "{}", m.shrinkage);
        // Shrunk lifts are smaller in spread than raw ones.
        let raw_sd = {
            let v: Vec<f64> = m
                .guides
                .values()
                .map(|s| (s.conversions as f64 / s.leads as f64 / s.prior).ln())
                .collect();
            (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
        };
        assert!(m.meta.metrics["lift_sd"] < raw_sd);
    }

    #[test]
    fn a_guide_with_little_history_looks_like_their_peers() {
        let mut o = outcomes(20, 300, |_| 0.1);
        // A newcomer with 3 leads, all converted.
        for i in 0..3 {
            o.push(Outcome {
                guide: "new".into(),
                store: "s0".into(),
                tier: 1,
                converted: true,
                at_ms: i,
            });
        }
        let m = SkillModel::fit(&o, &cfg(Some(200.0)), vec![]).unwrap();
        let s = m.guides["new"];
        assert!(s.lift() > 0.0 && s.lift() < 0.2, "{s:?}");
        assert_eq!(m.lift("never-seen"), 0.0);
        // Equal true rates: no guide's lift is large.
        assert!(m.guides.values().all(|s| s.lift().abs() < 0.3));
    }

    #[test]
    fn round_trips_and_refuses_bad_artifacts() {
        let o = outcomes(12, 50, |g| 0.05 + 0.01 * g as f64);
        let m = SkillModel::fit(&o, &cfg(None), vec!["x".into()]).unwrap();
        assert!(m.meta.version.starts_with("skill-"));
        let back = SkillModel::from_json(&m.to_json()).unwrap();
        // JSON keeps numbers to within the last bit.
        assert_eq!(back.meta.version, m.meta.version);
        assert_eq!(back.guides.len(), m.guides.len());
        for (g, s) in &m.guides {
            assert!((back.lift(g) - s.lift()).abs() < 1e-12, "{g}");
        }
        let bad = m
            .to_json()
            .replace("\"kind\": \"skill\"", "\"kind\": \"preference\"");
        assert!(SkillModel::from_json(&bad).unwrap_err().0.contains("kind"));
        let mut broken = m.clone();
        broken.guides.values_mut().next().unwrap().rate = 1.5;
        let e = SkillModel::from_json(&broken.to_json()).unwrap_err();
        assert!(e.0.contains("guides."), "{e}");
        assert!(
            SkillModel::fit(&[], &cfg(None), vec![])
                .unwrap_err()
                .0
                .contains("outcomes")
        );
        let mut o2 = o.clone();
        o2[3].tier = 9;
        let e = SkillModel::fit(&o2, &cfg(None), vec![]).unwrap_err();
        assert!(e.0.contains("outcomes[3].tier"), "{e}");
        let e = SkillModel::fit(&o, &cfg(Some(-1.0)), vec![]).unwrap_err();
        assert!(e.0.contains("shrinkage"), "{e}");
    }
}
