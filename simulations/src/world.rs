//! The simulated world of a scenario: the network the engine sees, the ground truth it does not
//! (true regional preference per store, each guide's skill, each lead's basket and conversion
//! draw), and the arrivals of each day. Everything is drawn from the scenario's seed, so the
//! same scenario gives the same world, and every policy meets the same leads.

use crate::scenario::{Checked, Scenario, in_region};
use leadrouter::catalog::{
    GenerateSpec, Network, NetworkFiles, NetworkSpec, RegionTree, demo_files, generate,
};
use leadrouter::domain::{Channel, Day, Interest, Lead, Location, SplitMix64};
use leadrouter::policy::Candidate;
use std::sync::Arc;

/// One simulated lead with what only the truth knows of it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub lead: Lead,
    /// Normalised interests: (category index, weight), weights summing to 1.
    pub interests: Vec<(usize, f32)>,
    /// The basket if the lead converts, in cents.
    pub basket_cents: i64,
    /// The lead converts with guide j when `draw < p_ij`: one draw shared by every policy
    /// (common random numbers), so sampled differences come from the routing, not the dice.
    pub draw: f64,
    /// The store the lead was drawn near (a member's home store).
    pub home_store: u32,
    /// The member, when the lead has one (`members.anonymous` of leads do not).
    pub member: Option<Visit>,
    /// Whether the guide who serves the lead also makes the sale (`members.guide_sells`).
    pub sells: bool,
    /// When the order is refunded: (ms after the order, cents).
    pub refund: Option<(i64, i64)>,
    /// Stores a binding may send the lead to beyond its reachable guides: those of every guide
    /// whose share link the member has opened so far (the yardstick includes their guides).
    pub stores: Vec<u32>,
}

/// A member's lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// The member's number (their id is `m<number>`).
    pub member: u32,
    /// Seen on an earlier day.
    pub returning: bool,
    /// Came through a guide's share link.
    pub link: Option<Link>,
    /// For a livestream lead: the host, a guide of the member's home store.
    pub host: Option<u32>,
}

impl Visit {
    pub fn member_id(&self) -> String {
        format!("m{}", self.member)
    }
}

/// Whose share link a lead came through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    /// The member's own guide: the guide they are or were last bound to in that run (none
    /// yet: the lead comes without a link).
    Own,
    /// This guide (of a store in the member's district).
    Guide(u32),
}

/// A member as the world knows them.
#[derive(Debug, Clone)]
struct Person {
    home: Location,
    /// Index into the anchors.
    anchor: usize,
    categories: Vec<usize>,
    /// Whether their leads state their interests.
    stated: bool,
    /// The stores of the guides whose share links they opened.
    stores: Vec<u32>,
}

/// The members so far: those of the days before `next_day`.
#[derive(Debug, Default)]
struct Population {
    next_day: u32,
    people: Vec<Person>,
}

/// How a simulated guide answers an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Decline,
    Expire,
}

/// The world of a scenario.
#[derive(Debug)]
pub struct World {
    pub regions: Arc<RegionTree>,
    pub spec: NetworkSpec,
    /// A network built from `spec`, for reading (each engine builds its own).
    pub network: Network,
    pub start: Day,
    pub time_zone: chrono_tz::Tz,
    scenario: Scenario,
    checked: Checked,
    categories: usize,
    /// True preference per store and category (all categories, carried or not).
    true_pref: Vec<f32>,
    skill: Vec<f32>,
    /// Open stores to draw leads near, with cumulative weights.
    anchors: Vec<(u32, f64)>,
    /// Interest profile per anchor (cumulative over categories), from `demand.regions` or the
    /// store's true preference.
    profiles: Vec<Vec<f64>>,
    /// Active guides per store, and per district (a store's region).
    store_guides: Vec<Vec<u32>>,
    district_guides: std::collections::HashMap<leadrouter::catalog::RegionId, Vec<u32>>,
    population: std::sync::Mutex<Population>,
    /// Per store, its place among the anchors (0 for a store leads are not drawn near).
    anchor_of: Vec<usize>,
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.next_f64().max(1e-300);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick(cumulative: &[f64], rng: &mut SplitMix64) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = rng.next_f64() * total;
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len().saturating_sub(1))
}

fn cumulate(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut t = 0.0;
    weights
        .into_iter()
        .map(|w| {
            t += w;
            t
        })
        .collect()
}

/// Local midnight of a business day, in Unix milliseconds.
pub fn day_start_ms(day: Day, tz: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    let date = chrono::NaiveDate::from_num_days_from_ce_opt(day.0 + 719_163).unwrap_or_default();
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map_or(0, |t| t.timestamp_millis())
}

impl World {
    pub fn build(s: &Scenario, checked: &Checked) -> anyhow::Result<Self> {
        let regions = Arc::new(RegionTree::embedded());
        let n = &s.network;
        let mut spec = match n.source.as_str() {
            "demo" => demo_files().parse()?.0,
            "reference" => generate(&regions, &GenerateSpec::reference()),
            "dir" => {
                let dir = n.path.as_deref().unwrap_or(std::path::Path::new("."));
                NetworkFiles::read_dir(dir)?.parse()?.0
            }
            _ => generate(
                &regions,
                &GenerateSpec {
                    stores: n.stores,
                    guides_per_store: (4, 8),
                    provinces: n
                        .provinces
                        .iter()
                        .map(|p| p.parse::<u64>().unwrap_or(0) * 1_000_000)
                        .collect(),
                    inactive_share: 0.05,
                    seed: s.seed,
                },
            ),
        };
        if n.capacity_scale != 1.0 {
            for g in &mut spec.guides {
                g.daily_capacity =
                    ((f64::from(g.daily_capacity) * n.capacity_scale).round() as u32).max(1);
            }
        }
        let network = Network::build(regions.clone(), spec.clone())
            .map_err(|e| anyhow::anyhow!("network: {e}"))?;
        let categories = network.categories().len();
        let mut rng = SplitMix64::keyed(s.seed, b"truth");
        let noise = s.truth.preference_noise;
        let drift = s.truth.preference_drift;
        // One drift factor per district and category, drawn from its own stream so that
        // turning drift on leaves every other draw as it was.
        let district_drift = |code: u64, c: usize| -> f64 {
            if drift == 0.0 {
                return 1.0;
            }
            let district = code / 1_000_000;
            let mut g = SplitMix64::keyed(s.seed ^ district.wrapping_mul(31) ^ c as u64, b"drift");
            (drift * normal(&mut g) - drift * drift / 2.0).exp()
        };
        let mut true_pref = Vec::with_capacity(network.stores().len() * categories);
        for (i, st) in network.stores().iter().enumerate() {
            let shipped = network.store_preference(i as u32);
            let code = regions.get(st.region).code;
            for (c, &p) in shipped.iter().enumerate() {
                let z = normal(&mut rng);
                let f = district_drift(code, c);
                true_pref.push(if st.categories & (1 << c) != 0 {
                    (f64::from(p) * f * (noise * z - noise * noise / 2.0).exp()).clamp(0.0, 1.0)
                        as f32
                } else {
                    ((0.1 + 0.5 * rng.next_f64()) * f).clamp(0.0, 1.0) as f32
                });
            }
        }
        let skill = network
            .guides()
            .iter()
            .map(|_| (s.truth.skill_sd * normal(&mut rng)) as f32)
            .collect();
        for (i, r) in s.demand.regions.iter().enumerate() {
            for k in r.interests.keys() {
                if network.category_index(k).is_none() {
                    anyhow::bail!(
                        "demand.regions[{i}].interests.{k}: not a category of the network ({})",
                        network.categories().join(", ")
                    );
                }
            }
        }
        let mut anchors = Vec::new();
        let mut profiles = Vec::new();
        let mut total = 0.0;
        for (i, st) in network.stores().iter().enumerate() {
            if !st.open {
                continue;
            }
            let code = regions.get(st.region).code;
            let profile = s
                .demand
                .regions
                .iter()
                .rev()
                .find(|r| in_region(code, &r.region));
            let w = profile.map_or(1.0, |r| r.weight);
            if w <= 0.0 {
                continue;
            }
            total += w;
            anchors.push((i as u32, total));
            let weights: Vec<f64> = match profile.filter(|r| !r.interests.is_empty()) {
                Some(r) => (0..categories)
                    .map(|c| {
                        r.interests
                            .get(&network.categories()[c])
                            .copied()
                            .unwrap_or(0.0)
                    })
                    .collect(),
                None => true_pref[i * categories..(i + 1) * categories]
                    .iter()
                    .map(|&p| f64::from(p))
                    .collect(),
            };
            profiles.push(cumulate(weights));
        }
        if anchors.is_empty() {
            anyhow::bail!("network: no open store to draw leads near");
        }
        let mut anchor_of = vec![0; network.stores().len()];
        for (k, &(store, _)) in anchors.iter().enumerate() {
            anchor_of[store as usize] = k;
        }
        let mut store_guides = vec![Vec::new(); network.stores().len()];
        let mut district_guides: std::collections::HashMap<_, Vec<u32>> = Default::default();
        for (j, g) in network.guides().iter().enumerate() {
            if network.guide_key(j as u32).active {
                store_guides[g.store as usize].push(j as u32);
                district_guides
                    .entry(network.store(g.store).region)
                    .or_default()
                    .push(j as u32);
            }
        }
        Ok(Self {
            regions,
            spec,
            network,
            start: checked.start,
            time_zone: checked.time_zone,
            scenario: s.clone(),
            checked: checked.clone(),
            categories,
            true_pref,
            skill,
            anchors,
            profiles,
            store_guides,
            district_guides,
            population: Default::default(),
            anchor_of,
        })
    }

    /// A fresh network for an engine.
    pub fn fresh_network(&self) -> Network {
        // `spec` built once already: it cannot fail now.
        Network::build(self.regions.clone(), self.spec.clone()).unwrap_or_else(|_| {
            unreachable!("the world's network spec was checked when the world was built")
        })
    }

    pub fn day(&self, index: u32) -> Day {
        Day(self.start.0 + index as i32)
    }

    /// The arrivals of day `index` (0-based), in time order. Members come back from earlier
    /// days: the population is built day by day (asking for an earlier day again rebuilds it).
    pub fn arrivals(&self, index: u32) -> Vec<Arrival> {
        let mut pop = self.population.lock().unwrap_or_else(|e| e.into_inner());
        if pop.next_day > index {
            *pop = Population::default();
        }
        while pop.next_day < index {
            let d = pop.next_day;
            self.day_arrivals(d, &mut pop);
        }
        self.day_arrivals(index, &mut pop)
    }

    fn day_arrivals(&self, index: u32, pop: &mut Population) -> Vec<Arrival> {
        let mut out = self.drawn(index);
        self.meet(index, &mut out, pop);
        pop.next_day = index + 1;
        out.sort_by(|x, y| {
            x.lead
                .occurred_at_ms
                .cmp(&y.lead.occurred_at_ms)
                .then_with(|| x.lead.lead_id.cmp(&y.lead.lead_id))
        });
        out
    }

    /// Who the day's leads are, what they do and what happens to their orders, drawn from a
    /// stream of its own (the day's leads, their times, places and baskets stay as drawn).
    fn meet(&self, index: u32, out: &mut [Arrival], pop: &mut Population) {
        let m = &self.scenario.members;
        let mut rng = SplitMix64::keyed(
            self.scenario.seed ^ u64::from(index).wrapping_mul(0x51_7cc1),
            b"members",
        );
        let before = pop.people.len();
        let day_ms = 86_400_000.0;
        // The day's regular leads come first, then the bursts' (whose channel is the burst's).
        let regular = self.scenario.demand.leads_per_day as usize;
        for (i, a) in out.iter_mut().enumerate() {
            a.sells = rng.next_f64() < m.sells(a.lead.channel);
            if rng.next_f64() < m.refund_rate {
                let after = 3_600_000 + (rng.next_f64() * f64::from(m.refund_days) * day_ms) as i64;
                let cents = if rng.next_f64() < m.refund_partial {
                    ((a.basket_cents as f64 * (0.1 + 0.8 * rng.next_f64())).round() as i64)
                        .clamp(1, a.basket_cents)
                } else {
                    a.basket_cents
                };
                a.refund = Some((after, cents));
            }
            if !m.any() || rng.next_f64() < m.anonymous {
                continue;
            }
            let returning = before > 0 && rng.next_f64() < m.returning;
            let number = if returning {
                let j = rng.below(before as u64) as usize;
                let p = &pop.people[j];
                let store = self.anchors[p.anchor].0;
                a.home_store = store;
                a.lead.location = Some(p.home);
                a.lead.region_code = leadrouter::catalog::format_code(
                    self.regions.get(self.network.store(store).region).code,
                );
                let w = 1.0 / p.categories.len() as f32;
                a.interests = p.categories.iter().map(|&c| (c, w)).collect();
                a.lead.interests = Vec::new();
                if p.stated {
                    a.lead.interests = p
                        .categories
                        .iter()
                        .map(|&c| Interest {
                            category: self.network.categories()[c].clone(),
                            weight: 1.0,
                        })
                        .collect();
                }
                j
            } else {
                let anchor = self.anchor_of[a.home_store as usize];
                pop.people.push(Person {
                    home: a
                        .lead
                        .location
                        .unwrap_or(self.network.store(a.home_store).location),
                    anchor,
                    categories: a.interests.iter().map(|&(c, _)| c).collect(),
                    stated: !a.lead.interests.is_empty(),
                    stores: Vec::new(),
                });
                pop.people.len() - 1
            };
            let link = (i < regular && rng.next_f64() < m.share_link).then(|| {
                if returning && rng.next_f64() < m.share_link_own {
                    Some(Link::Own)
                } else {
                    let region = self.network.store(a.home_store).region;
                    self.district_guides
                        .get(&region)
                        .filter(|g| !g.is_empty())
                        .map(|g| Link::Guide(g[rng.below(g.len() as u64) as usize]))
                }
            });
            let link = link.flatten();
            if link.is_some() {
                a.lead.channel = Channel::MiniProgram;
            }
            let person = &mut pop.people[number];
            if let Some(Link::Guide(g)) = link {
                let store = self.network.guide(g).store;
                if !person.stores.contains(&store) {
                    person.stores.push(store);
                }
            }
            a.stores = person.stores.clone();
            let host = (a.lead.channel == Channel::Livestream)
                .then(|| {
                    let g = &self.store_guides[a.home_store as usize];
                    (!g.is_empty()).then(|| g[rng.below(g.len() as u64) as usize])
                })
                .flatten();
            a.member = Some(Visit {
                member: number as u32,
                returning,
                link,
                host,
            });
        }
    }

    /// The day's leads as drawn, before members.
    fn drawn(&self, index: u32) -> Vec<Arrival> {
        let s = &self.scenario;
        let day = self.day(index);
        let start = day_start_ms(day, self.time_zone);
        let mut rng = SplitMix64::keyed(s.seed ^ u64::from(index).wrapping_mul(0x9e37), b"day");
        let hours = cumulate(s.demand.hourly.iter().copied());
        let mut out = Vec::with_capacity(s.demand.leads_per_day as usize);
        let channels: Vec<f64> = self.checked.channels.iter().map(|c| c.1).collect();
        let anchors: Vec<f64> = self.anchors.iter().map(|a| a.1).collect();
        for k in 0..s.demand.leads_per_day {
            let h = pick(&hours, &mut rng) as i64;
            let at = start + h * 3_600_000 + (rng.next_f64() * 3_600_000.0) as i64;
            let ch = self.checked.channels[pick(&channels, &mut rng)].0;
            let a = pick(&anchors, &mut rng);
            out.push(self.arrival(&mut rng, format!("d{index}-{k}"), at, ch, a));
        }
        for (b_i, b) in s.demand.bursts.iter().enumerate() {
            if b.day.is_some_and(|d| d != index) {
                continue;
            }
            let anchors: Vec<usize> = (0..self.anchors.len())
                .filter(|&a| {
                    b.region.as_deref().is_none_or(|r| {
                        let st = self.network.store(self.anchors[a].0);
                        in_region(self.regions.get(st.region).code, r)
                    })
                })
                .collect();
            if anchors.is_empty() {
                continue;
            }
            let from = start + i64::from(b.hour) * 3_600_000;
            let span = i64::from(b.minutes) * 60_000;
            for k in 0..b.leads {
                let at = from + (rng.next_f64() * span as f64) as i64;
                let a = anchors[rng.below(anchors.len() as u64) as usize];
                let ch = self.checked.burst_channels[b_i];
                out.push(self.arrival(&mut rng, format!("d{index}-b{b_i}-{k}"), at, ch, a));
            }
        }
        out
    }

    fn arrival(
        &self,
        rng: &mut SplitMix64,
        lead_id: String,
        at_ms: i64,
        channel: Channel,
        anchor: usize,
    ) -> Arrival {
        let d = &self.scenario.demand;
        let store = self.network.store(self.anchors[anchor].0);
        let km = d.spread_km / std::f64::consts::SQRT_2;
        let lat = (store.location.lat + normal(rng) * km / 111.0).clamp(-89.0, 89.0);
        let lon_km = 111.0 * lat.to_radians().cos().max(0.05);
        let lon = (store.location.lon + normal(rng) * km / lon_km).clamp(-179.9, 179.9);
        let profile = &self.profiles[anchor];
        let mut cats = vec![pick(profile, rng)];
        if rng.next_f64() < d.second_interest {
            let c = pick(profile, rng);
            if c != cats[0] {
                cats.push(c);
            }
        }
        let w = 1.0 / cats.len() as f32;
        // Drawn only when some leads stay silent, so that other scenarios keep their draws.
        let stated = d.stated >= 1.0 || rng.next_f64() < d.stated;
        let t = &self.scenario.truth;
        let sigma = t.order_value_sigma;
        let yuan = t.order_value_yuan * (sigma * normal(rng) - sigma * sigma / 2.0).exp();
        Arrival {
            lead: Lead {
                lead_id,
                member_id: None,
                channel,
                region_code: leadrouter::catalog::format_code(self.regions.get(store.region).code),
                location: Some(Location { lat, lon }),
                interests: if stated {
                    cats.iter()
                        .map(|&c| Interest {
                            category: self.network.categories()[c].clone(),
                            weight: 1.0,
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                referrer_guide_id: None,
                occurred_at_ms: at_ms,
            },
            interests: cats.iter().map(|&c| (c, w)).collect(),
            basket_cents: ((yuan * 100.0).round() as i64).max(100),
            draw: rng.next_f64(),
            home_store: self.anchors[anchor].0,
            member: None,
            sells: true,
            refund: None,
            stores: Vec::new(),
        }
    }

    /// The true probability that `a` converts with the candidate's guide.
    pub fn p_convert(&self, a: &Arrival, c: &Candidate) -> f64 {
        let t = &self.scenario.truth;
        let st = self.network.store(c.store);
        let row = &self.true_pref[c.store as usize * self.categories..][..self.categories];
        let pref: f64 = a
            .interests
            .iter()
            .filter(|(cat, _)| st.categories & (1 << cat) != 0)
            .map(|&(cat, w)| f64::from(w) * f64::from(row[cat]))
            .sum();
        let near = c.distance_km.map_or(f64::from(c.region_affinity), |km| {
            (-f64::from(km) / t.distance_scale_km).exp()
        });
        let logit = t.base
            + t.preference * pref
            + t.distance * near
            + t.tier * (f64::from(c.tier.clamp(1, 5)) - 1.0) / 4.0
            + f64::from(self.skill[c.guide as usize]);
        1.0 / (1.0 + (-logit).exp())
    }

    /// How the guide offered `a` at re-offer `hop` answers: drawn from the lead and the hop, so
    /// every policy meets the same answers.
    pub fn offer_answer(&self, a: &Arrival, hop: u64) -> Answer {
        let t = &self.scenario.truth;
        let u = SplitMix64::keyed(
            self.scenario.seed ^ hop.wrapping_mul(0x2545_f491),
            a.lead.lead_id.as_bytes(),
        )
        .next_f64();
        if u < t.offer_accept {
            Answer::Accept
        } else if u < t.offer_accept + t.offer_decline {
            Answer::Decline
        } else {
            Answer::Expire
        }
    }

    /// The true expected value (yuan) of giving `a` to the candidate's guide.
    pub fn value(&self, a: &Arrival, c: &Candidate) -> f64 {
        self.p_convert(a, c) * a.basket_cents as f64 / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(text: &str) -> World {
        let s = Scenario::parse(text).unwrap();
        let c = s.check().unwrap();
        World::build(&s, &c).unwrap()
    }

    #[test]
    fn same_seed_same_arrivals_other_seed_other_arrivals() {
        let a = world("seed = 1\n[demand]\nleads_per_day = 300");
        let b = world("seed = 1\n[demand]\nleads_per_day = 300");
        let c = world("seed = 2\n[demand]\nleads_per_day = 300");
        let key = |w: &World| {
            w.arrivals(0)
                .iter()
                .map(|x| {
                    (
                        x.lead.occurred_at_ms,
                        x.lead.region_code.clone(),
                        x.basket_cents,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert_ne!(
            key(&a),
            a.arrivals(1)
                .iter()
                .map(|x| (
                    x.lead.occurred_at_ms,
                    x.lead.region_code.clone(),
                    x.basket_cents
                ))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn arrivals_follow_the_curve_the_bursts_and_the_profiles() {
        let w = world(
            "[demand]\nleads_per_day = 4000\nhourly = [0,0,0,0,0,0,0,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0]\n\
             [[demand.bursts]]\nday = 0\nhour = 20\nminutes = 30\nleads = 500\nregion = \"440000\"\n\
             [[demand.regions]]\nregion = \"330000\"\nweight = 0\n\
             [[demand.regions]]\nregion = \"440000\"\ninterests = { shoes = 1.0 }",
        );
        let arr = w.arrivals(0);
        assert_eq!(arr.len(), 4500);
        let start = day_start_ms(w.day(0), w.time_zone);
        let hour = |a: &Arrival| (a.lead.occurred_at_ms - start) / 3_600_000;
        let bursts: Vec<&Arrival> = arr
            .iter()
            .filter(|a| a.lead.lead_id.contains("-b0-"))
            .collect();
        assert_eq!(bursts.len(), 500);
        assert!(
            bursts
                .iter()
                .all(|a| hour(a) == 20 && a.lead.channel == Channel::Livestream)
        );
        assert!(bursts.iter().all(|a| a.lead.region_code.starts_with("44")));
        let rest: Vec<&Arrival> = arr
            .iter()
            .filter(|a| !a.lead.lead_id.contains("-b"))
            .collect();
        assert!(rest.iter().all(|a| hour(a) == 10 || hour(a) == 11));
        // Zhejiang has weight 0; Guangdong's leads all want shoes.
        assert!(arr.iter().all(|a| !a.lead.region_code.starts_with("33")));
        assert!(
            arr.iter()
                .filter(|a| a.lead.region_code.starts_with("44"))
                .all(|a| a.lead.interests.iter().all(|i| i.category == "shoes"))
        );
        // Arrivals are in time order.
        assert!(
            arr.windows(2)
                .all(|p| p[0].lead.occurred_at_ms <= p[1].lead.occurred_at_ms)
        );
    }

    #[test]
    fn the_truth_rewards_what_it_says() {
        let w = world("[truth]\nskill_sd = 0\npreference = 0\ntier = 0");
        let a = &w.arrivals(0)[0];
        let c = Candidate {
            store: 0,
            guide: 0,
            distance_km: Some(1.0),
            region_affinity: 1.0,
            preference: 0.0,
            used: 0,
            capacity: 1,
            tier: 1,
        };
        let far = Candidate {
            distance_km: Some(30.0),
            ..c
        };
        assert!(w.p_convert(a, &c) > w.p_convert(a, &far));
        let v = w.value(a, &c);
        assert!((v - w.p_convert(a, &c) * a.basket_cents as f64 / 100.0).abs() < 1e-9);
    }
}
