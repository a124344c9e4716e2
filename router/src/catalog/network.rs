//! Stores and guides, checked against the region tree and indexed for routing: by region subtree,
//! by a latitude/longitude grid, and by id.

use super::region::{NATIONWIDE_CODE, RegionId, RegionLevel, RegionTree, format_code};
use crate::domain::{FieldError, Location, check_id};
use leadrouter_models::PreferenceMatrix;
use leadrouter_models::preference_fit::PreferenceModel;
use leadrouter_models::propensity::PropensityModel;

/// Scores one lead's candidates by the learned propensity model.
#[derive(Debug, Clone, Copy)]
pub struct PropensityScorer<'a> {
    net: &'a Network,
    lead: leadrouter_models::propensity::LeadScorer,
    rates: &'a [f64],
    prior: f64,
}

impl PropensityScorer<'_> {
    /// The probability of conversion with `c`; `log1p_km` is `ln(1 + km)` of its distance.
    pub fn predict(&self, c: &crate::policy::Candidate, log1p_km: Option<f64>) -> f64 {
        let store = &self.net.stores[c.store as usize];
        self.lead.predict(
            log1p_km,
            f64::from(c.preference),
            c.tier,
            self.rates
                .get(c.guide as usize)
                .copied()
                .unwrap_or(self.prior),
            store.ownership == Ownership::Direct,
            store.pricing == Pricing::Outlet,
        )
    }
}

/// The learned models a network is built with (none: the shipped matrix only).
#[derive(Debug, Clone, Default)]
pub struct LearnedModels {
    pub preference: Option<Arc<PreferenceModel>>,
    pub propensity: Option<Arc<PropensityModel>>,
    /// Members' segments, for policies to read (`RouteContext::segment`).
    pub segments: Option<Arc<leadrouter_models::segments::MemberSegments>>,
    /// Guides' skill (their conversion lift over their peers), for value estimates.
    pub skill: Option<Arc<leadrouter_models::skill::SkillModel>>,
    /// Guides' capacity prices, for `dual_price`.
    pub prices: Option<Arc<leadrouter_models::prices::PriceModel>>,
}

impl LearnedModels {
    /// The versions, preference first, as decisions record them.
    pub fn versions(&self) -> Vec<String> {
        self.preference
            .iter()
            .map(|m| m.meta.version.clone())
            .chain(self.propensity.iter().map(|m| m.meta.version.clone()))
            .chain(self.segments.iter().map(|m| m.version.clone()))
            .chain(self.skill.iter().map(|m| m.meta.version.clone()))
            .chain(self.prices.iter().map(|m| m.meta.version.clone()))
            .collect()
    }
}

fn guides_rates(m: &PropensityModel, guides: &[Guide]) -> Vec<f64> {
    guides.iter().map(|g| m.guide_rate(&g.id)).collect()
}
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Most categories a network may have (a store's assortment is a 64-bit set).
pub const MAX_CATEGORIES: usize = 64;
/// Bounds of a guide's daily capacity.
pub const MAX_DAILY_CAPACITY: u32 = 10_000;
/// Grid cell side in degrees for the radius index (about 11 km north–south).
const CELL_DEG: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    Direct,
    Franchise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    FullPrice,
    Outlet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuideStatus {
    Active,
    Away,
    Left,
}

impl Ownership {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "franchise" => Some(Self::Franchise),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Franchise => "franchise",
        }
    }
}

impl Pricing {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full_price" => Some(Self::FullPrice),
            "outlet" => Some(Self::Outlet),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullPrice => "full_price",
            Self::Outlet => "outlet",
        }
    }
}

impl GuideStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "away" => Some(Self::Away),
            "left" => Some(Self::Left),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Away => "away",
            Self::Left => "left",
        }
    }
}

/// A store as an operator writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSpec {
    pub store_id: String,
    pub name: String,
    /// GB/T 2260 code (6 or 12 digits) of the district (or city) the store is in.
    pub region_code: String,
    pub lat: f64,
    pub lon: f64,
    pub ownership: Ownership,
    pub pricing: Pricing,
    pub categories: Vec<String>,
    pub open: bool,
}

/// A guide as an operator writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuideSpec {
    pub guide_id: String,
    pub store_id: String,
    pub name: String,
    /// Leads per business day, 1..=10000.
    pub daily_capacity: u32,
    /// 1 (junior) ..= 5 (senior).
    pub tier: u8,
    pub status: GuideStatus,
}

/// One row of the preference matrix: a region code (or `nationwide`) and one value per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceRow {
    pub region_code: String,
    pub values: Vec<f32>,
}

/// The whole network in its editable form; what is persisted and what files load into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub categories: Vec<String>,
    pub preference: Vec<PreferenceRow>,
    pub stores: Vec<StoreSpec>,
    pub guides: Vec<GuideSpec>,
}

/// What a [`NetworkError`] is about: the n-th entry (0-based) of a spec list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Category(usize),
    Preference(usize),
    Store(usize),
    Guide(usize),
}

/// A spec that does not make a valid network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{entry:?}: {error}")]
pub struct NetworkError {
    pub entry: Entry,
    pub error: FieldError,
}

fn bad(entry: Entry, field: &str, rule: impl Into<String>) -> NetworkError {
    NetworkError {
        entry,
        error: FieldError::new(field, rule),
    }
}

/// A store, indexed.
#[derive(Debug, Clone)]
pub struct Store {
    pub id: Arc<str>,
    pub name: String,
    pub region: RegionId,
    pub location: Location,
    pub ownership: Ownership,
    pub pricing: Pricing,
    /// Bit `c` set when the store carries category `c`.
    pub categories: u64,
    pub open: bool,
    /// This store's guides, as indexes into [`Network::guides`].
    pub guides: Range<u32>,
    /// Regional preference of the store's region for each category it carries (0 where not).
    pub preference: Vec<f32>,
}

/// What route() reads of every store it scans, packed together for the cache: scanning a
/// region touches these, not the full [`Storage`] records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreKey {
    /// Bit `c` set when the store carries category `c`.
    pub categories: u64,
    pub lat: f32,
    pub lon: f32,
    pub open: bool,
    /// Region ids of the store's district, city and province (`u32::MAX` where absent).
    pub chain: [u32; 3],
    /// The store's guides: `guides.0..guides.1` into [`Network::guide_key`].
    pub guides: (u32, u32),
}

/// What route() reads of a guide, packed (a store's guides are contiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuideKey {
    pub daily_capacity: u32,
    pub tier: u8,
    pub active: bool,
}

/// A guide, indexed.
#[derive(Debug, Clone)]
pub struct Guide {
    pub id: Arc<str>,
    pub name: String,
    pub store: u32,
    pub daily_capacity: u32,
    pub tier: u8,
    pub status: GuideStatus,
}

/// The network in service.
#[derive(Debug)]
pub struct Network {
    regions: Arc<RegionTree>,
    spec: NetworkSpec,
    stores: Vec<Store>,
    keys: Vec<StoreKey>,
    /// Per store, one value per category (row-major): [`Storage::preference`], flat.
    preferences: Vec<f32>,
    /// Per region node, one value per category (row-major): the region's taste, its row of the
    /// matrix in service (the first present along district → city → province → nationwide, so
    /// thin regions take their parents'), normalised to sum to 1; all zeros where no row applies.
    tastes: Vec<f32>,
    guides: Vec<Guide>,
    guide_keys: Vec<GuideKey>,
    store_by_id: HashMap<String, u32>,
    guide_by_id: HashMap<String, u32>,
    /// Per region node: stores in its subtree (empty for the root: that is every store).
    region_stores: Vec<Vec<u32>>,
    grid: HashMap<(i32, i32), Vec<u32>>,
    preference: PreferenceMatrix,
    /// Learned preference, used instead of `preference` for the stores when present.
    learned: Option<Arc<PreferenceModel>>,
    /// Learned conversion propensity, with each guide's past rate by guide index.
    propensity: Option<(Arc<PropensityModel>, Vec<f64>)>,
    segments: Option<Arc<leadrouter_models::segments::MemberSegments>>,
    /// Guide skill, with each guide's lift by guide index.
    skill: Option<(Arc<leadrouter_models::skill::SkillModel>, Vec<f64>)>,
    /// Learned capacity prices, by guide index (`None`: the model names no price for the guide).
    prices: Option<(Arc<leadrouter_models::prices::PriceModel>, Vec<Option<f64>>)>,
    version: String,
}

fn cell(loc: &Location) -> (i32, i32) {
    (
        (loc.lat / CELL_DEG).floor() as i32,
        (loc.lon / CELL_DEG).floor() as i32,
    )
}

fn parse_pref_region(code: &str, regions: &RegionTree) -> Result<u64, String> {
    if code.eq_ignore_ascii_case("nationwide")
        || code.bytes().all(|b| b == b'0') && !code.is_empty()
    {
        return Ok(NATIONWIDE_CODE);
    }
    regions.resolve(code).map(|id| regions.get(id).code)
}

impl Network {
    /// Checks a spec against the region tree and builds the indexes.
    pub fn build(regions: Arc<RegionTree>, spec: NetworkSpec) -> Result<Self, NetworkError> {
        Self::build_with(regions, spec, LearnedModels::default())
    }

    /// As [`Network::build`], with learned models: a preference model takes the place of the
    /// spec's matrix for every store (see [`Network::check_learned`]); a propensity model is
    /// there for policies to score with.
    pub fn build_with(
        regions: Arc<RegionTree>,
        spec: NetworkSpec,
        models: LearnedModels,
    ) -> Result<Self, NetworkError> {
        let learned = models.preference;
        // Categories.
        if spec.categories.is_empty() {
            return Err(bad(
                Entry::Category(0),
                "categories",
                "at least one is needed",
            ));
        }
        if spec.categories.len() > MAX_CATEGORIES {
            return Err(bad(
                Entry::Category(MAX_CATEGORIES),
                "categories",
                format!("at most {MAX_CATEGORIES}, got {}", spec.categories.len()),
            ));
        }
        let mut cat_index = HashMap::new();
        for (i, c) in spec.categories.iter().enumerate() {
            check_id("category", c).map_err(|e| NetworkError {
                entry: Entry::Category(i),
                error: e,
            })?;
            if cat_index.insert(c.as_str(), i).is_some() {
                return Err(bad(
                    Entry::Category(i),
                    "category",
                    format!("{c:?} appears twice"),
                ));
            }
        }
        // Preference matrix.
        let mut rows = Vec::with_capacity(spec.preference.len());
        let mut seen_rows = HashMap::new();
        for (i, row) in spec.preference.iter().enumerate() {
            let e = Entry::Preference(i);
            let code = parse_pref_region(&row.region_code, &regions)
                .map_err(|r| bad(e, "region_code", r))?;
            if seen_rows.insert(code, i).is_some() {
                return Err(bad(
                    e,
                    "region_code",
                    format!("{:?} has two rows", row.region_code),
                ));
            }
            if row.values.len() != spec.categories.len() {
                return Err(bad(
                    e,
                    "values",
                    format!(
                        "expected {} values (one per category), got {}",
                        spec.categories.len(),
                        row.values.len()
                    ),
                ));
            }
            for (c, v) in row.values.iter().enumerate() {
                if !v.is_finite() || !(0.0..=1.0).contains(v) {
                    return Err(bad(
                        e,
                        &spec.categories[c],
                        format!("must be a number in [0, 1], got {v}"),
                    ));
                }
            }
            rows.push((code, row.values.clone()));
        }
        let preference = PreferenceMatrix::new(spec.categories.clone(), rows)
            .map_err(|err| bad(Entry::Preference(0), "preference", err.to_string()))?;

        // Stores.
        let mut store_by_id = HashMap::with_capacity(spec.stores.len());
        let mut stores = Vec::with_capacity(spec.stores.len());
        for (i, s) in spec.stores.iter().enumerate() {
            let e = Entry::Store(i);
            check_id("store_id", &s.store_id).map_err(|error| NetworkError { entry: e, error })?;
            if store_by_id.insert(s.store_id.clone(), i as u32).is_some() {
                return Err(bad(
                    e,
                    "store_id",
                    format!("{:?} appears twice", s.store_id),
                ));
            }
            if s.name.trim().is_empty() || s.name.len() > 200 {
                return Err(bad(e, "name", "must be 1..=200 bytes and not blank"));
            }
            let region = regions
                .resolve(&s.region_code)
                .map_err(|r| bad(e, "region_code", r))?;
            if regions.get(region).level < RegionLevel::City {
                return Err(bad(
                    e,
                    "region_code",
                    "must be a city or district, not a province",
                ));
            }
            let location = Location::new(s.lat, s.lon, "location").map_err(|mut error| {
                error.field = error.field.trim_start_matches("location.").to_string();
                NetworkError { entry: e, error }
            })?;
            if s.categories.is_empty() {
                return Err(bad(
                    e,
                    "categories",
                    "a store carries at least one category",
                ));
            }
            let mut mask = 0u64;
            for c in &s.categories {
                match cat_index.get(c.as_str()) {
                    Some(&k) if mask & (1 << k) != 0 => {
                        return Err(bad(
                            e,
                            "categories",
                            format!(
                                "repeats {}: name each category once",
                                crate::domain::short(c)
                            ),
                        ));
                    }
                    Some(&k) => mask |= 1 << k,
                    None => {
                        return Err(bad(
                            e,
                            "categories",
                            format!(
                                "unknown category {c:?} (known: {})",
                                spec.categories.join(", ")
                            ),
                        ));
                    }
                }
            }
            let pref_row = learned
                .as_ref()
                .map_or(&preference, |m| &m.matrix)
                .lookup(regions.code_chain(region))
                .map(|(_, r)| r.to_vec())
                .unwrap_or_else(|| vec![0.0; spec.categories.len()]);
            let pref = pref_row
                .iter()
                .enumerate()
                .map(|(k, v)| if mask & (1 << k) != 0 { *v } else { 0.0 })
                .collect();
            stores.push(Store {
                id: s.store_id.as_str().into(),
                name: s.name.clone(),
                region,
                location,
                ownership: s.ownership,
                pricing: s.pricing,
                categories: mask,
                open: s.open,
                guides: 0..0,
                preference: pref,
            });
        }

        // Guides, grouped by store.
        let mut per_store: Vec<Vec<usize>> = vec![Vec::new(); stores.len()];
        let mut ids = HashMap::with_capacity(spec.guides.len());
        for (i, g) in spec.guides.iter().enumerate() {
            let e = Entry::Guide(i);
            check_id("guide_id", &g.guide_id).map_err(|error| NetworkError { entry: e, error })?;
            if ids.insert(g.guide_id.as_str(), i).is_some() {
                return Err(bad(
                    e,
                    "guide_id",
                    format!("{:?} appears twice", g.guide_id),
                ));
            }
            let Some(&s) = store_by_id.get(&g.store_id) else {
                return Err(bad(
                    e,
                    "store_id",
                    format!("unknown store {:?}", g.store_id),
                ));
            };
            if g.name.len() > 200 {
                return Err(bad(e, "name", "must be at most 200 bytes"));
            }
            if g.daily_capacity == 0 || g.daily_capacity > MAX_DAILY_CAPACITY {
                return Err(bad(
                    e,
                    "daily_capacity",
                    format!(
                        "must be in 1..={MAX_DAILY_CAPACITY}, got {}",
                        g.daily_capacity
                    ),
                ));
            }
            if !(1..=5).contains(&g.tier) {
                return Err(bad(e, "tier", format!("must be in 1..=5, got {}", g.tier)));
            }
            per_store[s as usize].push(i);
        }
        let mut guides = Vec::with_capacity(spec.guides.len());
        let mut guide_by_id = HashMap::with_capacity(spec.guides.len());
        for (s, list) in per_store.iter().enumerate() {
            let start = guides.len() as u32;
            for &i in list {
                let g = &spec.guides[i];
                guide_by_id.insert(g.guide_id.clone(), guides.len() as u32);
                guides.push(Guide {
                    id: g.guide_id.as_str().into(),
                    name: g.name.clone(),
                    store: s as u32,
                    daily_capacity: g.daily_capacity,
                    tier: g.tier,
                    status: g.status,
                });
            }
            stores[s].guides = start..guides.len() as u32;
        }

        // Indexes.
        let mut region_stores = vec![Vec::new(); regions.len()];
        let mut grid: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
        for (i, s) in stores.iter().enumerate() {
            for r in regions.chain(s.region).into_iter().flatten() {
                region_stores[r.index()].push(i as u32);
            }
            grid.entry(cell(&s.location)).or_default().push(i as u32);
        }
        let keys = stores
            .iter()
            .map(|s| {
                let c = regions.chain(s.region);
                StoreKey {
                    categories: s.categories,
                    lat: s.location.lat as f32,
                    lon: s.location.lon as f32,
                    open: s.open,
                    chain: c.map(|r| r.map_or(u32::MAX, |r| r.index() as u32)),
                    guides: (s.guides.start, s.guides.end),
                }
            })
            .collect();
        let preferences = stores
            .iter()
            .flat_map(|s| s.preference.iter().copied())
            .collect();
        let tastes = {
            let matrix = learned.as_ref().map_or(&preference, |m| &m.matrix);
            let k = spec.categories.len();
            let mut out = Vec::with_capacity(regions.len() * k);
            for id in regions.ids() {
                match matrix.lookup(regions.code_chain(id)) {
                    Some((_, row)) => {
                        let total: f32 = row.iter().sum();
                        out.extend(
                            row.iter()
                                .map(|v| if total > 0.0 { v / total } else { 0.0 }),
                        );
                    }
                    None => out.extend(std::iter::repeat_n(0.0, k)),
                }
            }
            out
        };
        let guide_keys = guides
            .iter()
            .map(|g| GuideKey {
                daily_capacity: g.daily_capacity,
                tier: g.tier,
                active: g.status == GuideStatus::Active,
            })
            .collect();
        let propensity = models.propensity.map(|m| {
            let rates = guides_rates(&m, &guides);
            (m, rates)
        });
        let skill = models.skill.map(|m| {
            let lifts = guides.iter().map(|g| m.lift(&g.id)).collect();
            (m, lifts)
        });
        let prices = models.prices.map(|m| {
            let by_guide = guides.iter().map(|g| m.price(&g.id)).collect();
            (m, by_guide)
        });
        let version = {
            let bytes = serde_json::to_vec(&spec).unwrap_or_default();
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            format!("{h:016x}")
        };
        Ok(Self {
            regions,
            spec,
            stores,
            keys,
            preferences,
            tastes,
            guides,
            guide_keys,
            store_by_id,
            guide_by_id,
            region_stores,
            grid,
            preference,
            version,
            propensity,
            segments: models.segments,
            skill,
            prices,
            learned,
        })
    }

    /// A member's segment, when member segments are in service and name the member.
    pub fn member_segment(&self, member_id: &str) -> Option<u16> {
        self.segments.as_ref()?.segment(member_id)
    }

    /// The learned models in use.
    pub fn learned_models(&self) -> LearnedModels {
        LearnedModels {
            preference: self.learned.clone(),
            propensity: self.propensity.as_ref().map(|(m, _)| m.clone()),
            segments: self.segments.clone(),
            skill: self.skill.as_ref().map(|(m, _)| m.clone()),
            prices: self.prices.as_ref().map(|(m, _)| m.clone()),
        }
    }

    /// A guide's skill lift `ln(r_g / π_g)` (0 without a skill model, or for a guide it has not
    /// seen).
    pub fn guide_lift(&self, guide: u32) -> f64 {
        self.skill
            .as_ref()
            .and_then(|(_, l)| l.get(guide as usize).copied())
            .unwrap_or(0.0)
    }

    /// Whether a skill model is in service.
    pub fn has_skill(&self) -> bool {
        self.skill.is_some()
    }

    /// A guide's learned capacity price, when a price model in service names the guide.
    pub fn guide_price(&self, guide: u32) -> Option<f64> {
        self.prices
            .as_ref()
            .and_then(|(_, p)| p.get(guide as usize).copied().flatten())
    }

    /// The learned propensity model in use, if any.
    pub fn propensity(&self) -> Option<&Arc<PropensityModel>> {
        self.propensity.as_ref().map(|(m, _)| m)
    }

    /// A scorer of one lead's candidates by the propensity model (`None` without one).
    /// `channel` is an index into the model's channels, `hour` the local hour.
    pub fn propensity_scorer(&self, channel: usize, hour: u32) -> Option<PropensityScorer<'_>> {
        let (m, rates) = self.propensity.as_ref()?;
        Some(PropensityScorer {
            net: self,
            lead: m.for_lead(channel, hour),
            rates,
            prior: m.prior_rate,
        })
    }

    /// Checks that a learned preference model fits this network: the same categories in the
    /// same order, and every row a region of the tree. The message names what differs.
    pub fn check_learned(&self, model: &PreferenceModel) -> Result<(), String> {
        if model.matrix.categories() != self.categories() {
            return Err(format!(
                "categories: the model has [{}], the network [{}]",
                model.matrix.categories().join(", "),
                self.categories().join(", ")
            ));
        }
        for (code, _) in model.matrix.rows() {
            if code != leadrouter_models::preference::NATIONWIDE
                && self.regions.by_code(code).is_none()
            {
                return Err(format!(
                    "rows: region {} is not in GB/T 2260",
                    format_code(code)
                ));
            }
        }
        Ok(())
    }

    /// The learned preference model in use, if any.
    pub fn learned(&self) -> Option<&Arc<PreferenceModel>> {
        self.learned.as_ref()
    }

    pub fn regions(&self) -> &RegionTree {
        &self.regions
    }
    /// The shared region tree, to build a changed network on.
    pub fn regions_arc(&self) -> Arc<RegionTree> {
        self.regions.clone()
    }
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }
    pub fn guides(&self) -> &[Guide] {
        &self.guides
    }
    pub fn store(&self, idx: u32) -> &Store {
        &self.stores[idx as usize]
    }
    /// The hot-path view of a store.
    pub fn store_key(&self, idx: u32) -> &StoreKey {
        &self.keys[idx as usize]
    }
    /// The hot-path view of a guide.
    pub fn guide_key(&self, idx: u32) -> &GuideKey {
        &self.guide_keys[idx as usize]
    }
    /// A store's regional preference per category (0 for categories it does not carry).
    pub fn store_preference(&self, idx: u32) -> &[f32] {
        let n = self.spec.categories.len();
        &self.preferences[idx as usize * n..(idx as usize + 1) * n]
    }
    /// A region's taste: what its customers buy, one share per category summing to 1 (all 0
    /// when the matrix has no row on the region's chain).
    pub fn region_taste(&self, region: RegionId) -> &[f32] {
        let n = self.spec.categories.len();
        &self.tastes[region.index() * n..(region.index() + 1) * n]
    }
    pub fn guide(&self, idx: u32) -> &Guide {
        &self.guides[idx as usize]
    }
    pub fn store_index(&self, id: &str) -> Option<u32> {
        self.store_by_id.get(id).copied()
    }
    pub fn guide_index(&self, id: &str) -> Option<u32> {
        self.guide_by_id.get(id).copied()
    }
    pub fn categories(&self) -> &[String] {
        &self.spec.categories
    }
    pub fn category_index(&self, name: &str) -> Option<usize> {
        self.preference.category_index(name)
    }
    pub fn preference(&self) -> &PreferenceMatrix {
        &self.preference
    }
    /// Content hash of the spec.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Stores in a region's subtree; the root's list is every store.
    pub fn stores_in(&self, region: RegionId) -> StoresIn<'_> {
        if region == self.regions.root() {
            StoresIn::All(0..self.stores.len() as u32)
        } else {
            StoresIn::List(self.region_stores[region.index()].iter())
        }
    }

    /// Stores within `radius_km` of `at`, with their distance, in no particular order.
    pub fn stores_within(&self, at: &Location, radius_km: f64, out: &mut Vec<(u32, f64)>) {
        out.clear();
        let dlat = radius_km / 111.19;
        let coslat = at.lat.to_radians().cos().abs().max(0.01);
        let dlon = (radius_km / (111.19 * coslat)).min(180.0);
        let lo = cell(&Location {
            lat: at.lat - dlat,
            lon: at.lon - dlon,
        });
        let hi = cell(&Location {
            lat: at.lat + dlat,
            lon: at.lon + dlon,
        });
        for a in lo.0..=hi.0 {
            for b in lo.1..=hi.1 {
                if let Some(list) = self.grid.get(&(a, b)) {
                    for &s in list {
                        let d = at.distance_km(&self.stores[s as usize].location);
                        if d <= radius_km {
                            out.push((s, d));
                        }
                    }
                }
            }
        }
    }

    /// The 12-digit code of a store's region.
    pub fn store_region_code(&self, idx: u32) -> String {
        format_code(self.regions.get(self.store(idx).region).code)
    }
}

/// Iterator over store indexes of a region subtree.
#[derive(Debug, Clone)]
pub enum StoresIn<'a> {
    All(Range<u32>),
    List(std::slice::Iter<'a, u32>),
}

impl Iterator for StoresIn<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        match self {
            StoresIn::All(r) => r.next(),
            StoresIn::List(it) => it.next().copied(),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            StoresIn::All(r) => r.size_hint(),
            StoresIn::List(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for StoresIn<'_> {}
