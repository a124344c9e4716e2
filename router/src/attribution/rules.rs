//! Ownership rule sets (DESIGN §5): who an order counts for, computed from the member's trail as
//! it stood when the order was recorded. Pure: the same trail, order and rule set always give the
//! same owner, which is what lets an exported trail be re-checked offline.

use super::parse_date;
use crate::domain::trail::{OrderFacts, Ownership, OwnershipRule, TouchKind, TrailEvent};
use crate::domain::{Channel, Day};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// One version of the ownership rules, in force from `effective_from` (a business day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OwnershipRuleSet {
    /// Named in every ownership it decides. Unique.
    pub version: String,
    /// First business day (YYYY-MM-DD, the brand's time zone) the set applies to.
    pub effective_from: String,
    /// A binding (a `BINDING` touch) protects the member for this many days; 0 disables the
    /// bound-guide rule. Default 30.
    pub protection_days: u32,
    /// When true the order's sharing (service) guide wins over the bound guide; default false:
    /// the bound guide within protection wins.
    pub service_guide_first: bool,
    /// The last qualifying touch counts for this many days before the order. Default 7.
    pub lookback_days: u32,
    /// Touch kinds that can earn an order through the last-touch rule.
    pub qualifying: Vec<TouchKind>,
    /// A guide who has left the brand is never credited for an order placed after leaving.
    /// `store` (default): a rule that finds a departed guide credits that guide's store
    /// instead; `next_rule`: the rule finds nothing and the next rule decides (the paid channel
    /// last).
    pub departed: Departed,
}

/// What a rule does when the guide it finds has left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Departed {
    #[default]
    Store,
    NextRule,
}

impl Default for OwnershipRuleSet {
    fn default() -> Self {
        Self {
            version: "ownership-v1".into(),
            effective_from: "2000-01-01".into(),
            protection_days: 30,
            service_guide_first: false,
            lookback_days: 7,
            qualifying: vec![
                TouchKind::ShareLinkClick,
                TouchKind::LivestreamView,
                TouchKind::GuideChat,
                TouchKind::StoreVisit,
                TouchKind::CouponClaim,
                TouchKind::Binding,
            ],
            departed: Departed::Store,
        }
    }
}

impl OwnershipRuleSet {
    /// Checks the set; the message names the key.
    pub fn check(&self, at: &str) -> Result<Day, String> {
        if self.version.is_empty() || self.version.len() > 64 {
            return Err(format!("{at}.version: must be 1..=64 bytes"));
        }
        if self.protection_days > 3650 {
            return Err(format!(
                "{at}.protection_days: at most 3650, got {}",
                self.protection_days
            ));
        }
        if self.lookback_days > 3650 {
            return Err(format!(
                "{at}.lookback_days: at most 3650, got {}",
                self.lookback_days
            ));
        }
        parse_date(&self.effective_from).map_err(|e| format!("{at}.effective_from: {e}"))
    }

    /// Oldest `recorded_at` an event can have and still matter to an order at `at_ms`: events
    /// are read newest first and the read stops at the first one recorded before this. An event
    /// happens at most one day after it is recorded (`max_future_secs` is capped at a day), so one
    /// recorded earlier happened before the look-back and the protection windows.
    pub fn history_horizon_ms(&self, at_ms: i64) -> i64 {
        let days = i64::from(self.lookback_days.max(self.protection_days)) + 1;
        at_ms.saturating_sub(days * DAY_MS)
    }

    /// Of `newest_first`, the events [`OwnershipRuleSet::decide`] is given: those before the
    /// first recorded before the horizon, at most `limit`.
    pub fn history<'a>(
        &self,
        at_ms: i64,
        newest_first: impl IntoIterator<Item = &'a TrailEvent>,
        limit: usize,
    ) -> Vec<TrailEvent> {
        let horizon = self.history_horizon_ms(at_ms);
        newest_first
            .into_iter()
            .take_while(|e| e.recorded_at_ms >= horizon)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Decides who owns `facts`, paid at `at_ms`, from `history`: the member's earlier events,
    /// newest first. `sharing_guide_store` is the sharing guide's store when the order was
    /// recorded. `binding` is the member's latest binding event before the order, however old.
    /// `departed` says whether a guide had left the brand when the order was recorded (the
    /// network then; the order record's `departed_guide_ids` when recomputing).
    pub fn decide(
        &self,
        facts: &OrderFacts,
        sharing_guide_store: Option<&str>,
        at_ms: i64,
        history: &[TrailEvent],
        binding: Option<&TrailEvent>,
        departed: &dyn Fn(&str) -> bool,
    ) -> Ownership {
        let order = [
            OwnershipRule::BoundGuide,
            OwnershipRule::ServiceGuide,
            OwnershipRule::LastTouch,
        ];
        let order = if self.service_guide_first {
            [order[1], order[0], order[2]]
        } else {
            order
        };
        for rule in order {
            let found = match rule {
                OwnershipRule::BoundGuide => self.bound_guide(at_ms, history, binding),
                OwnershipRule::ServiceGuide => facts.sharing_guide_id.as_ref().map(|g| {
                    self.owner(
                        rule,
                        Some(g.clone()),
                        sharing_guide_store.map(str::to_string),
                        vec![],
                        format!("the order names {g} as its sharing (service) guide"),
                    )
                }),
                OwnershipRule::LastTouch => self.last_touch(at_ms, history),
                OwnershipRule::PaidChannel => None,
            };
            if let Some(o) = found.and_then(|o| self.unless_departed(o, departed)) {
                return o;
            }
        }
        Ownership {
            guide_id: None,
            store_id: None,
            channel: Some(facts.paid_channel),
            rule: OwnershipRule::PaidChannel,
            rule_version: self.version.clone(),
            deciding_events: vec![],
            explanation: format!(
                "no binding in protection, no sharing guide and no qualifying touch in the last {} days: the order counts for its paid channel {}",
                self.lookback_days,
                facts.paid_channel.as_str()
            ),
        }
    }

    /// A departed guide's ownership goes to their store, or to nobody (the next rule decides).
    fn unless_departed(&self, o: Ownership, departed: &dyn Fn(&str) -> bool) -> Option<Ownership> {
        let Some(g) = o.guide_id.as_deref().filter(|g| departed(g)) else {
            return Some(o);
        };
        match (self.departed, &o.store_id) {
            (Departed::Store, Some(store)) => Some(Ownership {
                explanation: format!(
                    "{}; {g} had left the brand when the order was recorded, so it counts for their store {store} (departed = store)",
                    o.explanation
                ),
                guide_id: None,
                ..o
            }),
            _ => None,
        }
    }

    fn owner(
        &self,
        rule: OwnershipRule,
        guide_id: Option<String>,
        store_id: Option<String>,
        deciding_events: Vec<u64>,
        explanation: String,
    ) -> Ownership {
        Ownership {
            guide_id,
            store_id,
            channel: None::<Channel>,
            rule,
            rule_version: self.version.clone(),
            deciding_events,
            explanation,
        }
    }

    /// The latest binding that happened by `at_ms`, if it still protects: a binding event (with
    /// its own protection, set by the binding rules) or a `BINDING` touch (protected for
    /// `protection_days`), whichever happened later.
    fn bound_guide(
        &self,
        at_ms: i64,
        history: &[TrailEvent],
        binding: Option<&TrailEvent>,
    ) -> Option<Ownership> {
        let touch = latest(history, at_ms, |t| t.kind == TouchKind::Binding);
        let event = binding.filter(|e| e.occurred_at_ms <= at_ms);
        if let Some(e) = event
            && touch.is_none_or(|(t, _)| (e.occurred_at_ms, e.seq) > (t.occurred_at_ms, t.seq))
        {
            let b = e.binding()?;
            if !b.state.protected_at(at_ms) {
                return None;
            }
            let guide = b.state.guide_id.clone();
            return Some(self.owner(
                OwnershipRule::BoundGuide,
                Some(guide.clone()),
                Some(b.state.store_id.clone()),
                vec![e.seq],
                format!(
                    "the member is bound to {guide} ({} by {}, event {}, rule set {}), protected until {} ms",
                    b.change.as_str(),
                    b.actor,
                    e.seq,
                    b.state.rule_version,
                    b.state.protected_until_ms
                ),
            ));
        }
        if self.protection_days == 0 {
            return None;
        }
        let (e, t) = touch?;
        let until = e.occurred_at_ms + i64::from(self.protection_days) * DAY_MS;
        if at_ms > until {
            return None;
        }
        let guide = t.guide_id.clone()?;
        Some(self.owner(
            OwnershipRule::BoundGuide,
            Some(guide.clone()),
            t.store_id.clone(),
            vec![e.seq],
            format!(
                "the member bound {guide} (event {}), protected for {} days, until {} ms",
                e.seq, self.protection_days, until
            ),
        ))
    }

    fn last_touch(&self, at_ms: i64, history: &[TrailEvent]) -> Option<Ownership> {
        let from = at_ms - i64::from(self.lookback_days) * DAY_MS;
        let (e, t) = latest(history, at_ms, |t| {
            self.qualifying.contains(&t.kind) && (t.guide_id.is_some() || t.store_id.is_some())
        })
        .filter(|(e, _)| e.occurred_at_ms >= from)?;
        let who = t
            .guide_id
            .as_deref()
            .or(t.store_id.as_deref())
            .unwrap_or_default();
        Some(self.owner(
            OwnershipRule::LastTouch,
            t.guide_id.clone(),
            t.store_id.clone(),
            vec![e.seq],
            format!(
                "the last qualifying touch within {} days was {} with {who} (event {})",
                self.lookback_days,
                t.kind.as_str(),
                e.seq
            ),
        ))
    }
}

/// The touch matching `pred` that happened last by `at_ms` (ties: the later recorded).
fn latest(
    history: &[TrailEvent],
    at_ms: i64,
    pred: impl Fn(&crate::domain::trail::Touch) -> bool,
) -> Option<(&TrailEvent, &crate::domain::trail::Touch)> {
    history
        .iter()
        .filter(|e| e.occurred_at_ms <= at_ms)
        .filter_map(|e| e.touch().filter(|t| pred(t)).map(|t| (e, t)))
        .max_by_key(|(e, _)| (e.occurred_at_ms, e.seq))
}

/// The rule set in force on `day`: the latest `effective_from` not after it.
pub fn rule_set_for(sets: &[(Day, OwnershipRuleSet)], day: Day) -> Option<&OwnershipRuleSet> {
    sets.iter()
        .filter(|(from, _)| *from <= day)
        .max_by_key(|(from, _)| *from)
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trail::{EventBody, Touch};

    fn facts(sharing: Option<&str>) -> OrderFacts {
        OrderFacts {
            order_id: "O1".into(),
            amount_cents: 10_000,
            paid_channel: Channel::Ecommerce,
            fulfilling_store_id: Some("S9".into()),
            sharing_guide_id: sharing.map(Into::into),
            referrer_guide_ids: vec![],
        }
    }

    /// Builds a history (newest first) from (kind, guide, store, occurred day) oldest first.
    fn history(touches: &[(TouchKind, Option<&str>, Option<&str>, i64)]) -> Vec<TrailEvent> {
        let mut out: Vec<TrailEvent> = Vec::new();
        for (i, (kind, g, s, day)) in touches.iter().enumerate() {
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            out.push(TrailEvent::next(
                "M1",
                prev,
                day * DAY_MS,
                day * DAY_MS,
                EventBody::Touch(Touch {
                    touch_id: format!("T{i}"),
                    kind: *kind,
                    channel: Channel::MiniProgram,
                    guide_id: g.map(Into::into),
                    store_id: s.map(Into::into),
                    lead_id: None,
                    recorded_by: None,
                }),
            ));
        }
        out.reverse();
        out
    }

    #[test]
    fn bound_guide_wins_within_protection_then_lapses() {
        let r = OwnershipRuleSet::default();
        let h = history(&[
            (TouchKind::Binding, Some("G1"), Some("S1"), 100),
            (TouchKind::ShareLinkClick, Some("G2"), Some("S2"), 125),
        ]);
        let o = r.decide(
            &facts(Some("G3")),
            Some("S3"),
            125 * DAY_MS,
            &h,
            None,
            &|_| false,
        );
        assert_eq!(o.rule, OwnershipRule::BoundGuide);
        assert_eq!(o.guide_id.as_deref(), Some("G1"));
        assert_eq!(o.deciding_events, vec![1]);
        // Day 131 is past 30 days of protection: the sharing guide wins.
        let o = r.decide(
            &facts(Some("G3")),
            Some("S3"),
            131 * DAY_MS,
            &h,
            None,
            &|_| false,
        );
        assert_eq!(o.rule, OwnershipRule::ServiceGuide);
        assert_eq!(
            (o.guide_id.as_deref(), o.store_id.as_deref()),
            (Some("G3"), Some("S3"))
        );
        // No sharing guide: the last qualifying touch within 7 days (day 125 from day 131).
        let o = r.decide(&facts(None), None, 131 * DAY_MS, &h, None, &|_| false);
        assert_eq!(o.rule, OwnershipRule::LastTouch);
        assert_eq!(o.guide_id.as_deref(), Some("G2"));
        assert_eq!(o.deciding_events, vec![2]);
        // Nothing within 7 days: the paid channel.
        let o = r.decide(&facts(None), None, 140 * DAY_MS, &h, None, &|_| false);
        assert_eq!(o.rule, OwnershipRule::PaidChannel);
        assert_eq!(o.channel, Some(Channel::Ecommerce));
        assert!(o.guide_id.is_none() && o.store_id.is_none());
    }

    #[test]
    fn precedence_is_a_setting() {
        let r = OwnershipRuleSet {
            service_guide_first: true,
            ..Default::default()
        };
        let h = history(&[(TouchKind::Binding, Some("G1"), Some("S1"), 100)]);
        let o = r.decide(
            &facts(Some("G3")),
            Some("S3"),
            101 * DAY_MS,
            &h,
            None,
            &|_| false,
        );
        assert_eq!(o.rule, OwnershipRule::ServiceGuide);
        let o = r.decide(&facts(None), None, 101 * DAY_MS, &h, None, &|_| false);
        assert_eq!(o.rule, OwnershipRule::BoundGuide);
    }

    #[test]
    fn touches_after_the_order_time_and_unqualified_kinds_do_not_count() {
        let r = OwnershipRuleSet::default();
        let h = history(&[
            (TouchKind::ShareLinkClick, Some("G1"), Some("S1"), 100),
            (TouchKind::EcommerceVisit, None, None, 101),
            // Happened after the order, though recorded before it.
            (TouchKind::GuideChat, Some("G2"), Some("S2"), 110),
        ]);
        let o = r.decide(&facts(None), None, 105 * DAY_MS, &h, None, &|_| false);
        assert_eq!(o.guide_id.as_deref(), Some("G1"));
        // A store visit earns it for the store.
        let h = history(&[(TouchKind::StoreVisit, None, Some("S7"), 100)]);
        let o = r.decide(&facts(None), None, 100 * DAY_MS + 5, &h, None, &|_| false);
        assert_eq!((o.guide_id, o.store_id.as_deref()), (None, Some("S7")));
    }

    #[test]
    fn history_stops_at_the_horizon_without_changing_the_owner() {
        let r = OwnershipRuleSet::default();
        // Protection 30 days > look-back 7: the horizon is 31 days before the order.
        assert_eq!(r.history_horizon_ms(100 * DAY_MS), 69 * DAY_MS);
        let h = history(&[
            (TouchKind::Binding, Some("G1"), Some("S1"), 60),
            (TouchKind::ShareLinkClick, Some("G2"), Some("S2"), 68),
            (TouchKind::GuideChat, Some("G3"), Some("S3"), 98),
        ]);
        let cut = r.history(100 * DAY_MS, &h, 10_000);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].seq, 3);
        assert_eq!(r.history(100 * DAY_MS, &h, 0).len(), 0);
        // What was cut could not have decided: same owner either way.
        let full = r.decide(&facts(None), None, 100 * DAY_MS, &h, None, &|_| false);
        assert_eq!(
            r.decide(&facts(None), None, 100 * DAY_MS, &cut, None, &|_| false),
            full
        );
        assert_eq!(full.guide_id.as_deref(), Some("G3"));
    }

    #[test]
    fn the_set_in_force_is_the_latest_effective_one() {
        let a = OwnershipRuleSet {
            version: "a".into(),
            ..Default::default()
        };
        let b = OwnershipRuleSet {
            version: "b".into(),
            ..Default::default()
        };
        let sets = vec![(Day(100), a), (Day(200), b)];
        assert!(rule_set_for(&sets, Day(99)).is_none());
        assert_eq!(rule_set_for(&sets, Day(100)).unwrap().version, "a");
        assert_eq!(rule_set_for(&sets, Day(250)).unwrap().version, "b");
    }
}
