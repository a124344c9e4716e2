//! The region tree: GB/T 2260 codes (province → city → district) under one nationwide root, held
//! in a petgraph graph with each node's ancestor chain precomputed for O(1) walks.

use crate::domain::Location;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

/// The region table shipped in the binary (see `data/regions/SOURCE.md`).
pub const EMBEDDED_ADCODES: &str = include_str!("../../data/regions/adcodes.csv");

/// The nationwide root's code.
pub const NATIONWIDE_CODE: u64 = 0;

/// Depth of a region in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionLevel {
    Nation,
    Province,
    City,
    District,
}

/// One region.
#[derive(Debug, Clone)]
pub struct Region {
    /// 12-digit GB/T 2260 code as a number (0 for nationwide).
    pub code: u64,
    pub name: String,
    pub level: RegionLevel,
    /// Own coordinates, or the nearest ancestor's where the table has none.
    pub location: Option<Location>,
}

/// Region id inside one tree.
pub type RegionId = NodeIndex<u32>;

/// The tree. Edges point from parent to child.
#[derive(Debug)]
pub struct RegionTree {
    graph: DiGraph<Region, ()>,
    by_code: HashMap<u64, RegionId>,
    /// Per node: `[district, city, province]` ancestors-or-self (None where the level is absent).
    chain: Vec<[Option<RegionId>; 3]>,
    root: RegionId,
}

/// A region table that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("region table line {line}: {what}")]
pub struct RegionTableError {
    pub line: usize,
    pub what: String,
}

fn level_of(code: u64) -> RegionLevel {
    if code == NATIONWIDE_CODE {
        RegionLevel::Nation
    } else if code.is_multiple_of(10_000_000_000) {
        RegionLevel::Province
    } else if code.is_multiple_of(100_000_000) {
        RegionLevel::City
    } else {
        RegionLevel::District
    }
}

/// Formats a numeric code as the 12-digit string.
pub fn format_code(code: u64) -> String {
    format!("{code:012}")
}

impl RegionTree {
    /// The tree of the embedded GB/T 2260 table.
    pub fn embedded() -> Self {
        Self::from_csv(EMBEDDED_ADCODES).expect("the embedded region table is valid")
    }

    /// Reads `adcode,name,longitude,latitude` rows (header first); districts below the district
    /// level are not part of the table.
    pub fn from_csv(text: &str) -> Result<Self, RegionTableError> {
        let mut rows: Vec<(u64, String, Option<Location>)> = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            let err = |what: String| RegionTableError {
                line: line_no,
                what,
            };
            if f.len() != 4 {
                return Err(err(format!("expected 4 fields, found {}", f.len())));
            }
            if f[0].len() != 12 || !f[0].bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("adcode {:?} is not 12 digits", f[0])));
            }
            let code: u64 = f[0].parse().map_err(|_| err("bad adcode".into()))?;
            if code == NATIONWIDE_CODE {
                return Err(err("adcode 0 is reserved for nationwide".into()));
            }
            let loc = match (f[2].trim(), f[3].trim()) {
                ("", "") => None,
                (lon, lat) => {
                    let lon: f64 = lon
                        .parse()
                        .map_err(|_| err(format!("longitude {lon:?} is not a number")))?;
                    let lat: f64 = lat
                        .parse()
                        .map_err(|_| err(format!("latitude {lat:?} is not a number")))?;
                    Some(Location::new(lat, lon, "location").map_err(|e| err(e.to_string()))?)
                }
            };
            rows.push((code, f[1].to_string(), loc));
        }
        rows.sort_by_key(|r| r.0);

        let mut graph = DiGraph::<Region, ()>::with_capacity(rows.len() + 1, rows.len());
        let root = graph.add_node(Region {
            code: NATIONWIDE_CODE,
            name: "全国".into(),
            level: RegionLevel::Nation,
            location: None,
        });
        let mut by_code = HashMap::with_capacity(rows.len() + 1);
        by_code.insert(NATIONWIDE_CODE, root);
        // Sorted by code, so parents come before their children.
        for (code, name, location) in rows {
            if by_code.contains_key(&code) {
                return Err(RegionTableError {
                    line: 0,
                    what: format!("adcode {} appears twice", format_code(code)),
                });
            }
            let level = level_of(code);
            let parent = match level {
                RegionLevel::Province | RegionLevel::Nation => root,
                RegionLevel::City => *by_code
                    .get(&(code / 10_000_000_000 * 10_000_000_000))
                    .unwrap_or(&root),
                RegionLevel::District => by_code
                    .get(&(code / 100_000_000 * 100_000_000))
                    .or_else(|| by_code.get(&(code / 10_000_000_000 * 10_000_000_000)))
                    .copied()
                    .unwrap_or(root),
            };
            let location = location.or(graph[parent].location);
            let id = graph.add_node(Region {
                code,
                name,
                level,
                location,
            });
            graph.add_edge(parent, id, ());
            by_code.insert(code, id);
        }
        let mut chain = vec![[None; 3]; graph.node_count()];
        for id in graph.node_indices() {
            let mut c = [None; 3];
            let mut cur = Some(id);
            while let Some(n) = cur {
                match graph[n].level {
                    RegionLevel::District => c[0] = Some(n),
                    RegionLevel::City => c[1] = Some(n),
                    RegionLevel::Province => c[2] = Some(n),
                    RegionLevel::Nation => {}
                }
                cur = graph
                    .neighbors_directed(n, petgraph::Direction::Incoming)
                    .next();
            }
            chain[id.index()] = c;
        }
        Ok(Self {
            graph,
            by_code,
            chain,
            root,
        })
    }

    pub fn root(&self) -> RegionId {
        self.root
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn get(&self, id: RegionId) -> &Region {
        &self.graph[id]
    }

    pub fn by_code(&self, code: u64) -> Option<RegionId> {
        self.by_code.get(&code).copied()
    }

    /// Ancestors-or-self at district, city and province level (`None` where absent).
    pub fn chain(&self, id: RegionId) -> [Option<RegionId>; 3] {
        self.chain[id.index()]
    }

    /// Parent, or `None` for the root.
    pub fn parent(&self, id: RegionId) -> Option<RegionId> {
        self.graph
            .neighbors_directed(id, petgraph::Direction::Incoming)
            .next()
    }

    /// Children of a region.
    pub fn children(&self, id: RegionId) -> impl Iterator<Item = RegionId> + '_ {
        self.graph
            .neighbors_directed(id, petgraph::Direction::Outgoing)
    }

    /// Every region id.
    pub fn ids(&self) -> impl Iterator<Item = RegionId> {
        self.graph.node_indices()
    }

    /// Codes from `id` up to nationwide, most specific first (for preference lookups).
    pub fn code_chain(&self, id: RegionId) -> impl Iterator<Item = u64> + '_ {
        let c = self.chain(id);
        c.into_iter()
            .flatten()
            .map(|n| self.graph[n].code)
            .chain(std::iter::once(NATIONWIDE_CODE))
    }

    /// Resolves a code as sent by callers: 6 digits (`440106`) or 12 digits (`440106000000`);
    /// a 12-digit code below district level (a street or town) resolves to its district.
    /// The error is the rule broken, for the caller to prefix with the field name.
    pub fn resolve(&self, code: &str) -> Result<RegionId, String> {
        if !(code.len() == 6 || code.len() == 12) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "must be a GB/T 2260 code of 6 or 12 digits, got {code:?}"
            ));
        }
        let n: u64 = code.parse().map_err(|_| "not a number".to_string())?;
        let full = if code.len() == 6 { n * 1_000_000 } else { n };
        if full == NATIONWIDE_CODE {
            return Err("must name a region, not all zeros".into());
        }
        if let Some(id) = self.by_code(full) {
            return Ok(id);
        }
        if code.len() == 12
            && let Some(id) = self.by_code(full / 1_000_000 * 1_000_000)
            && self.graph[id].level == RegionLevel::District
        {
            return Ok(id);
        }
        Err(format!("unknown region code {code:?} (not in GB/T 2260)"))
    }

    /// True when `id` is `ancestor` or lies below it.
    pub fn is_within(&self, id: RegionId, ancestor: RegionId) -> bool {
        if ancestor == self.root {
            return true;
        }
        let level = self.graph[ancestor].level;
        let c = self.chain(id);
        let slot = match level {
            RegionLevel::District => c[0],
            RegionLevel::City => c[1],
            RegionLevel::Province => c[2],
            RegionLevel::Nation => return true,
        };
        slot == Some(ancestor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_shape() {
        let t = RegionTree::embedded();
        assert_eq!(t.len(), 3511 + 1);
        let count = |l| t.ids().filter(|&i| t.get(i).level == l).count();
        assert_eq!(count(RegionLevel::Province), 34);
        assert_eq!(count(RegionLevel::City), 344);
        assert_eq!(count(RegionLevel::District), 3133);
        // Every region but the root has exactly one parent.
        for id in t.ids() {
            assert_eq!(t.parent(id).is_none(), id == t.root());
        }
    }

    #[test]
    fn resolve_and_chain() {
        let t = RegionTree::embedded();
        let chaoyang = t.resolve("110105").unwrap();
        assert_eq!(t.get(chaoyang).name, "朝阳区");
        assert_eq!(t.resolve("110105000000").unwrap(), chaoyang);
        // A street code resolves to its district.
        assert_eq!(t.resolve("110105001000").unwrap(), chaoyang);
        let codes: Vec<u64> = t.code_chain(chaoyang).collect();
        assert_eq!(codes, vec![110105000000, 110100000000, 110000000000, 0]);
        assert!(t.is_within(chaoyang, t.resolve("110000").unwrap()));
        assert!(!t.is_within(chaoyang, t.resolve("310000").unwrap()));
        // Province-direct counties (仙桃市) sit under the pseudo-city 429000.
        let xiantao = t.resolve("429004").unwrap();
        assert_eq!(t.get(t.parent(xiantao).unwrap()).code, 429000000000);
        // Pseudo-city without coordinates inherits the province's.
        assert!(t.get(t.parent(xiantao).unwrap()).location.is_some());
    }

    #[test]
    fn resolve_rejects_with_rules() {
        let t = RegionTree::embedded();
        assert!(t.resolve("11010").unwrap_err().contains("6 or 12 digits"));
        assert!(t.resolve("11010a").unwrap_err().contains("6 or 12 digits"));
        assert!(t.resolve("000000").unwrap_err().contains("all zeros"));
        assert!(t.resolve("999999").unwrap_err().contains("unknown region"));
        // A 12-digit code whose district is unknown.
        assert!(t.resolve("999999001000").is_err());
    }
}
