//! Seeded, reproducible networks: the demo network shipped in the repo and the reference network
//! the benches use. The same spec and seed always give the same files (the generator draws from
//! [`SplitMix64`], whose sequence never changes).

use super::network::{
    GuideSpec, GuideStatus, NetworkSpec, Ownership, PreferenceRow, Pricing, StoreSpec,
};
use super::region::{RegionLevel, RegionTree, format_code};
use crate::domain::SplitMix64;

/// The categories of generated networks (an apparel brand's assortment).
pub const CATEGORIES: [&str; 8] = [
    "womenswear",
    "menswear",
    "kids",
    "shoes",
    "sports",
    "outerwear",
    "accessories",
    "innerwear",
];

/// The demo network's provinces: Guangdong, Zhejiang, Jiangsu, Shanghai, Beijing, Sichuan, Hubei.
pub const DEMO_PROVINCES: [u64; 7] = [
    440000000000,
    330000000000,
    320000000000,
    310000000000,
    110000000000,
    510000000000,
    420000000000,
];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSpec {
    pub stores: usize,
    /// Guides per store, drawn uniformly from this inclusive range.
    pub guides_per_store: (u32, u32),
    /// Provinces to place stores in (12-digit codes); empty for all.
    pub provinces: Vec<u64>,
    /// Share of guides that are away or have left (half each).
    pub inactive_share: f64,
    pub seed: u64,
}

impl GenerateSpec {
    /// The demo network: 420 stores over seven provinces, 4–8 guides each.
    pub fn demo() -> Self {
        Self {
            stores: 420,
            guides_per_store: (4, 8),
            provinces: DEMO_PROVINCES.to_vec(),
            inactive_share: 0.08,
            seed: 20_261_123,
        }
    }

    /// The reference network of the benches: 10,000 stores, 60,000 guides, every province.
    pub fn reference() -> Self {
        Self {
            stores: 10_000,
            guides_per_store: (6, 6),
            provinces: Vec::new(),
            inactive_share: 0.0,
            seed: 42,
        }
    }
}

fn round3(v: f64) -> f32 {
    ((v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0) as f32
}

/// A province as the command line and scenarios name it: a 6-digit GB/T 2260 code ending in
/// `0000` (e.g. `440000`), or its 12-digit form; returns the 12-digit code.
pub fn parse_province(p: &str) -> Result<u64, String> {
    let ok = p.bytes().all(|b| b.is_ascii_digit())
        && ((p.len() == 6 && p.ends_with("0000")) || (p.len() == 12 && p.ends_with("0000000000")));
    if !ok {
        return Err(format!(
            "must be a 6-digit province code like 440000, got {}",
            crate::domain::short(p)
        ));
    }
    let n: u64 = p.parse().map_err(|_| format!("not a number: {p:?}"))?;
    Ok(if p.len() == 6 { n * 1_000_000 } else { n })
}

impl GenerateSpec {
    /// Checks the spec against the region table; the message names the option.
    pub fn check(&self, regions: &RegionTree) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.stores) {
            return Err(format!(
                "stores: must be in 1..=1000000, got {}",
                self.stores
            ));
        }
        let (lo, hi) = self.guides_per_store;
        if lo > hi || hi > 100 {
            return Err(format!(
                "guides_per_store: need MIN <= MAX <= 100, got {lo}-{hi}"
            ));
        }
        for (i, &code) in self.provinces.iter().enumerate() {
            let province = regions
                .by_code(code)
                .filter(|&id| regions.get(id).level == RegionLevel::Province);
            let Some(id) = province else {
                return Err(format!(
                    "provinces[{i}]: {} is not a province in the region table",
                    code / 1_000_000
                ));
            };
            let has_district = regions.ids().any(|d| {
                let r = regions.get(d);
                r.level == RegionLevel::District
                    && r.location.is_some()
                    && r.code / 10_000_000_000 * 10_000_000_000 == code
            });
            if !has_district {
                return Err(format!(
                    "provinces[{i}]: {} ({}) has no district with coordinates to place stores in",
                    code / 1_000_000,
                    regions.get(id).name
                ));
            }
        }
        Ok(())
    }
}

/// Generates a network over `regions`.
pub fn generate(regions: &RegionTree, spec: &GenerateSpec) -> NetworkSpec {
    let mut rng = SplitMix64::new(spec.seed);
    let in_scope = |code: u64| {
        spec.provinces.is_empty()
            || spec
                .provinces
                .contains(&(code / 10_000_000_000 * 10_000_000_000))
    };
    // Districts to place stores in, urban districts (区) weighted 3:1.
    let mut districts = Vec::new();
    let mut cumulative = Vec::new();
    let mut total = 0.0;
    for id in regions.ids() {
        let r = regions.get(id);
        if r.level == RegionLevel::District && r.location.is_some() && in_scope(r.code) {
            total += if r.name.ends_with('区') { 3.0 } else { 1.0 };
            districts.push(id);
            cumulative.push(total);
        }
    }
    let mut stores = Vec::with_capacity(spec.stores);
    let mut guides = Vec::new();
    let mut per_district = std::collections::HashMap::new();
    for s in 0..spec.stores {
        let x = rng.next_f64() * total;
        let k = cumulative
            .partition_point(|&c| c <= x)
            .min(districts.len() - 1);
        let region = regions.get(districts[k]);
        let loc = region.location.expect("filtered on location");
        let n: &mut u32 = per_district.entry(region.code).or_default();
        *n += 1;
        let pricing = if rng.next_f64() < 0.15 {
            Pricing::Outlet
        } else {
            Pricing::FullPrice
        };
        let p_carry = if pricing == Pricing::Outlet { 0.5 } else { 0.7 };
        let mut categories: Vec<String> = CATEGORIES
            .iter()
            .filter(|_| rng.next_f64() < p_carry)
            .map(|c| c.to_string())
            .collect();
        if categories.is_empty() {
            categories.push(CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize].to_string());
        }
        let store_id = format!("S{:05}", s + 1);
        stores.push(StoreSpec {
            store_id: store_id.clone(),
            name: format!(
                "{}{}{}号店",
                region.name,
                if pricing == Pricing::Outlet {
                    "特价"
                } else {
                    ""
                },
                n
            ),
            region_code: format_code(region.code),
            lat: ((loc.lat + (rng.next_f64() - 0.5) * 0.06) * 1e6).round() / 1e6,
            lon: ((loc.lon + (rng.next_f64() - 0.5) * 0.06) * 1e6).round() / 1e6,
            ownership: if rng.next_f64() < 0.6 {
                Ownership::Direct
            } else {
                Ownership::Franchise
            },
            pricing,
            categories,
            open: rng.next_f64() >= 0.03,
        });
        let (lo, hi) = spec.guides_per_store;
        let count = lo + rng.below(u64::from(hi - lo) + 1) as u32;
        for _ in 0..count {
            let roll = rng.next_f64();
            let status = if roll < 1.0 - spec.inactive_share {
                GuideStatus::Active
            } else if roll < 1.0 - spec.inactive_share / 2.0 {
                GuideStatus::Away
            } else {
                GuideStatus::Left
            };
            let g = guides.len() + 1;
            guides.push(GuideSpec {
                guide_id: format!("G{g:06}"),
                store_id: store_id.clone(),
                name: format!("导购{g}"),
                daily_capacity: 20 + 5 * rng.below(9) as u32,
                tier: 1 + rng.below(5) as u8,
                status,
            });
        }
    }
    NetworkSpec {
        categories: CATEGORIES.iter().map(|c| c.to_string()).collect(),
        preference: preference_rows(regions, spec, &mut rng),
        stores,
        guides,
    }
}

/// A nationwide row, one row per province in scope and one per provincial capital (the first
/// city by code): outerwear follows latitude, the rest vary by a seeded draw.
fn preference_rows(
    regions: &RegionTree,
    spec: &GenerateSpec,
    rng: &mut SplitMix64,
) -> Vec<PreferenceRow> {
    let base = [0.55, 0.45, 0.35, 0.5, 0.4, 0.35, 0.3, 0.3];
    let mut rows = vec![PreferenceRow {
        region_code: "nationwide".into(),
        values: base.iter().map(|&v| round3(v)).collect(),
    }];
    for id in regions.ids() {
        let r = regions.get(id);
        if r.level != RegionLevel::Province
            || !(spec.provinces.is_empty() || spec.provinces.contains(&r.code))
        {
            continue;
        }
        let lat = r.location.map_or(30.0, |l| l.lat);
        let province: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(k, &b)| {
                if CATEGORIES[k] == "outerwear" {
                    (lat - 20.0) / 22.0
                } else {
                    b + (rng.next_f64() - 0.5) * 0.4
                }
            })
            .collect();
        rows.push(PreferenceRow {
            region_code: format_code(r.code),
            values: province.iter().map(|&v| round3(v)).collect(),
        });
        if let Some(capital) = regions
            .children(id)
            .filter(|&c| regions.get(c).level == RegionLevel::City)
            .min_by_key(|&c| regions.get(c).code)
        {
            rows.push(PreferenceRow {
                region_code: format_code(regions.get(capital).code),
                values: province
                    .iter()
                    .map(|&v| round3(v + (rng.next_f64() - 0.5) * 0.2))
                    .collect(),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Network, NetworkFiles};
    use std::sync::Arc;

    #[test]
    fn reproducible_and_valid() {
        let regions = Arc::new(RegionTree::embedded());
        let spec = GenerateSpec {
            stores: 300,
            ..GenerateSpec::demo()
        };
        let a = generate(&regions, &spec);
        let b = generate(&regions, &spec);
        assert_eq!(a, b);
        let c = generate(
            &regions,
            &GenerateSpec {
                seed: 1,
                ..spec.clone()
            },
        );
        assert_ne!(a, c);
        let net = Network::build(regions.clone(), a.clone()).unwrap();
        assert_eq!(net.stores().len(), 300);
        // Every store is in one of the seven provinces.
        for s in net.stores() {
            let province = regions.get(regions.chain(s.region)[2].unwrap()).code;
            assert!(DEMO_PROVINCES.contains(&province));
        }
        // Files round-trip.
        let files = NetworkFiles::from_spec(&a);
        let (back, _) = files.parse().unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn reference_network_size() {
        let regions = Arc::new(RegionTree::embedded());
        let spec = generate(&regions, &GenerateSpec::reference());
        assert_eq!(spec.stores.len(), 10_000);
        assert_eq!(spec.guides.len(), 60_000);
        let provinces: std::collections::HashSet<_> =
            spec.stores.iter().map(|s| &s.region_code[..2]).collect();
        assert!(provinces.len() >= 31, "{}", provinces.len());
    }
}
