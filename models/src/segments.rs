//! Member segments: k-means (linfa-clustering) over members' tag vectors. Each member's tags
//! (with weights, e.g. counts of purchases by category or interests stated) become a vector
//! over the tag vocabulary, scaled to unit length so that members are compared by the mix of
//! their tags, not their volume. The artifact keeps the vocabulary and the centroids, so that
//! any member's tags can be given a segment later (the nearest centroid). Seeded: the same
//! input and seed give the same segments.

use crate::preference_fit::{ModelError, ModelMeta};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Artifact format version.
pub const FORMAT: u32 = 1;

/// A member and their tags with weights (> 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub member_id: String,
    pub tags: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(flatten)]
    meta: ModelMeta,
    vocabulary: Vec<String>,
    centroids: Vec<Vec<f64>>,
    sizes: Vec<u64>,
}

/// Fitted segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub meta: ModelMeta,
    pub vocabulary: Vec<String>,
    pub centroids: Vec<Vec<f64>>,
    /// Members per segment in the training data.
    pub sizes: Vec<u64>,
}

fn err(s: impl Into<String>) -> ModelError {
    ModelError(s.into())
}

fn unit(tags: &[(String, f64)], vocabulary: &[String]) -> Vec<f64> {
    let mut v = vec![0.0; vocabulary.len()];
    for (t, w) in tags {
        if let Ok(i) = vocabulary.binary_search(t) {
            v[i] += w.max(0.0);
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

impl Segments {
    /// Clusters `members` into `k` segments.
    pub fn fit(
        members: &[Member],
        k: usize,
        seed: u64,
        inputs: Vec<String>,
    ) -> Result<Self, ModelError> {
        if !(2..=100).contains(&k) {
            return Err(err(format!("k: must be 2..=100, got {k}")));
        }
        if members.len() < k {
            return Err(err(format!(
                "members: need at least k = {k} members, got {}",
                members.len()
            )));
        }
        for (i, m) in members.iter().enumerate() {
            if let Some((t, w)) = m.tags.iter().find(|(_, w)| !w.is_finite() || *w < 0.0) {
                return Err(err(format!(
                    "members[{i}] ({}): tag {t:?} has weight {w}; weights must be finite and >= 0",
                    m.member_id
                )));
            }
        }
        let mut vocabulary: Vec<String> = members
            .iter()
            .flat_map(|m| m.tags.iter().map(|(t, _)| t.clone()))
            .collect();
        vocabulary.sort();
        vocabulary.dedup();
        if vocabulary.is_empty() {
            return Err(err("members: no tags"));
        }
        let d = vocabulary.len();
        let x = Array2::from_shape_vec(
            (members.len(), d),
            members
                .iter()
                .flat_map(|m| unit(&m.tags, &vocabulary))
                .collect(),
        )
        .map_err(|e| err(e.to_string()))?;
        let model = KMeans::params_with_rng(k, rand::rngs::StdRng::seed_from_u64(seed))
            .n_runs(4)
            .max_n_iterations(200)
            .tolerance(1e-6)
            .fit(&DatasetBase::from(x))
            .map_err(|e| err(format!("k-means: {e}")))?;
        let centroids: Vec<Vec<f64>> = model
            .centroids()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        let mut out = Self {
            meta: ModelMeta {
                kind: "segments".into(),
                format: FORMAT,
                version: String::new(),
                created_at_ms: 0,
                inputs,
                from_ms: 0,
                to_ms: 0,
                params: BTreeMap::from([("k".into(), k as f64), ("seed".into(), seed as f64)]),
                metrics: BTreeMap::new(),
            },
            vocabulary,
            centroids,
            sizes: vec![0; k],
        };
        let mut inertia = 0.0;
        for m in members {
            let v = unit(&m.tags, &out.vocabulary);
            let (s, dist) = out.nearest(&v);
            out.sizes[s] += 1;
            inertia += dist;
        }
        out.meta
            .metrics
            .insert("members".into(), members.len() as f64);
        out.meta.metrics.insert("inertia".into(), inertia);
        out.meta.version = {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for x in out.centroids.iter().flatten() {
                for b in x.to_le_bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
            format!("seg-{h:016x}")
        };
        Ok(out)
    }

    fn nearest(&self, v: &[f64]) -> (usize, f64) {
        self.centroids
            .iter()
            .enumerate()
            .map(|(s, c)| {
                (
                    s,
                    c.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .unwrap_or((0, 0.0))
    }

    /// The segment of a member with these tags (tags outside the vocabulary are ignored).
    pub fn assign(&self, tags: &[(String, f64)]) -> usize {
        self.nearest(&unit(tags, &self.vocabulary)).0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&File {
            meta: self.meta.clone(),
            vocabulary: self.vocabulary.clone(),
            centroids: self.centroids.clone(),
            sizes: self.sizes.clone(),
        })
        .unwrap_or_default()
    }

    /// Reads an artifact, checking kind, format and shape.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let f: File =
            serde_json::from_str(text).map_err(|e| err(format!("not a segments artifact: {e}")))?;
        f.meta.check("segments", FORMAT)?;
        if !f.vocabulary.windows(2).all(|w| w[0] < w[1]) {
            return Err(err("vocabulary: must be sorted and without repeats"));
        }
        if f.centroids.len() < 2 || f.centroids.len() != f.sizes.len() {
            return Err(err("centroids: at least two, one size each"));
        }
        for (i, c) in f.centroids.iter().enumerate() {
            if c.len() != f.vocabulary.len() || c.iter().any(|x| !x.is_finite()) {
                return Err(err(format!(
                    "centroids[{i}]: expected {} finite values (one per tag)",
                    f.vocabulary.len()
                )));
            }
        }
        Ok(Self {
            meta: f.meta,
            vocabulary: f.vocabulary,
            centroids: f.centroids,
            sizes: f.sizes,
        })
    }
}

/// Each member's segment, as `leadrouter models segments --assignments` writes it, for policies
/// to read at routing time.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSegments {
    /// `members-…`, a hash of the assignments.
    pub version: String,
    by_member: std::collections::HashMap<String, u16>,
}

impl MemberSegments {
    /// From `(member_id, segment)` pairs; a member named twice is refused.
    pub fn new(pairs: impl IntoIterator<Item = (String, u16)>) -> Result<Self, ModelError> {
        let mut by_member = std::collections::HashMap::new();
        let mut sorted: Vec<(String, u16)> = Vec::new();
        for (m, s) in pairs {
            if by_member.insert(m.clone(), s).is_some() {
                return Err(err(format!("member {m:?} appears twice")));
            }
            sorted.push((m, s));
        }
        sorted.sort();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (m, s) in &sorted {
            for b in m.bytes().chain(s.to_le_bytes()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Ok(Self {
            version: format!("members-{h:016x}"),
            by_member,
        })
    }

    pub fn segment(&self, member_id: &str) -> Option<u16> {
        self.by_member.get(member_id).copied()
    }

    pub fn len(&self) -> usize {
        self.by_member.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_member.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three planted groups: sporty, family, office; each member has noise tags too.
    fn members(n: usize) -> (Vec<Member>, Vec<usize>) {
        let groups = [
            vec![("sports", 5.0), ("shoes", 3.0)],
            vec![("kids", 6.0), ("womenswear", 2.0)],
            vec![("menswear", 4.0), ("outerwear", 3.0), ("accessories", 1.0)],
        ];
        let mut x: u64 = 99;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut out = Vec::new();
        let mut truth = Vec::new();
        for i in 0..n {
            let g = i % 3;
            let mut tags: Vec<(String, f64)> = groups[g]
                .iter()
                .map(|(t, w)| (t.to_string(), w * (0.5 + next())))
                .collect();
            tags.push(("innerwear".into(), next()));
            out.push(Member {
                member_id: format!("m{i}"),
                tags,
            });
            truth.push(g);
        }
        (out, truth)
    }

    #[test]
    fn planted_groups_are_recovered() {
        let (ms, truth) = members(300);
        let s = Segments::fit(&ms, 3, 7, vec![]).unwrap();
        // Every planted group maps to one segment, and the three segments differ.
        let mut map = [usize::MAX; 3];
        for (m, g) in ms.iter().zip(&truth) {
            let seg = s.assign(&m.tags);
            if map[*g] == usize::MAX {
                map[*g] = seg;
            }
            assert_eq!(map[*g], seg, "member {} of group {g}", m.member_id);
        }
        assert!(map[0] != map[1] && map[1] != map[2] && map[0] != map[2]);
        assert_eq!(s.sizes.iter().sum::<u64>(), 300);
        // Same seed, same segments; the artifact round-trips.
        assert_eq!(Segments::fit(&ms, 3, 7, vec![]).unwrap(), s);
        let back = Segments::from_json(&s.to_json()).unwrap();
        for m in &ms[..30] {
            assert_eq!(back.assign(&m.tags), s.assign(&m.tags));
        }
    }

    #[test]
    fn bad_inputs_and_files_are_named() {
        let (ms, _) = members(30);
        assert!(
            Segments::fit(&ms, 1, 0, vec![])
                .unwrap_err()
                .0
                .contains("k:")
        );
        assert!(
            Segments::fit(&ms[..2], 3, 0, vec![])
                .unwrap_err()
                .0
                .contains("at least k")
        );
        let mut bad = ms.clone();
        bad[4].tags[0].1 = f64::NAN;
        assert!(
            Segments::fit(&bad, 3, 0, vec![])
                .unwrap_err()
                .0
                .contains("members[4]")
        );
        let s = Segments::fit(&ms, 3, 0, vec![]).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        v["centroids"][1].as_array_mut().unwrap().pop();
        assert!(
            Segments::from_json(&v.to_string())
                .unwrap_err()
                .0
                .contains("centroids[1]")
        );
        assert!(
            Segments::from_json("{}")
                .unwrap_err()
                .0
                .contains("not a segments artifact")
        );
    }
}
