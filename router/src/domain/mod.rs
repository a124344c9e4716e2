//! Plain types of the routing domain. Nothing here knows storage or transport.

pub mod audit;
pub mod binding;
pub mod export;
pub mod money;
pub mod offer;
mod reasons;
mod rng;
pub mod trail;
mod validation;

pub use reasons::Reasons;
pub use rng::{SplitMix64, os_random_u64};
pub use validation::{FieldError, MAX_ID_LEN, check_id, check_optional_id, short};

use std::fmt;
use std::sync::Arc;

/// Where a lead came from (DESIGN §7 `channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    MiniProgram,
    Livestream,
    Ecommerce,
    Partner,
    Booking,
    Community,
    StoreQr,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::MiniProgram,
        Channel::Livestream,
        Channel::Ecommerce,
        Channel::Partner,
        Channel::Booking,
        Channel::Community,
        Channel::StoreQr,
    ];

    /// Its place in [`Channel::ALL`] (what policies and the propensity model index by).
    pub fn index(self) -> usize {
        Channel::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }

    /// The contract's name, as used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::MiniProgram => "MINI_PROGRAM",
            Channel::Livestream => "LIVESTREAM",
            Channel::Ecommerce => "ECOMMERCE",
            Channel::Partner => "PARTNER",
            Channel::Booking => "BOOKING",
            Channel::Community => "COMMUNITY",
            Channel::StoreQr => "STORE_QR",
        }
    }
}

/// Degrees; checked by [`Location::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl Location {
    /// Checks ranges: lat in [-90, 90], lon in [-180, 180], both finite.
    pub fn new(lat: f64, lon: f64, field: &str) -> Result<Self, FieldError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(FieldError::new(
                format!("{field}.lat"),
                format!("must be a finite number in [-90, 90], got {lat}"),
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(FieldError::new(
                format!("{field}.lon"),
                format!("must be a finite number in [-180, 180], got {lon}"),
            ));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance in kilometres (haversine, mean Earth radius 6371.0088 km).
    pub fn distance_km(&self, other: &Location) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6371.0088 * a.sqrt().min(1.0).asin()
    }
}

/// One interest of a lead, as sent by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Interest {
    pub category: String,
    pub weight: f64,
}

/// A lead to be routed, as received (checked against the network by the engine).
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub lead_id: String,
    pub member_id: Option<String>,
    pub channel: Channel,
    pub region_code: String,
    pub location: Option<Location>,
    pub interests: Vec<Interest>,
    pub referrer_guide_id: Option<String>,
    /// Unix milliseconds, per the caller.
    pub occurred_at_ms: i64,
}

/// Business day: days since 1970-01-01 in the brand's time zone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

impl Day {
    /// The day of a calendar date.
    /// Parses `YYYY-MM-DD`.
    pub fn parse_date(s: &str) -> Result<Self, String> {
        let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|e| format!("must be a date YYYY-MM-DD, got {s:?} ({e})"))?;
        Ok(Self::of_date(d))
    }

    pub fn of_date(d: chrono::NaiveDate) -> Self {
        Day(chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_FROM_CE)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::NaiveDate::from_num_days_from_ce_opt(self.0 + UNIX_EPOCH_FROM_CE) {
            Some(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            None => write!(f, "day{}", self.0),
        }
    }
}

/// Where the engine found candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Radius,
    District,
    City,
    Province,
    Nationwide,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Radius => "RADIUS",
            Level::District => "DISTRICT",
            Level::City => "CITY",
            Level::Province => "PROVINCE",
            Level::Nationwide => "NATIONWIDE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Level::Radius,
            Level::District,
            Level::City,
            Level::Province,
            Level::Nationwide,
        ]
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(s))
    }
}

/// Why a lead got no guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unrouted {
    NoCandidate,
    AllAtCapacity,
    NoActiveGuide,
    /// Every offer was declined or expired (and no store queue took the lead).
    OffersExhausted,
}

impl Unrouted {
    pub fn as_str(self) -> &'static str {
        match self {
            Unrouted::NoCandidate => "NO_CANDIDATE",
            Unrouted::AllAtCapacity => "ALL_AT_CAPACITY",
            Unrouted::NoActiveGuide => "NO_ACTIVE_GUIDE",
            Unrouted::OffersExhausted => "OFFERS_EXHAUSTED",
        }
    }
}

/// A scored option the policy did not pick (or the pick itself, in [`Decision`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub store_id: Arc<str>,
    pub guide_id: Arc<str>,
    pub score: f64,
    pub reasons: Reasons,
    /// The probability the policy would have picked this guide: an exploring policy's draw, a
    /// tie's share, or 0 for a deterministic pick.
    pub propensity: f64,
}

/// The outcome of routing one lead: what is stored, replayed and returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub decision_id: String,
    pub lead: Lead,
    /// `(store_id, guide_id)` when routed.
    pub assigned: Option<(Arc<str>, Arc<str>)>,
    pub unrouted: Option<Unrouted>,
    pub policy: String,
    pub policy_version: String,
    pub score: f64,
    pub reasons: Reasons,
    pub alternatives: Vec<Alternative>,
    pub propensity: f64,
    pub level: Option<Level>,
    /// Unix milliseconds, by the service's clock.
    pub decided_at_ms: i64,
    pub day: Day,
    /// True when returned from storage for a repeated `lead_id`.
    pub replayed: bool,
    /// What the route did to its member's binding (set when the lead named a member).
    pub binding: Option<binding::RouteBinding>,
    /// Set when the route is an offer (its channel routes as offers).
    pub offer: Option<offer::Offer>,
    /// Versions of the learned models used (empty with the shipped matrix only).
    pub model_versions: Vec<String>,
    /// `(experiment, arm)` when an experiment chose the policy.
    pub arm: Option<(String, String)>,
    /// The caller's key that routed the lead (`None` without keys).
    pub recorded_by: Option<String>,
    /// 1 when first stored, +1 per replacement: what a conditional replace compares.
    pub version: u32,
}

impl Decision {
    pub fn guide_id(&self) -> Option<&str> {
        self.assigned.as_ref().map(|(_, g)| &**g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_haversine() {
        // Beijing Tiananmen to Shanghai People's Square: about 1068 km.
        let bj = Location::new(39.9075, 116.3972, "l").unwrap();
        let sh = Location::new(31.2304, 121.4737, "l").unwrap();
        let d = bj.distance_km(&sh);
        assert!((1060.0..1075.0).contains(&d), "{d}");
        assert_eq!(bj.distance_km(&bj), 0.0);
    }

    #[test]
    fn location_ranges_name_the_field() {
        let e = Location::new(91.0, 0.0, "location").unwrap_err();
        assert_eq!(e.field, "location.lat");
        let e = Location::new(0.0, f64::NAN, "location").unwrap_err();
        assert_eq!(e.field, "location.lon");
        assert!(e.rule.contains("[-180, 180]"));
    }

    #[test]
    fn day_displays_as_date() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(Day(20_415).to_string(), "2025-11-23");
    }
}
