use super::{Level, Unrouted};

/// Reason codes of a decision or an alternative, as a set: where candidates were found, why the
/// policy ranked a guide where it did, or why nothing was routed. Names are the contract's
/// strings (`LEVEL_DISTRICT`, `PREFERENCE_MATCH`, …) and list in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reasons(u32);

impl Reasons {
    pub const LEVEL_RADIUS: Reasons = Reasons(1);
    pub const LEVEL_DISTRICT: Reasons = Reasons(1 << 1);
    pub const LEVEL_CITY: Reasons = Reasons(1 << 2);
    pub const LEVEL_PROVINCE: Reasons = Reasons(1 << 3);
    pub const LEVEL_NATIONWIDE: Reasons = Reasons(1 << 4);
    pub const PREFERENCE_MATCH: Reasons = Reasons(1 << 5);
    pub const NEARBY: Reasons = Reasons(1 << 6);
    pub const SENIOR_GUIDE: Reasons = Reasons(1 << 7);
    pub const LOAD_BALANCE: Reasons = Reasons(1 << 8);
    pub const TIE_RANDOM: Reasons = Reasons(1 << 9);
    pub const ROUND_ROBIN: Reasons = Reasons(1 << 10);
    pub const NEAREST_STORE: Reasons = Reasons(1 << 11);
    pub const LEAST_LOADED: Reasons = Reasons(1 << 12);
    /// The first choice filled up under a concurrent route; a later one was taken.
    pub const CAPACITY_RACE: Reasons = Reasons(1 << 13);
    pub const NO_CANDIDATE: Reasons = Reasons(1 << 14);
    pub const ALL_AT_CAPACITY: Reasons = Reasons(1 << 15);
    pub const NO_ACTIVE_GUIDE: Reasons = Reasons(1 << 16);
    /// The member's bound guide (专属导购), inside the protection period.
    pub const BOUND: Reasons = Reasons(1 << 17);
    /// The guide whose share link brought the lead.
    pub const REFERRER: Reasons = Reasons(1 << 18);
    /// The bound guide was away or full: another guide of the same store.
    pub const BOUND_GUIDE_UNAVAILABLE: Reasons = Reasons(1 << 19);
    /// A re-offer after a guide declined or let the offer expire.
    pub const REOFFERED: Reasons = Reasons(1 << 20);
    pub const OFFERS_EXHAUSTED: Reasons = Reasons(1 << 21);
    /// The `dual_price` policy: best estimated value net of the guide's capacity price.
    pub const DUAL_PRICE: Reasons = Reasons(1 << 22);
    /// The `ranking` policy: the guide's random priority of the day.
    pub const DAILY_PRIORITY: Reasons = Reasons(1 << 23);
    /// The learned propensity model's probability of conversion weighed most.
    pub const LIKELY_TO_CONVERT: Reasons = Reasons(1 << 24);
    /// Taken from its store's queue by a guide of the store after every offer failed.
    pub const CLAIMED_FROM_QUEUE: Reasons = Reasons(1 << 25);
    /// An exploring policy's draw picked a guide other than the best scored.
    pub const EXPLORED: Reasons = Reasons(1 << 26);
    /// The guide's learned skill (conversion over their peers) weighed most.
    pub const SKILLED_GUIDE: Reasons = Reasons(1 << 27);
    /// The guide was below the fairness floor (`policy.floor` of its peers' mean load), so it
    /// came before better-scored guides above it.
    pub const LOAD_FLOOR: Reasons = Reasons(1 << 28);

    const NAMES: [&'static str; 29] = [
        "LEVEL_RADIUS",
        "LEVEL_DISTRICT",
        "LEVEL_CITY",
        "LEVEL_PROVINCE",
        "LEVEL_NATIONWIDE",
        "PREFERENCE_MATCH",
        "NEARBY",
        "SENIOR_GUIDE",
        "LOAD_BALANCE",
        "TIE_RANDOM",
        "ROUND_ROBIN",
        "NEAREST_STORE",
        "LEAST_LOADED",
        "CAPACITY_RACE",
        "NO_CANDIDATE",
        "ALL_AT_CAPACITY",
        "NO_ACTIVE_GUIDE",
        "BOUND",
        "REFERRER",
        "BOUND_GUIDE_UNAVAILABLE",
        "REOFFERED",
        "OFFERS_EXHAUSTED",
        "DUAL_PRICE",
        "DAILY_PRIORITY",
        "LIKELY_TO_CONVERT",
        "CLAIMED_FROM_QUEUE",
        "EXPLORED",
        "SKILLED_GUIDE",
        "LOAD_FLOOR",
    ];

    pub fn with(self, other: Reasons) -> Reasons {
        Reasons(self.0 | other.0)
    }

    pub fn contains(self, other: Reasons) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n)
    }

    /// The code of one name; `None` for a name this version does not know.
    pub fn from_name(name: &str) -> Option<Reasons> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Reasons(1 << i))
    }

    /// The set of the names this version knows (others are skipped).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Reasons {
        names
            .into_iter()
            .filter_map(Self::from_name)
            .fold(Reasons::default(), Reasons::with)
    }

    pub fn level(level: Level) -> Reasons {
        match level {
            Level::Radius => Self::LEVEL_RADIUS,
            Level::District => Self::LEVEL_DISTRICT,
            Level::City => Self::LEVEL_CITY,
            Level::Province => Self::LEVEL_PROVINCE,
            Level::Nationwide => Self::LEVEL_NATIONWIDE,
        }
    }

    pub fn unrouted(why: Unrouted) -> Reasons {
        match why {
            Unrouted::NoCandidate => Self::NO_CANDIDATE,
            Unrouted::AllAtCapacity => Self::ALL_AT_CAPACITY,
            Unrouted::NoActiveGuide => Self::NO_ACTIVE_GUIDE,
            Unrouted::OffersExhausted => Self::OFFERS_EXHAUSTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_names() {
        let r = Reasons::NEARBY
            .with(Reasons::TIE_RANDOM)
            .with(Reasons::LEVEL_CITY);
        assert!(r.contains(Reasons::NEARBY));
        assert!(!r.contains(Reasons::LOAD_BALANCE));
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            vec!["LEVEL_CITY", "NEARBY", "TIE_RANDOM"]
        );
        assert_eq!(Reasons::from_names(r.names()), r);
        assert_eq!(
            Reasons::from_names(["LEVEL_CITY", "FROM_THE_FUTURE"]),
            Reasons::LEVEL_CITY
        );
        assert_eq!(
            Reasons::unrouted(Unrouted::AllAtCapacity).names().next(),
            Some(Unrouted::AllAtCapacity.as_str())
        );
    }
}
