//! Multi-touch attribution models for analysts: how much of the conversions (and their value) each
//! channel earned, over aggregated journeys.
//!
//! A [`Journey`] is an ordered path of channels, how many times it converted, the value of those
//! conversions, and how many times it ended without converting. Rule-based models split each
//! journey's conversions over its touches:
//! - [`Model::First`] / [`Model::Last`] give all to the first / last touch;
//! - [`Model::Linear`] splits evenly;
//! - [`Model::TimeDecay`] weighs `2^(-age / half_life)`, age being the touch's time before the
//!   conversion when known, else its distance in steps from the last touch;
//! - [`Model::PositionBased`] gives 40 % first, 40 % last, 20 % spread over the middle (one touch takes
//!   all, two take half each).
//!
//! [`Model::Markov`] is the first-order Markov chain removal effect: the chain start → channels →
//! conversion | null is estimated from the journeys; a channel's removal effect is the fraction of
//! the conversion probability lost when the channel leads to null instead; conversions are shared
//! in proportion to removal effects. Absorption probabilities are solved by Gauss–Seidel iteration
//! over the sparse transitions (to 1e-13), which scales to many channels.

use std::collections::HashMap;
use std::io::Read;

/// Why journeys could not be read or a model not computed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{at}: {why}")]
    Input { at: String, why: String },
}

fn input(at: impl Into<String>, why: impl Into<String>) -> ModelError {
    ModelError::Input {
        at: at.into(),
        why: why.into(),
    }
}

/// One aggregated journey.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    /// Channel indexes into [`Journeys::channels`], first touch first. Never empty.
    pub path: Vec<usize>,
    pub conversions: f64,
    pub value: f64,
    pub nulls: f64,
    /// Each touch's age before the conversion (any unit; the same as the half-life's), when known.
    pub ages: Option<Vec<f64>>,
}

/// Journeys over named channels. Only [`Journeys::push`] and [`Journeys::from_csv`] add
/// journeys, so every stored one is checked (non-empty path, known channels, finite counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journeys {
    channels: Vec<String>,
    journeys: Vec<Journey>,
    index: HashMap<String, usize>,
}

impl Journeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Channel names; a journey's path and every credit vector index into this.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    pub fn journeys(&self) -> &[Journey] {
        &self.journeys
    }

    /// The index of a channel, added if new.
    fn channel(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.channels.push(name.to_string());
        self.index.insert(name.to_string(), self.channels.len() - 1);
        self.channels.len() - 1
    }

    /// Adds a journey by channel names. Empty paths, negative or non-finite counts are refused.
    pub fn push(
        &mut self,
        path: &[&str],
        conversions: f64,
        value: f64,
        nulls: f64,
        ages: Option<Vec<f64>>,
    ) -> Result<(), String> {
        if path.is_empty() || path.iter().any(|c| c.is_empty()) {
            return Err("path: must name at least one channel, none empty".into());
        }
        for (name, v) in [
            ("conversions", conversions),
            ("value", value),
            ("nulls", nulls),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name}: must be a finite number >= 0, got {v}"));
            }
        }
        if let Some(a) = &ages
            && (a.len() != path.len() || a.iter().any(|x| !x.is_finite() || *x < 0.0))
        {
            return Err("ages: one finite age >= 0 per touch".into());
        }
        let path = path.iter().map(|c| self.channel(c)).collect();
        self.journeys.push(Journey {
            path,
            conversions,
            value,
            nulls,
            ages,
        });
        Ok(())
    }

    /// Reads the journeys CSV (`path,total_conversions,total_conversion_value,total_null`, path
    /// channels separated by `>`), gzip-compressed or not.
    pub fn from_csv(reader: impl Read, origin: &str) -> Result<Self, ModelError> {
        let mut buf = Vec::new();
        let mut reader = reader;
        reader
            .read_to_end(&mut buf)
            .map_err(|e| input(origin, e.to_string()))?;
        if buf.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&buf[..])
                .read_to_end(&mut out)
                .map_err(|e| input(origin, format!("not valid gzip: {e}")))?;
            buf = out;
        }
        let mut rdr = csv::Reader::from_reader(&buf[..]);
        let headers = rdr
            .headers()
            .map_err(|e| input(origin, e.to_string()))?
            .clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| input(origin, format!("missing column `{name}`")))
        };
        let (p, c, v, n) = (
            col("path")?,
            col("total_conversions")?,
            col("total_conversion_value")?,
            col("total_null")?,
        );
        let mut out = Journeys::new();
        for (i, rec) in rdr.records().enumerate() {
            let at = format!("{origin}:{}", i + 2);
            let rec = rec.map_err(|e| input(&at, e.to_string()))?;
            let num = |idx: usize, name: &str| -> Result<f64, ModelError> {
                rec.get(idx)
                    .unwrap_or("")
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| input(&at, format!("field `{name}`: not a number")))
            };
            let path: Vec<&str> = rec.get(p).unwrap_or("").split('>').map(str::trim).collect();
            out.push(
                &path,
                num(c, "total_conversions")?,
                num(v, "total_conversion_value")?,
                num(n, "total_null")?,
                None,
            )
            .map_err(|why| input(&at, why))?;
        }
        Ok(out)
    }

    pub fn total_conversions(&self) -> f64 {
        self.journeys.iter().map(|j| j.conversions).sum()
    }

    pub fn total_value(&self) -> f64 {
        self.journeys.iter().map(|j| j.value).sum()
    }
}

/// An attribution model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    First,
    Last,
    Linear,
    /// Half-life in the unit of the journeys' ages (or in steps when ages are unknown).
    TimeDecay {
        half_life: f64,
    },
    /// Shares of the first and the last touch; the middle shares the rest.
    PositionBased {
        first: f64,
        last: f64,
    },
    Markov,
}

impl Model {
    /// The models in the order reports show them; time decay with a half-life of `half_life`.
    pub fn all(half_life: f64) -> [Model; 6] {
        [
            Model::First,
            Model::Last,
            Model::Linear,
            Model::TimeDecay { half_life },
            Model::PositionBased {
                first: 0.4,
                last: 0.4,
            },
            Model::Markov,
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Model::First => "first",
            Model::Last => "last",
            Model::Linear => "linear",
            Model::TimeDecay { .. } => "time_decay",
            Model::PositionBased { .. } => "position_based",
            Model::Markov => "markov",
        }
    }
}

/// Credit per channel (indexed like [`Journeys::channels`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Credits {
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
    /// Markov only: each channel's removal effect, and the chain's conversion probability.
    pub removal_effects: Option<(Vec<f64>, f64)>,
}

/// Runs a model.
pub fn attribute(j: &Journeys, model: Model) -> Result<Credits, ModelError> {
    match model {
        Model::Markov => markov(j),
        Model::TimeDecay { half_life } if !(half_life.is_finite() && half_life > 0.0) => {
            Err(input(
                "half_life",
                format!("must be a finite number > 0, got {half_life}"),
            ))
        }
        Model::PositionBased { first, last }
            if !(first >= 0.0 && last >= 0.0 && first + last <= 1.0) =>
        {
            Err(input(
                "position_based",
                format!("first and last must be >= 0 and sum to at most 1, got {first} and {last}"),
            ))
        }
        rule => Ok(rule_based(j, rule)),
    }
}

/// The weights a rule gives the touches of a path; they sum to 1.
fn weights(journey: &Journey, model: Model, out: &mut Vec<f64>) {
    let n = journey.path.len();
    out.clear();
    out.resize(n, 0.0);
    match model {
        Model::First => out[0] = 1.0,
        Model::Last => out[n - 1] = 1.0,
        Model::Linear => out.iter_mut().for_each(|w| *w = 1.0 / n as f64),
        Model::TimeDecay { half_life } => {
            for (i, w) in out.iter_mut().enumerate() {
                let age = journey.ages.as_ref().map_or((n - 1 - i) as f64, |a| a[i]);
                *w = (-age / half_life).exp2();
            }
            let sum: f64 = out.iter().sum();
            out.iter_mut().for_each(|w| *w /= sum);
        }
        Model::PositionBased { first, last } => match n {
            1 => out[0] = 1.0,
            2 => {
                out[0] = 0.5;
                out[1] = 0.5;
            }
            _ => {
                out[0] = first;
                out[n - 1] = last;
                let mid = (1.0 - first - last) / (n - 2) as f64;
                out[1..n - 1].iter_mut().for_each(|w| *w = mid);
            }
        },
        Model::Markov => {}
    }
}

fn rule_based(j: &Journeys, model: Model) -> Credits {
    let mut conv = vec![0.0; j.channels.len()];
    let mut value = vec![0.0; j.channels.len()];
    let mut w = Vec::new();
    for journey in &j.journeys {
        if journey.conversions == 0.0 && journey.value == 0.0 {
            continue;
        }
        weights(journey, model, &mut w);
        for (&c, &wi) in journey.path.iter().zip(&w) {
            conv[c] += journey.conversions * wi;
            value[c] += journey.value * wi;
        }
    }
    Credits {
        conversions: conv,
        value,
        removal_effects: None,
    }
}

/// The chain estimated from journeys: states 0 = start, 1..=k channels, k+1 = conversion,
/// k+2 = null. Sparse rows of (to, probability).
#[derive(Debug, Clone)]
pub struct Chain {
    pub channels: usize,
    pub rows: Vec<Vec<(usize, f64)>>,
}

impl Chain {
    pub fn start(&self) -> usize {
        0
    }
    pub fn conversion(&self) -> usize {
        self.channels + 1
    }
    pub fn null(&self) -> usize {
        self.channels + 2
    }

    /// Counts transitions: each journey weighs `conversions + nulls` on its path, its last touch
    /// goes to conversion `conversions` times and to null `nulls` times.
    pub fn estimate(j: &Journeys) -> Self {
        let k = j.channels.len();
        let mut counts: Vec<HashMap<usize, f64>> = vec![HashMap::new(); k + 3];
        for journey in &j.journeys {
            let n = journey.conversions + journey.nulls;
            if n == 0.0 {
                continue;
            }
            let mut from = 0;
            for &c in &journey.path {
                *counts[from].entry(c + 1).or_default() += n;
                from = c + 1;
            }
            if journey.conversions > 0.0 {
                *counts[from].entry(k + 1).or_default() += journey.conversions;
            }
            if journey.nulls > 0.0 {
                *counts[from].entry(k + 2).or_default() += journey.nulls;
            }
        }
        let rows = counts
            .into_iter()
            .map(|row| {
                let total: f64 = row.values().sum();
                let mut r: Vec<(usize, f64)> =
                    row.into_iter().map(|(to, c)| (to, c / total)).collect();
                r.sort_by_key(|(to, _)| *to);
                r
            })
            .collect();
        Self { channels: k, rows }
    }

    /// Probability of reaching conversion from start when `removed` (a channel index) leads to
    /// null, by Gauss–Seidel iteration to 1e-13.
    pub fn conversion_probability(&self, removed: Option<usize>) -> f64 {
        let (conv, null) = (self.conversion(), self.null());
        let removed = removed.map(|c| c + 1);
        let mut x = vec![0.0; self.channels + 3];
        x[conv] = 1.0;
        for _ in 0..100_000 {
            let mut delta = 0.0f64;
            for s in 0..=self.channels {
                if Some(s) == removed {
                    continue;
                }
                let v: f64 = self.rows[s]
                    .iter()
                    .map(|&(to, p)| {
                        if Some(to) == removed || to == null {
                            0.0
                        } else {
                            p * x[to]
                        }
                    })
                    .sum();
                delta = delta.max((v - x[s]).abs());
                x[s] = v;
            }
            if delta < 1e-13 {
                break;
            }
        }
        x[self.start()]
    }
}

fn markov(j: &Journeys) -> Result<Credits, ModelError> {
    let chain = Chain::estimate(j);
    let base = chain.conversion_probability(None);
    if base <= 0.0 {
        return Err(input(
            "journeys",
            "no journey converts: removal effects are undefined",
        ));
    }
    let effects: Vec<f64> = (0..j.channels.len())
        .map(|c| 1.0 - chain.conversion_probability(Some(c)) / base)
        .collect();
    let sum: f64 = effects.iter().sum();
    let (tc, tv) = (j.total_conversions(), j.total_value());
    let share = |e: f64| if sum > 0.0 { e / sum } else { 0.0 };
    Ok(Credits {
        conversions: effects.iter().map(|e| tc * share(*e)).collect(),
        value: effects.iter().map(|e| tv * share(*e)).collect(),
        removal_effects: Some((effects, base)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    const JOURNEYS: &[u8] = include_bytes!("../data/journeys/journeys.csv.gz");

    fn journeys() -> Journeys {
        Journeys::from_csv(JOURNEYS, "journeys.csv.gz").unwrap()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    /// Absorption probabilities by Gaussian elimination on (I − Q) x = r, dense.
    fn exact_probability(chain: &Chain, removed: Option<usize>) -> f64 {
        let n = chain.channels + 1; // transient states: start and channels
        let removed = removed.map(|c| c + 1);
        let mut a = Array2::<f64>::eye(n);
        let mut b = Array1::<f64>::zeros(n);
        for s in 0..n {
            if Some(s) == removed {
                continue; // x = 0: an identity row with b = 0
            }
            for &(to, p) in &chain.rows[s] {
                if to == chain.conversion() {
                    b[s] += p;
                } else if to < n && Some(to) != removed {
                    a[[s, to]] -= p;
                }
            }
        }
        // Partial pivoting.
        for col in 0..n {
            let piv = (col..n)
                .max_by(|&i, &j| a[[i, col]].abs().total_cmp(&a[[j, col]].abs()))
                .unwrap();
            if a[[piv, col]].abs() < 1e-300 {
                continue;
            }
            for k in 0..n {
                a.swap([col, k], [piv, k]);
            }
            b.swap(col, piv);
            for r in 0..n {
                if r != col {
                    let f = a[[r, col]] / a[[col, col]];
                    if f != 0.0 {
                        for k in 0..n {
                            a[[r, k]] -= f * a[[col, k]];
                        }
                        b[r] -= f * b[col];
                    }
                }
            }
        }
        b[0] / a[[0, 0]]
    }

    #[test]
    fn the_journey_set_reads_whole() {
        let j = journeys();
        assert_eq!(j.journeys().len(), 10_000);
        assert_eq!(j.channels().len(), 12);
        assert!(j.total_conversions() > 0.0);
    }

    #[test]
    fn first_last_and_linear_match_a_direct_count() {
        let j = journeys();
        // Count again from the text with nothing shared but the file.
        let mut text = String::new();
        flate2::read::GzDecoder::new(JOURNEYS)
            .read_to_string(&mut text)
            .unwrap();
        let mut first: HashMap<String, f64> = HashMap::new();
        let mut last: HashMap<String, f64> = HashMap::new();
        let mut linear: HashMap<String, f64> = HashMap::new();
        for line in text.lines().skip(1) {
            let (path, rest) = line.split_once(',').unwrap();
            let conv: f64 = rest.split(',').next().unwrap().parse().unwrap();
            let touches: Vec<&str> = path.split(" > ").collect();
            *first.entry(touches[0].into()).or_default() += conv;
            *last.entry(touches[touches.len() - 1].into()).or_default() += conv;
            for t in &touches {
                *linear.entry(t.to_string()).or_default() += conv / touches.len() as f64;
            }
        }
        for (model, want) in [
            (Model::First, &first),
            (Model::Last, &last),
            (Model::Linear, &linear),
        ] {
            let got = attribute(&j, model).unwrap();
            for (c, name) in j.channels().iter().enumerate() {
                let w = want.get(name).copied().unwrap_or(0.0);
                if model == Model::Linear {
                    assert!(
                        close(got.conversions[c], w, 1e-12),
                        "{name}: {} vs {w}",
                        got.conversions[c]
                    );
                } else {
                    // Whole conversions add up exactly.
                    assert_eq!(got.conversions[c], w, "{} {name}", model.name());
                }
            }
        }
    }

    #[test]
    fn every_model_gives_out_exactly_the_conversions() {
        let j = journeys();
        let total = j.total_conversions();
        for model in Model::all(2.0) {
            let c = attribute(&j, model).unwrap();
            let sum: f64 = c.conversions.iter().sum();
            assert!(
                close(sum, total, 1e-12),
                "{}: {sum} vs {total}",
                model.name()
            );
            let v: f64 = c.value.iter().sum();
            assert!(close(v, j.total_value(), 1e-12), "{}", model.name());
            assert!(c.conversions.iter().all(|x| *x >= 0.0));
        }
    }

    #[test]
    fn markov_removal_effects_match_the_exact_absorbing_chain() {
        let j = journeys();
        let chain = Chain::estimate(&j);
        let base = exact_probability(&chain, None);
        let got = attribute(&j, Model::Markov).unwrap();
        let (effects, p) = got.removal_effects.unwrap();
        assert!(close(p, base, 1e-10), "{p} vs {base}");
        for (c, name) in j.channels().iter().enumerate() {
            let exact = 1.0 - exact_probability(&chain, Some(c)) / base;
            assert!(
                close(effects[c], exact, 1e-9),
                "{name}: {} vs {exact}",
                effects[c]
            );
            assert!(exact > 0.0 && exact <= 1.0);
        }
    }

    #[test]
    fn small_cases_by_hand() {
        let mut j = Journeys::new();
        j.push(&["a", "b", "c", "d"], 10.0, 100.0, 0.0, None)
            .unwrap();
        let pb = attribute(
            &j,
            Model::PositionBased {
                first: 0.4,
                last: 0.4,
            },
        )
        .unwrap();
        for (g, w) in pb.conversions.iter().zip([4.0, 1.0, 1.0, 4.0]) {
            assert!(close(*g, w, 1e-12), "{:?}", pb.conversions);
        }
        // Steps 3, 2, 1, 0 before conversion with half-life 1: weights 1/8, 1/4, 1/2, 1.
        let td = attribute(&j, Model::TimeDecay { half_life: 1.0 }).unwrap();
        let want = [1.0, 2.0, 4.0, 8.0].map(|w| 10.0 * w / 15.0);
        for (g, w) in td.conversions.iter().zip(want) {
            assert!(close(*g, w, 1e-12));
        }
        // Ages given: equal ages share equally.
        let mut j = Journeys::new();
        j.push(&["a", "b"], 1.0, 0.0, 0.0, Some(vec![5.0, 5.0]))
            .unwrap();
        let td = attribute(&j, Model::TimeDecay { half_life: 1.0 }).unwrap();
        assert_eq!(td.conversions, vec![0.5, 0.5]);
        // Markov: a always converts through b; removing either loses everything.
        let mut j = Journeys::new();
        j.push(&["a", "b"], 3.0, 30.0, 0.0, None).unwrap();
        j.push(&["c"], 0.0, 0.0, 3.0, None).unwrap();
        let m = attribute(&j, Model::Markov).unwrap();
        let (eff, p) = m.removal_effects.unwrap();
        assert!(close(p, 0.5, 1e-12));
        assert!(close(eff[0], 1.0, 1e-12) && close(eff[1], 1.0, 1e-12) && eff[2].abs() < 1e-12);
        assert_eq!(m.conversions, vec![1.5, 1.5, 0.0]);
    }

    #[test]
    fn bad_input_is_named() {
        let e = Journeys::from_csv(
            &b"path,total_conversions,total_conversion_value,total_null\na > b,x,1,0\n"[..],
            "j.csv",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "j.csv:2: field `total_conversions`: not a number"
        );
        let e = Journeys::from_csv(&b"path,total_conversions\n"[..], "j.csv").unwrap_err();
        assert!(
            e.to_string()
                .contains("missing column `total_conversion_value`")
        );
        let mut j = Journeys::new();
        assert!(j.push(&[], 1.0, 1.0, 0.0, None).is_err());
        assert!(j.push(&["a"], -1.0, 1.0, 0.0, None).is_err());
        assert!(attribute(&j, Model::TimeDecay { half_life: 0.0 }).is_err());
        assert!(attribute(&j, Model::Markov).is_err());
    }
}
