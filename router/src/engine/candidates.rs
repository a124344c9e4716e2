//! Step 4 of route(): gather candidates through the indexes. With coordinates and a radius, first
//! the stores within the radius; then the region tree from the lead's district up (district →
//! city → province → nationwide), stopping at the first level with enough stores. Each level
//! scans only the stores of its subtree, and at most `max_stores` of them (the nearest, or the
//! best preference match without coordinates) are expanded into guides, so the cost of a route
//! grows with its candidates, not with the network.

use super::capacity::CapacityBook;
use super::validate::ValidLead;
use crate::catalog::{Network, RegionId};
use crate::domain::{Day, Level, Location, Unrouted};
use crate::policy::Candidate;
use serde::Deserialize;

/// How far and how wide to look (`[routing]` in the config file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CandidateConfig {
    /// Stop walking up the region tree once this many stores offer a guide. Default 3.
    pub min_stores: usize,
    /// Most stores whose guides are scored per lead. Default 16.
    pub max_stores: usize,
    /// Radius in km searched first when the lead has coordinates; 0 turns it off. Default 0.
    pub radius_km: f64,
    /// Highest level of the walk: `district`, `city`, `province` or `nationwide` (default).
    pub max_level: String,
    /// Weight in [0, 1] of the lead's regional taste (its region's row of the preference matrix,
    /// [`Network::region_taste`]) next to its stated interests in the preference match; a lead
    /// that states no interest is matched on its taste alone; 0 turns taste off (a lead without
    /// interests then matches every store at 0). Default 0.2.
    pub regional_taste: f64,
}

impl Default for CandidateConfig {
    fn default() -> Self {
        Self {
            min_stores: 3,
            max_stores: 16,
            radius_km: 0.0,
            max_level: "nationwide".into(),
            regional_taste: 0.2,
        }
    }
}

impl CandidateConfig {
    pub fn check(&self) -> Result<Level, String> {
        if self.min_stores == 0 {
            return Err("routing.min_stores: must be at least 1".into());
        }
        if self.max_stores < self.min_stores {
            return Err(format!(
                "routing.max_stores: must be at least min_stores ({}), got {}",
                self.min_stores, self.max_stores
            ));
        }
        if !self.radius_km.is_finite() || !(0.0..=2000.0).contains(&self.radius_km) {
            return Err(format!(
                "routing.radius_km: must be in [0, 2000], got {}",
                self.radius_km
            ));
        }
        if !self.regional_taste.is_finite() || !(0.0..=1.0).contains(&self.regional_taste) {
            return Err(format!(
                "routing.regional_taste: must be in [0, 1], got {}",
                self.regional_taste
            ));
        }
        match Level::parse(&self.max_level) {
            Some(Level::Radius) | None => Err(format!(
                "routing.max_level: must be district, city, province or nationwide, got {:?}",
                self.max_level
            )),
            Some(l) => Ok(l),
        }
    }
}

/// Where the gathered candidates came from, or why there are none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gathered {
    Found(Level),
    None(Unrouted),
}

/// Reusable buffers, so a route allocates nothing here once warm.
#[derive(Debug, Default)]
pub struct Scratch {
    stores: Vec<(u32, f32)>,
    near: Vec<(u32, f64)>,
}

struct Tally {
    eligible_stores: usize,
    active_guides: usize,
}

/// What one lead's scan reads.
#[derive(Debug)]
pub struct Scan<'a> {
    pub net: &'a Network,
    pub book: &'a CapacityBook,
    pub lead: &'a ValidLead,
    pub location: Option<&'a Location>,
    pub day: Day,
    pub cfg: &'a CandidateConfig,
    pub max_level: Level,
    /// False to list guides whatever their count today (see [`Scan::reachable`]).
    pub count_capacity: bool,
}

impl Scan<'_> {
    fn lead_chain(&self) -> [u32; 3] {
        self.net
            .regions()
            .chain(self.lead.region)
            .map(|r| r.map_or(u32::MAX - 1, |r| r.index() as u32))
    }

    /// One store's guides with capacity left (only `guide` when given), whatever the lead's
    /// interests: a member's own guide or their guide's store. The level says how far the store
    /// is from the lead in the region tree.
    pub fn gather_store(
        &self,
        scratch: &mut Scratch,
        out: &mut Vec<Candidate>,
        store: u32,
        guide: Option<u32>,
    ) -> Gathered {
        out.clear();
        let key = self.net.store_key(store);
        if !key.open {
            return Gathered::None(Unrouted::NoCandidate);
        }
        let chain = self.lead_chain();
        let mut tally = Tally {
            eligible_stores: 0,
            active_guides: 0,
        };
        scratch.stores.clear();
        scratch.stores.push((store, 0.0));
        self.expand(&chain, scratch, out, &mut tally);
        if let Some(g) = guide {
            out.retain(|c| c.guide == g);
        }
        if out.is_empty() {
            return Gathered::None(if tally.active_guides == 0 {
                Unrouted::NoActiveGuide
            } else {
                Unrouted::AllAtCapacity
            });
        }
        Gathered::Found(if key.chain[0] == chain[0] {
            Level::District
        } else if key.chain[1] == chain[1] {
            Level::City
        } else if key.chain[2] == chain[2] {
            Level::Province
        } else {
            Level::Nationwide
        })
    }

    /// Walks the lead's store sets: the stores within the radius first (when configured), then
    /// the region tree from the lead's district up to `max_level`. For each, the eligible stores
    /// (open, carrying one of the lead's interests) are cut to `max_stores` and their guides
    /// written into `out`; `visit(level, out, stores that gave a guide)` says whether to stop.
    fn walk(
        &self,
        scratch: &mut Scratch,
        out: &mut Vec<Candidate>,
        tally: &mut Tally,
        mut visit: impl FnMut(Level, &mut Vec<Candidate>, usize) -> bool,
    ) {
        let Scan {
            net,
            lead,
            location,
            cfg,
            max_level,
            ..
        } = *self;
        // The lead's district, city and province ids, as store keys hold them.
        let lead_chain = self.lead_chain();
        let eligible = |s: u32| {
            let k = net.store_key(s);
            k.open && (lead.interest_mask == 0 || k.categories & lead.interest_mask != 0)
        };
        if let (Some(at), true) = (location, cfg.radius_km > 0.0) {
            let mut near = std::mem::take(&mut scratch.near);
            net.stores_within(at, cfg.radius_km, &mut near);
            scratch.stores.clear();
            scratch.stores.extend(
                near.iter()
                    .filter(|&&(s, _)| eligible(s))
                    .map(|&(s, d)| (s, d as f32)),
            );
            scratch.near = near;
            let n = self.expand(&lead_chain, scratch, out, tally);
            if visit(Level::Radius, out, n) {
                return;
            }
        }
        let regions = net.regions();
        let chain = regions.chain(lead.region);
        let levels: [(Level, Option<RegionId>); 4] = [
            (Level::District, chain[0]),
            (Level::City, chain[1]),
            (Level::Province, chain[2]),
            (Level::Nationwide, Some(regions.root())),
        ];
        for (level, node) in levels {
            if level > max_level {
                break;
            }
            let Some(node) = node else { continue };
            scratch.stores.clear();
            scratch.stores.extend(
                net.stores_in(node)
                    .filter(|&s| eligible(s))
                    .map(|s| (s, 0.0)),
            );
            let n = self.expand(&lead_chain, scratch, out, tally);
            if visit(level, out, n) {
                return;
            }
        }
    }

    /// Writes the candidates into `out` and says where they came from, or why there are none.
    pub fn gather(&self, scratch: &mut Scratch, out: &mut Vec<Candidate>) -> Gathered {
        let min_stores = self.cfg.min_stores;
        let mut tally = Tally {
            eligible_stores: 0,
            active_guides: 0,
        };
        // The lowest level that reached the final number of stores: going up without adding a
        // store does not change where the candidates came from. The radius counts only when it
        // is enough on its own.
        let (mut last, mut best) = (None, 0);
        self.walk(scratch, out, &mut tally, |level, _, n| {
            if level == Level::Radius {
                if n >= min_stores {
                    last = Some(level);
                }
                return n >= min_stores;
            }
            if n > best {
                (last, best) = (Some(level), n);
            }
            n >= min_stores
        });
        match last {
            Some(level) => Gathered::Found(level),
            None if tally.eligible_stores == 0 => Gathered::None(Unrouted::NoCandidate),
            None if tally.active_guides == 0 => Gathered::None(Unrouted::NoActiveGuide),
            None => Gathered::None(Unrouted::AllAtCapacity),
        }
    }

    /// Every guide this lead could be given on any day, whatever the counts: the union of the
    /// store sets of every level up to `max_level` (the radius first, when configured), each cut
    /// to `max_stores` as [`Scan::gather`] cuts it, without stopping at `min_stores`. The
    /// candidates carry `used = 0`. The simulator's hindsight optimum uses this as the lead's
    /// edges, so that no policy can place a lead outside them.
    pub fn reachable(&self, scratch: &mut Scratch, out: &mut Vec<Candidate>) {
        debug_assert!(!self.count_capacity);
        let mut tally = Tally {
            eligible_stores: 0,
            active_guides: 0,
        };
        let mut all: Vec<Candidate> = Vec::new();
        let mut part = Vec::new();
        self.walk(scratch, &mut part, &mut tally, |_, part, _| {
            all.append(part);
            false
        });
        all.sort_unstable_by_key(|c| c.guide);
        all.dedup_by_key(|c| c.guide);
        *out = all;
    }

    /// Takes the eligible stores in `scratch.stores`, keeps the best `max_stores` (the nearest,
    /// or without coordinates the best preference match), and writes their guides with capacity
    /// left into `out`. Returns how many stores contributed a guide.
    fn expand(
        &self,
        lead_chain: &[u32; 3],
        scratch: &mut Scratch,
        out: &mut Vec<Candidate>,
        tally: &mut Tally,
    ) -> usize {
        let Scan {
            net,
            book,
            lead,
            location,
            day,
            cfg,
            ..
        } = *self;
        let taste = cfg.regional_taste as f32;
        out.clear();
        let stores = &mut scratch.stores;
        tally.eligible_stores = tally.eligible_stores.max(stores.len());
        if stores.len() > cfg.max_stores {
            match location {
                // Planar distance (equirectangular, squared) ranks nearby stores as well as the
                // great circle does, for a fraction of the cost.
                Some(at) => {
                    let (lat0, lon0) = (at.lat as f32, at.lon as f32);
                    let k = (at.lat.to_radians().cos() as f32).max(0.01);
                    for e in stores.iter_mut() {
                        let key = net.store_key(e.0);
                        let (dy, dx) = (key.lat - lat0, (key.lon - lon0) * k);
                        e.1 = dx * dx + dy * dy;
                    }
                }
                None => {
                    for e in stores.iter_mut() {
                        e.1 = -preference_match(net, lead, e.0, taste);
                    }
                }
            }
            stores.select_nth_unstable_by(cfg.max_stores - 1, |a, b| a.1.total_cmp(&b.1));
            stores.truncate(cfg.max_stores);
        }
        let mut contributing = 0;
        for &(s, _) in stores.iter() {
            let key = net.store_key(s);
            let distance_km = location.map(|at| {
                at.distance_km(&Location {
                    lat: f64::from(key.lat),
                    lon: f64::from(key.lon),
                }) as f32
            });
            let region_affinity = if key.chain[0] == lead_chain[0] {
                1.0
            } else if key.chain[1] == lead_chain[1] {
                0.5
            } else if key.chain[2] == lead_chain[2] {
                0.25
            } else {
                0.0
            };
            let preference = preference_match(net, lead, s, taste);
            let before = out.len();
            for g in key.guides.0..key.guides.1 {
                let guide = net.guide_key(g);
                if !guide.active {
                    continue;
                }
                tally.active_guides += 1;
                let used = if self.count_capacity {
                    book.used(g, day)
                } else {
                    0
                };
                if used >= guide.daily_capacity {
                    continue;
                }
                out.push(Candidate {
                    store: s,
                    guide: g,
                    distance_km,
                    region_affinity,
                    preference,
                    used,
                    capacity: guide.daily_capacity,
                    tier: guide.tier,
                });
            }
            if out.len() > before {
                contributing += 1;
            }
        }
        contributing
    }
}

/// The preference match route() gives `lead` at `store` with `regional_taste` (what a learned
/// model trained on exported decisions must see as the router saw it).
pub fn lead_preference(net: &Network, lead: &ValidLead, store: u32, regional_taste: f64) -> f32 {
    preference_match(net, lead, store, regional_taste as f32)
}

/// How well the store's regional preference matches what the lead wants: its stated interests
/// blended with its region's taste by `taste` (the taste alone when it stated none).
fn preference_match(net: &Network, lead: &ValidLead, store: u32, taste: f32) -> f32 {
    let pref = net.store_preference(store);
    let stated: f32 = lead.interests.iter().map(|&(c, w)| w * pref[c]).sum();
    if taste == 0.0 {
        return stated;
    }
    let taste = if lead.interests.is_empty() {
        1.0
    } else {
        taste
    };
    let regional: f32 = net
        .region_taste(lead.region)
        .iter()
        .zip(pref)
        .map(|(t, p)| t * p)
        .sum();
    (1.0 - taste) * stated + taste * regional
}
