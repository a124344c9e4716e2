//! Commission splits (分佣): versioned policies of whole-percent shares by role, and the exact
//! integer-cent entries they give an order and its refunds.
//!
//! Each role with a party gets `floor(amount × share / 100)`; the rounding role takes what is
//! left, so entries always sum to the order's amount. A role without a party in an order (no
//! fulfilling store, no referrer) passes its share to the rounding role; when the rounding role
//! itself has no party, the owner takes it. Referral credit stops at two levels.

use super::parse_date;
use crate::domain::Day;
use crate::domain::trail::{
    AdjustmentRecord, LedgerEntry, OrderFacts, OrderRecord, Ownership, RefundRecord, Role,
};
use serde::{Deserialize, Serialize};

/// The party id of the brand's O2O centre.
pub const O2O_CENTRE: &str = "o2o:centre";

/// One version of the split, in force from `effective_from` (a business day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitPolicy {
    /// Named in every order it splits. Unique.
    pub version: String,
    /// First business day (YYYY-MM-DD) the policy applies to.
    pub effective_from: String,
    /// Whole percents; the five sum to 100.
    pub owner: u8,
    pub fulfilling_store: u8,
    pub o2o_centre: u8,
    pub referrer_1: u8,
    pub referrer_2: u8,
    /// The role that takes rounding leftovers and unclaimed shares.
    pub rounding: Role,
}

impl Default for SplitPolicy {
    /// The "361" split: 30 % front guide, 60 % fulfilling store, 10 % O2O centre.
    fn default() -> Self {
        Self {
            version: "361".into(),
            effective_from: "2000-01-01".into(),
            owner: 30,
            fulfilling_store: 60,
            o2o_centre: 10,
            referrer_1: 0,
            referrer_2: 0,
            rounding: Role::FulfillingStore,
        }
    }
}

impl SplitPolicy {
    fn share(&self, role: Role) -> u8 {
        match role {
            Role::Owner => self.owner,
            Role::FulfillingStore => self.fulfilling_store,
            Role::O2oCentre => self.o2o_centre,
            Role::Referrer1 => self.referrer_1,
            Role::Referrer2 => self.referrer_2,
        }
    }

    /// Checks the policy; the message names the key.
    pub fn check(&self, at: &str) -> Result<Day, String> {
        if self.version.is_empty() || self.version.len() > 64 {
            return Err(format!("{at}.version: must be 1..=64 bytes"));
        }
        let sum: u32 = Role::ALL.iter().map(|r| u32::from(self.share(*r))).sum();
        if sum != 100 {
            return Err(format!(
                "{at}: shares must sum to 100, got {sum} (owner {} + fulfilling_store {} + o2o_centre {} + referrer_1 {} + referrer_2 {})",
                self.owner,
                self.fulfilling_store,
                self.o2o_centre,
                self.referrer_1,
                self.referrer_2
            ));
        }
        parse_date(&self.effective_from).map_err(|e| format!("{at}.effective_from: {e}"))
    }

    /// The party each role has in this order, if any.
    fn party(role: Role, facts: &OrderFacts, owner: &Ownership) -> Option<String> {
        match role {
            Role::Owner => Some(owner_party(owner)),
            Role::FulfillingStore => facts
                .fulfilling_store_id
                .as_ref()
                .map(|s| format!("store:{s}")),
            Role::O2oCentre => Some(O2O_CENTRE.to_string()),
            Role::Referrer1 => facts
                .referrer_guide_ids
                .first()
                .map(|g| format!("guide:{g}")),
            Role::Referrer2 => facts
                .referrer_guide_ids
                .get(1)
                .map(|g| format!("guide:{g}")),
        }
    }

    /// The entries of an order, in role order, zero amounts left out; and the role that took
    /// the leftovers (refunds reverse through the same role).
    pub fn split(&self, facts: &OrderFacts, owner: &Ownership) -> (Vec<LedgerEntry>, Role) {
        self.split_excluding(facts, owner, &[])
    }

    /// As [`SplitPolicy::split`], crediting no referrer in `departed` (guides who had left when
    /// the order was recorded): their level's share goes to the rounding role.
    pub fn split_excluding(
        &self,
        facts: &OrderFacts,
        owner: &Ownership,
        departed: &[String],
    ) -> (Vec<LedgerEntry>, Role) {
        let amount = facts.amount_cents;
        let party = |role| {
            Self::party(role, facts, owner).filter(|p| {
                !matches!(role, Role::Referrer1 | Role::Referrer2)
                    || !departed.iter().any(|g| p.strip_prefix("guide:") == Some(g))
            })
        };
        let rounding = if party(self.rounding).is_some() {
            self.rounding
        } else {
            Role::Owner
        };
        let mut entries = Vec::with_capacity(Role::ALL.len());
        let mut given = 0i64;
        for role in Role::ALL {
            if role == rounding {
                continue;
            }
            if let Some(party) = party(role) {
                let cents = share_of(amount, i64::from(self.share(role)), 100);
                given += cents;
                entries.push(LedgerEntry {
                    party,
                    role,
                    amount_cents: cents,
                });
            }
        }
        let party = party(rounding).unwrap_or_else(|| owner_party(owner));
        entries.push(LedgerEntry {
            party,
            role: rounding,
            amount_cents: amount - given,
        });
        entries.retain(|e| e.amount_cents != 0);
        entries.sort_by_key(|e| e.role);
        (entries, rounding)
    }
}

/// `floor(amount × num / den)` without overflow, for non-negative inputs.
fn share_of(amount: i64, num: i64, den: i64) -> i64 {
    (i128::from(amount) * i128::from(num) / i128::from(den)) as i64
}

/// The party an owner is credited as.
pub fn owner_party(o: &Ownership) -> String {
    match (&o.guide_id, &o.store_id, o.channel) {
        (Some(g), _, _) => format!("guide:{g}"),
        (None, Some(s), _) => format!("store:{s}"),
        (None, None, Some(c)) => format!("channel:{}", c.as_str()),
        (None, None, None) => "channel:UNKNOWN".into(),
    }
}

/// How much of each entry `refunded` cents of the order amount reverse: proportional, floors,
/// with the `rounding` role's entry taking the leftover. `refunded = amount` gives the entries.
/// The rounding role's entry is left out of an order when its amount is zero; the last entry
/// then takes the leftover.
fn allocate(entries: &[LedgerEntry], rounding: Role, amount: i64, refunded: i64) -> Vec<i64> {
    let r = entries
        .iter()
        .position(|e| e.role == rounding)
        .unwrap_or(entries.len().saturating_sub(1));
    let mut out: Vec<i64> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i == r {
                0
            } else {
                share_of(e.amount_cents, refunded, amount)
            }
        })
        .collect();
    let given: i64 = out.iter().sum();
    if let Some(x) = out.get_mut(r) {
        *x = refunded - given;
    }
    out
}

/// The reversing entries of a refund of `cents`, after `already` cents were refunded before.
/// Negative amounts summing to `-cents`; all refunds of an order together reverse its entries
/// exactly.
pub fn reverse(
    entries: &[LedgerEntry],
    rounding: Role,
    amount: i64,
    already: i64,
    cents: i64,
) -> Vec<LedgerEntry> {
    let before = allocate(entries, rounding, amount, already);
    let after = allocate(entries, rounding, amount, already + cents);
    entries
        .iter()
        .zip(before.iter().zip(after.iter()))
        .map(|(e, (b, a))| LedgerEntry {
            party: e.party.clone(),
            role: e.role,
            amount_cents: -(a - b),
        })
        .filter(|e| e.amount_cents != 0)
        .collect()
}

/// The party holding an order's owner credit now: the last adjustment's `to_party` (in trail
/// order), else the order's owner.
pub fn current_owner<'a>(
    order: &OrderRecord,
    adjustments: impl IntoIterator<Item = &'a AdjustmentRecord>,
) -> String {
    adjustments
        .into_iter()
        .last()
        .map(|a| a.to_party.clone())
        .unwrap_or_else(|| owner_party(&order.ownership))
}

/// The owner role's credit left on an order after `refunds`: what an adjustment moves.
pub fn owner_net<'a>(
    order: &OrderRecord,
    refunds: impl IntoIterator<Item = &'a RefundRecord>,
) -> i64 {
    let owner = |entries: &[LedgerEntry]| -> i64 {
        entries
            .iter()
            .filter(|e| e.role == Role::Owner)
            .map(|e| e.amount_cents)
            .sum()
    };
    owner(&order.entries) + refunds.into_iter().map(|r| owner(&r.entries)).sum::<i64>()
}

/// The entries of an adjustment moving the owner credit left (`net`) from one party to another.
pub fn adjustment_entries(from: &str, to: &str, net: i64) -> Vec<LedgerEntry> {
    if net == 0 {
        return vec![];
    }
    vec![
        LedgerEntry {
            party: from.to_string(),
            role: Role::Owner,
            amount_cents: -net,
        },
        LedgerEntry {
            party: to.to_string(),
            role: Role::Owner,
            amount_cents: net,
        },
    ]
}

/// A refund's reversing entries ([`reverse`]) when the owner credit now sits with `owner`.
pub fn reverse_to(order: &OrderRecord, already: i64, cents: i64, owner: &str) -> Vec<LedgerEntry> {
    let mut entries = reverse(
        &order.entries,
        order.rounding_role,
        order.facts.amount_cents,
        already,
        cents,
    );
    for e in &mut entries {
        if e.role == Role::Owner {
            e.party = owner.to_string();
        }
    }
    entries
}

/// The policy in force on `day`: the latest `effective_from` not after it.
pub fn policy_for(policies: &[(Day, SplitPolicy)], day: Day) -> Option<&SplitPolicy> {
    policies
        .iter()
        .filter(|(from, _)| *from <= day)
        .max_by_key(|(from, _)| *from)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;
    use crate::domain::trail::OwnershipRule;
    use proptest::prelude::*;

    fn facts(amount: i64, store: bool, referrers: &[&str]) -> OrderFacts {
        OrderFacts {
            order_id: "O1".into(),
            amount_cents: amount,
            paid_channel: Channel::MiniProgram,
            fulfilling_store_id: store.then(|| "S1".into()),
            sharing_guide_id: None,
            referrer_guide_ids: referrers.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn owner(guide: bool) -> Ownership {
        Ownership {
            guide_id: guide.then(|| "G1".into()),
            store_id: Some("S2".into()),
            channel: None,
            rule: OwnershipRule::LastTouch,
            rule_version: "v".into(),
            deciding_events: vec![],
            explanation: String::new(),
        }
    }

    fn amounts(entries: &[LedgerEntry]) -> Vec<(&str, i64)> {
        entries
            .iter()
            .map(|e| (e.party.as_str(), e.amount_cents))
            .collect()
    }

    #[test]
    fn the_361_split_and_its_leftover() {
        let p = SplitPolicy::default();
        let (e, r) = p.split(&facts(10_001, true, &[]), &owner(true));
        assert_eq!(r, Role::FulfillingStore);
        // 30 % of 10001 = 3000.3 → 3000; 10 % → 1000; the store takes 6001.
        assert_eq!(
            amounts(&e),
            vec![("guide:G1", 3000), ("store:S1", 6001), ("o2o:centre", 1000)]
        );
        // Without a guide the owning store is credited.
        let (e, _) = p.split(&facts(100, true, &[]), &owner(false));
        assert_eq!(e[0].party, "store:S2");
    }

    #[test]
    fn missing_parties_pass_their_share_to_the_rounding_role() {
        let p = SplitPolicy {
            version: "stage2".into(),
            owner: 25,
            fulfilling_store: 60,
            o2o_centre: 5,
            referrer_1: 6,
            referrer_2: 4,
            ..Default::default()
        };
        p.check("splits[0]").unwrap();
        // Three referrers: only two levels are credited.
        let (e, _) = p.split(&facts(1000, true, &["R1", "R2", "R3"]), &owner(true));
        assert_eq!(
            amounts(&e),
            vec![
                ("guide:G1", 250),
                ("store:S1", 600),
                ("o2o:centre", 50),
                ("guide:R1", 60),
                ("guide:R2", 40)
            ]
        );
        // No referrer: the store takes their 10 %.
        let (e, _) = p.split(&facts(1000, true, &[]), &owner(true));
        assert_eq!(
            amounts(&e),
            vec![("guide:G1", 250), ("store:S1", 700), ("o2o:centre", 50)]
        );
        // No fulfilling store either: the owner is the rounding party.
        let (e, r) = p.split(&facts(1000, false, &[]), &owner(true));
        assert_eq!(r, Role::Owner);
        assert_eq!(amounts(&e), vec![("guide:G1", 950), ("o2o:centre", 50)]);
    }

    #[test]
    fn a_zero_rounding_entry_still_reverses_exactly() {
        // The rounding role (fulfilling store) has a 0 % share: its entry is left out.
        let p = SplitPolicy {
            owner: 64,
            fulfilling_store: 0,
            o2o_centre: 0,
            referrer_1: 0,
            referrer_2: 36,
            ..Default::default()
        };
        let amount = 5_598_480_900;
        let (e, r) = p.split(&facts(amount, true, &["R1", "R2"]), &owner(true));
        assert!(e.iter().all(|x| x.role != r));
        let rev = reverse(&e, r, amount, 0, amount);
        assert_eq!(rev.iter().map(|x| x.amount_cents).sum::<i64>(), -amount);
        for (a, b) in e.iter().zip(&rev) {
            assert_eq!(a.amount_cents, -b.amount_cents);
        }
    }

    #[test]
    fn bad_policies_name_the_key() {
        let p = SplitPolicy {
            owner: 31,
            ..Default::default()
        };
        assert!(
            p.check("attribution.splits[1]")
                .unwrap_err()
                .contains("attribution.splits[1]: shares must sum to 100, got 101")
        );
        let p = SplitPolicy {
            effective_from: "2026-13-01".into(),
            ..Default::default()
        };
        assert!(p.check("s").unwrap_err().starts_with("s.effective_from"));
    }

    #[test]
    fn the_policy_in_force_follows_effective_dates() {
        let a = SplitPolicy::default();
        let b = SplitPolicy {
            version: "b".into(),
            ..Default::default()
        };
        let ps = vec![(Day(10), a), (Day(20), b)];
        assert_eq!(policy_for(&ps, Day(19)).unwrap().version, "361");
        assert_eq!(policy_for(&ps, Day(20)).unwrap().version, "b");
        assert!(policy_for(&ps, Day(9)).is_none());
    }

    proptest! {
        #[test]
        fn entries_and_refunds_sum_exactly(
            amount in 1i64..10_000_000_000,
            shares in proptest::collection::vec(0u8..=100, 4),
            store in any::<bool>(),
            refs in 0usize..4,
            refunds in proptest::collection::vec(1i64..1_000_000, 0..6),
        ) {
            // Turn four random numbers into five shares summing to 100.
            let mut cuts: Vec<u8> = shares.clone();
            cuts.sort();
            let s = [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], cuts[3] - cuts[2], 100 - cuts[3]];
            let p = SplitPolicy {
                owner: s[0], fulfilling_store: s[1], o2o_centre: s[2], referrer_1: s[3], referrer_2: s[4],
                ..Default::default()
            };
            p.check("p").unwrap();
            let referrers: Vec<&str> = ["R1", "R2", "R3"][..refs.min(3)].to_vec();
            let (entries, rounding) = p.split(&facts(amount, store, &referrers), &owner(true));
            prop_assert_eq!(entries.iter().map(|e| e.amount_cents).sum::<i64>(), amount);
            prop_assert!(entries.iter().all(|e| e.amount_cents > 0));
            prop_assert!(entries.iter().all(|e| e.role != Role::Referrer2 || refs >= 2));
            // Refunds in pieces, then the rest: each sums to its amount; all reverse the entries.
            let mut refunded = 0i64;
            let mut net: std::collections::HashMap<(String, Role), i64> = entries.iter().map(|e| ((e.party.clone(), e.role), e.amount_cents)).collect();
            let mut pieces: Vec<i64> = refunds.into_iter().map(|r| r.min(amount)).collect();
            pieces.push(amount);
            for piece in pieces {
                let cents = piece.min(amount - refunded);
                if cents == 0 { continue; }
                let rev = reverse(&entries, rounding, amount, refunded, cents);
                prop_assert_eq!(rev.iter().map(|e| e.amount_cents).sum::<i64>(), -cents);
                for e in rev {
                    *net.get_mut(&(e.party.clone(), e.role)).unwrap() += e.amount_cents;
                }
                refunded += cents;
            }
            prop_assert_eq!(refunded, amount);
            prop_assert!(net.values().all(|v| *v == 0), "{:?}", net);
        }
    }
}
