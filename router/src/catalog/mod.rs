//! The network: the region tree (petgraph), stores and guides, and their spatial and region
//! indexes; loaded from operator-edited files, generated, or the demo shipped in the binary.

mod change;
mod files;
mod generate;
mod network;
mod region;

pub use change::{CatalogChange, ChangeError, Changed};
pub use files::{GUIDES_FILE, LoadError, NetworkFiles, PREFERENCE_FILE, STORES_FILE};
pub use generate::{CATEGORIES, DEMO_PROVINCES, GenerateSpec, generate, parse_province};
pub use network::{
    Entry, Guide, GuideKey, GuideSpec, GuideStatus, LearnedModels, MAX_CATEGORIES,
    MAX_DAILY_CAPACITY, Network, NetworkError, NetworkSpec, Ownership, PreferenceRow, Pricing,
    PropensityScorer, Store, StoreKey, StoreSpec, StoresIn,
};
pub use region::{
    EMBEDDED_ADCODES, NATIONWIDE_CODE, Region, RegionId, RegionLevel, RegionTree, format_code,
};

/// The demo network shipped in the repo (`router/data/demo/`), built by
/// `leadrouter network generate --demo --out router/data/demo`, with the district rows of
/// `preference_districts.csv` (learned from a simulated history by
/// `scripts/demo_district_rows.py`) after the generated matrix's rows.
pub fn demo_files() -> NetworkFiles {
    let districts = include_str!("../../data/demo/preference_districts.csv");
    let districts = districts.split_once('\n').map_or("", |(_, rows)| rows);
    NetworkFiles {
        origin: "demo".into(),
        stores: include_str!("../../data/demo/stores.csv").into(),
        guides: include_str!("../../data/demo/guides.csv").into(),
        preference: format!(
            "{}{districts}",
            include_str!("../../data/demo/preference.csv")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn shipped_demo_is_the_generator_output() {
        let regions = Arc::new(RegionTree::embedded());
        let (mut shipped, _) = demo_files().parse().unwrap();
        // The learned district rows come on top of the generated matrix.
        let is_district = |code: &str| code.len() == 12 && &code[4..6] != "00";
        let districts = shipped
            .preference
            .iter()
            .filter(|r| is_district(&r.region_code))
            .count();
        assert!(districts >= 100, "{districts} district rows");
        shipped.preference.retain(|r| !is_district(&r.region_code));
        assert_eq!(shipped, generate(&regions, &GenerateSpec::demo()));
        let net = demo_files().load(regions).unwrap();
        assert!(net.stores().len() >= 400);
        assert_eq!(net.categories().len(), CATEGORIES.len());
    }

    #[test]
    fn load_errors_name_file_line_and_field() {
        let regions = Arc::new(RegionTree::embedded());
        let mut files = demo_files();
        // Break the third store's latitude (line 4: header is line 1).
        let mut lines: Vec<String> = files.stores.lines().map(str::to_string).collect();
        let mut f: Vec<String> = lines[3].split(',').map(str::to_string).collect();
        f[3] = "95.0".into();
        lines[3] = f.join(",");
        files.stores = lines.join("\n");
        let e = files.load(regions.clone()).unwrap_err().to_string();
        assert_eq!(
            e,
            "demo/stores.csv:4: field `lat`: must be a finite number in [-90, 90], got 95"
        );

        let mut files = demo_files();
        files.guides = files.guides.replacen(",active", ",retired", 1);
        let e = files.load(regions.clone()).unwrap_err().to_string();
        assert!(e.starts_with("demo/guides.csv:"), "{e}");
        assert!(
            e.contains("field `status`: must be one of active|away|left, got \"retired\""),
            "{e}"
        );

        let mut files = demo_files();
        files
            .guides
            .push_str("G999999,S99999,someone,20,3,active\n");
        let e = files.load(regions.clone()).unwrap_err().to_string();
        assert!(
            e.contains("field `store_id`: unknown store \"S99999\""),
            "{e}"
        );

        let mut files = demo_files();
        files
            .stores
            .push_str("S99999,Nowhere,999999,30.0,120.0,direct,full_price,shoes,true\n");
        let e = files.load(regions.clone()).unwrap_err().to_string();
        assert!(
            e.contains("field `region_code`: unknown region code"),
            "{e}"
        );

        let mut files = demo_files();
        files
            .stores
            .push_str("S99999,Somewhere,110105,39.9,116.4,direct,full_price,hats,true\n");
        let e = files.load(regions).unwrap_err().to_string();
        assert!(
            e.contains("field `categories`: unknown category \"hats\""),
            "{e}"
        );
    }

    #[test]
    fn indexes_find_stores() {
        let regions = Arc::new(RegionTree::embedded());
        let net = demo_files().load(regions.clone()).unwrap();
        let gd = regions.resolve("440000").unwrap();
        let in_gd: Vec<u32> = net.stores_in(gd).collect();
        assert!(!in_gd.is_empty());
        for &s in &in_gd {
            assert!(regions.is_within(net.store(s).region, gd));
        }
        let total_in_provinces: usize = DEMO_PROVINCES
            .iter()
            .map(|&p| net.stores_in(regions.by_code(p).unwrap()).len())
            .sum();
        assert_eq!(total_in_provinces, net.stores().len());
        // Radius search agrees with a brute-force scan.
        let at = net.store(in_gd[0]).location;
        let mut got = Vec::new();
        net.stores_within(&at, 15.0, &mut got);
        let mut got: Vec<u32> = got.into_iter().map(|(s, _)| s).collect();
        got.sort();
        let want: Vec<u32> = (0..net.stores().len() as u32)
            .filter(|&s| at.distance_km(&net.store(s).location) <= 15.0)
            .collect();
        assert_eq!(got, want);
        assert!(got.contains(&in_gd[0]));
    }
}
