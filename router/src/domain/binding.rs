//! Guide–member bindings (专属导购): who a member belongs to, for how long, and how firmly.
//!
//! A binding is never stored on its own: it is the state carried by the member's latest binding
//! event in the trail ([`BindingRecord`]), so it is hash-chained evidence like every other fact.
//! Versioned [`BindingRuleSet`]s decide what a route, a referral or an order does to it. Pure:
//! the same state, rules and time always give the same outcome.
//!
//! Time is Unix milliseconds.

use super::Day;
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// How long a binding lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingMode {
    /// Until a transfer or a snatch.
    Permanent,
    /// `days` from the binding (or its last extension).
    Days,
    /// `days`, and the latest guide's share link always wins (no protection from snatching).
    Temporary,
}

/// Whether another guide's share link may take a bound member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Snatch {
    Never,
    Always,
    /// Only once the binding's protection has ended.
    AfterProtection,
}

/// Where a returning member goes when their bound guide is away or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwayFallback {
    /// Another guide of the bound guide's store, then routing.
    SameStore,
    /// Routing as if unbound.
    Route,
}

/// One version of the binding rules, in force from `effective_from` (a business day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BindingRuleSet {
    /// Named in every binding event it decides. Unique.
    pub version: String,
    /// First business day (YYYY-MM-DD, the brand's time zone) the set applies to.
    pub effective_from: String,
    /// Default `days`.
    pub mode: BindingMode,
    /// Length of a `days` or `temporary` binding. Default 90.
    pub days: u32,
    /// Days after binding (or extension) in which a member is routed to the bound guide and
    /// protected from snatching. Default 30; at most `days` unless permanent.
    pub protection_days: u32,
    /// An order by a bound member restarts the binding's length and protection. Default true.
    pub extend_on_order: bool,
    /// Default `after_protection`. `temporary` mode always lets the latest link win.
    pub snatch: Snatch,
    /// A lead from the share link of a guide in the bound guide's store is served by that
    /// (referring) guide; when false, by the bound guide. Default true.
    pub referrer_first_same_store: bool,
    /// As above, for a referring guide of another store. Default false.
    pub referrer_first_other_store: bool,
    /// A routed member without a binding is bound to the guide the route assigned. Default true.
    pub bind_on_route: bool,
    /// Default `same_store`.
    pub away: AwayFallback,
}

impl Default for BindingRuleSet {
    fn default() -> Self {
        Self {
            version: "binding-v1".into(),
            effective_from: "2000-01-01".into(),
            mode: BindingMode::Days,
            days: 90,
            protection_days: 30,
            extend_on_order: true,
            snatch: Snatch::AfterProtection,
            referrer_first_same_store: true,
            referrer_first_other_store: false,
            bind_on_route: true,
            away: AwayFallback::SameStore,
        }
    }
}

/// A member's binding as it stands after a binding event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingState {
    pub guide_id: String,
    pub store_id: String,
    /// When this guide's binding began (kept through extensions).
    pub since_ms: i64,
    /// End of the binding (exclusive); absent when permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// End of protection (exclusive).
    pub protected_until_ms: i64,
    /// The rule set that made or last extended it.
    pub rule_version: String,
}

impl BindingState {
    /// Whether the binding holds at `t`.
    pub fn live_at(&self, t: i64) -> bool {
        self.expires_at_ms.is_none_or(|end| t < end)
    }

    /// Whether the binding protects the member at `t`.
    pub fn protected_at(&self, t: i64) -> bool {
        self.live_at(t) && t < self.protected_until_ms
    }
}

/// What changed a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingChange {
    /// A member without a live binding was bound.
    Bind,
    /// The binding's length and protection restarted (an order, or the same guide's link).
    Extend,
    /// Another guide's share link took a bound member.
    Snatch,
    /// An operator or a guide's departure moved the member to another guide.
    Transfer,
}

impl BindingChange {
    pub const ALL: [BindingChange; 4] = [Self::Bind, Self::Extend, Self::Snatch, Self::Transfer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Extend => "extend",
            Self::Snatch => "snatch",
            Self::Transfer => "transfer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A binding event's body: the change, who made it and why, and the binding after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingRecord {
    pub change: BindingChange,
    /// `route`, `order`, or an operator id.
    pub actor: String,
    /// One sentence: why this happened.
    pub reason: String,
    /// What caused it, unique per binding event of a member: `lead:<lead_id>`,
    /// `order:<order_id>`, `transfer:<id>`. The event's idempotency key.
    pub cause_id: String,
    /// The guide bound before, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_guide_id: Option<String>,
    pub state: BindingState,
}

/// What a referral did to the binding, as the route response reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReferralOutcome {
    /// The member had no live binding and is now bound to the referrer.
    Bound,
    /// The member was already bound to the referrer: length and protection restart.
    Extended,
    /// The referrer took the member from another guide.
    Snatched,
    /// The member stays bound to another guide (the snatch rule forbids taking them).
    Kept,
    /// The referrer cannot bind (left the brand, or unknown store state); nothing changed.
    Ignored,
}

impl ReferralOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bound => "BOUND",
            Self::Extended => "EXTENDED",
            Self::Snatched => "SNATCHED",
            Self::Kept => "KEPT",
            Self::Ignored => "IGNORED",
        }
    }
}

/// What a route did to its member's binding, as the response and the stored decision carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteBinding {
    /// Set when the lead carried a referrer.
    pub referral: Option<ReferralOutcome>,
    /// The change this route made, if any.
    pub change: Option<BindingChange>,
    /// The binding after the route (absent: not bound).
    pub state: Option<BindingState>,
    /// The trail event recording the change.
    pub event_seq: Option<u64>,
    pub why: String,
    /// The rule set in force that decided (the binding itself names the one that made it).
    pub decided_by: String,
}

/// A guide as the binding rules see it.
#[derive(Debug, Clone, Copy)]
pub struct GuideRef<'a> {
    pub guide_id: &'a str,
    pub store_id: &'a str,
}

/// What a rule set decided: the outcome (for referrals), the event to append if the binding
/// changes, and one sentence of explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Ruling {
    pub outcome: Option<ReferralOutcome>,
    pub change: Option<(BindingChange, BindingState)>,
    pub why: String,
}

impl BindingRuleSet {
    /// Checks the set; the message names the key.
    pub fn check(&self, at: &str) -> Result<Day, String> {
        if self.version.is_empty() || self.version.len() > 64 {
            return Err(format!("{at}.version: must be 1..=64 bytes"));
        }
        if self.days == 0 || self.days > 3650 {
            return Err(format!("{at}.days: must be in 1..=3650, got {}", self.days));
        }
        if self.protection_days > 3650 {
            return Err(format!(
                "{at}.protection_days: at most 3650, got {}",
                self.protection_days
            ));
        }
        if self.mode != BindingMode::Permanent && self.protection_days > self.days {
            return Err(format!(
                "{at}.protection_days: at most days ({}) unless mode is permanent, got {}",
                self.days, self.protection_days
            ));
        }
        Day::parse_date(&self.effective_from).map_err(|e| format!("{at}.effective_from: {e}"))
    }

    /// A fresh binding (or a restarted one, keeping `since_ms`) to `guide` from `now`.
    pub fn state(&self, guide: GuideRef<'_>, since_ms: i64, now: i64) -> BindingState {
        BindingState {
            guide_id: guide.guide_id.to_string(),
            store_id: guide.store_id.to_string(),
            since_ms,
            expires_at_ms: match self.mode {
                BindingMode::Permanent => None,
                BindingMode::Days | BindingMode::Temporary => {
                    Some(now.saturating_add(i64::from(self.days) * DAY_MS))
                }
            },
            protected_until_ms: if self.mode == BindingMode::Temporary {
                now
            } else {
                now.saturating_add(i64::from(self.protection_days) * DAY_MS)
            },
            rule_version: self.version.clone(),
        }
    }

    /// A lead arrived through `referrer`'s share link at `now`; `current` is the member's
    /// binding (live or not).
    pub fn on_referral(
        &self,
        current: Option<&BindingState>,
        referrer: GuideRef<'_>,
        now: i64,
    ) -> Ruling {
        let live = current.filter(|b| b.live_at(now));
        let Some(b) = live else {
            return Ruling {
                outcome: Some(ReferralOutcome::Bound),
                change: Some((BindingChange::Bind, self.state(referrer, now, now))),
                why: format!(
                    "no live binding: the member binds to the referring guide {}",
                    referrer.guide_id
                ),
            };
        };
        if b.guide_id == referrer.guide_id {
            return Ruling {
                outcome: Some(ReferralOutcome::Extended),
                change: Some((BindingChange::Extend, self.state(referrer, b.since_ms, now))),
                why: format!(
                    "already bound to {}: the binding restarts from this link",
                    referrer.guide_id
                ),
            };
        }
        let (may, rule) = match (self.mode, self.snatch) {
            (BindingMode::Temporary, _) => (true, "temporary bindings: the latest link wins"),
            (_, Snatch::Always) => (true, "the snatch rule is always"),
            (_, Snatch::Never) => (false, "the snatch rule is never"),
            (_, Snatch::AfterProtection) if b.protected_at(now) => (
                false,
                "the snatch rule is after_protection and the binding is still protected",
            ),
            (_, Snatch::AfterProtection) => (
                true,
                "the snatch rule is after_protection and the protection has ended",
            ),
        };
        if may {
            Ruling {
                outcome: Some(ReferralOutcome::Snatched),
                change: Some((BindingChange::Snatch, self.state(referrer, now, now))),
                why: format!(
                    "{} takes the member from {}: {rule}",
                    referrer.guide_id, b.guide_id
                ),
            }
        } else {
            Ruling {
                outcome: Some(ReferralOutcome::Kept),
                change: None,
                why: format!("the member stays bound to {}: {rule}", b.guide_id),
            }
        }
    }

    /// Whether a lead from `referrer` is served by the referrer rather than by the bound guide.
    pub fn referrer_serves(&self, bound: &BindingState, referrer: GuideRef<'_>) -> bool {
        if bound.store_id == referrer.store_id {
            self.referrer_first_same_store
        } else {
            self.referrer_first_other_store
        }
    }

    /// A route without a referral assigned `guide` at `now`.
    pub fn on_route(
        &self,
        current: Option<&BindingState>,
        guide: GuideRef<'_>,
        now: i64,
    ) -> Ruling {
        match current.filter(|b| b.live_at(now)) {
            None if self.bind_on_route => Ruling {
                outcome: None,
                change: Some((BindingChange::Bind, self.state(guide, now, now))),
                why: format!(
                    "no live binding: the member binds to the routed guide {}",
                    guide.guide_id
                ),
            },
            None => Ruling {
                outcome: None,
                change: None,
                why: "routes do not bind under this rule set".into(),
            },
            Some(b) => Ruling {
                outcome: None,
                change: None,
                why: format!("the member stays bound to {}", b.guide_id),
            },
        }
    }

    /// The member ordered at `at_ms`.
    pub fn on_order(&self, current: Option<&BindingState>, at_ms: i64) -> Ruling {
        match current.filter(|b| b.live_at(at_ms)) {
            Some(b) if self.extend_on_order => {
                let guide = GuideRef {
                    guide_id: &b.guide_id,
                    store_id: &b.store_id,
                };
                Ruling {
                    outcome: None,
                    change: Some((BindingChange::Extend, self.state(guide, b.since_ms, at_ms))),
                    why: format!("an order restarts the binding to {}", b.guide_id),
                }
            }
            _ => Ruling {
                outcome: None,
                change: None,
                why: "no extension".into(),
            },
        }
    }
}

/// One stretch of a member's binding history: who owned the member, from when, until when
/// (absent: still), and why it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub guide_id: String,
    pub store_id: String,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// The change that began it (bind, snatch, transfer) and its reason.
    pub began: BindingChange,
    pub why: String,
    /// How it ended: the next change, or `expired`; empty while it lasts.
    pub ended: String,
}

/// The intervals of a member's binding events (in trail order) as of `now`.
pub fn intervals<'a>(
    events: impl IntoIterator<Item = (i64, &'a BindingRecord)>,
    now: i64,
) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    let mut expires: Option<i64> = None;
    for (at, r) in events {
        let lapsed = expires.is_some_and(|end| end <= at);
        let open = out.last_mut().filter(|i| i.to_ms.is_none());
        match (open, r.change) {
            (Some(cur), BindingChange::Extend) if !lapsed && cur.guide_id == r.state.guide_id => {
                expires = r.state.expires_at_ms;
                continue;
            }
            (Some(cur), _) => {
                if lapsed {
                    cur.to_ms = expires;
                    cur.ended = "expired".into();
                } else {
                    cur.to_ms = Some(at);
                    cur.ended = r.change.as_str().into();
                }
            }
            (None, _) => {}
        }
        out.push(Interval {
            guide_id: r.state.guide_id.clone(),
            store_id: r.state.store_id.clone(),
            from_ms: at,
            to_ms: None,
            began: r.change,
            why: r.reason.clone(),
            ended: String::new(),
        });
        expires = r.state.expires_at_ms;
    }
    if let Some(cur) = out.last_mut().filter(|i| i.to_ms.is_none())
        && let Some(end) = expires.filter(|&e| e <= now)
    {
        cur.to_ms = Some(end);
        cur.ended = "expired".into();
    }
    out
}

/// The rule set in force on `day`: the latest `effective_from` not after it.
pub fn rule_set_for(sets: &[(Day, BindingRuleSet)], day: Day) -> Option<&BindingRuleSet> {
    sets.iter()
        .filter(|(from, _)| *from <= day)
        .max_by_key(|(from, _)| *from)
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G1: GuideRef<'static> = GuideRef {
        guide_id: "G1",
        store_id: "S1",
    };
    const G2: GuideRef<'static> = GuideRef {
        guide_id: "G2",
        store_id: "S1",
    };

    fn day(n: i64) -> i64 {
        n * DAY_MS
    }

    #[test]
    fn a_days_binding_protects_then_lapses() {
        let r = BindingRuleSet::default();
        let first = r.on_referral(None, G1, day(100));
        assert_eq!(first.outcome, Some(ReferralOutcome::Bound));
        let (change, b) = first.change.unwrap();
        assert_eq!(change, BindingChange::Bind);
        assert_eq!(b.expires_at_ms, Some(day(190)));
        assert_eq!(b.protected_until_ms, day(130));
        assert!(b.protected_at(day(130) - 1));
        assert!(!b.protected_at(day(130)));
        assert!(b.live_at(day(190) - 1));
        assert!(!b.live_at(day(190)));
        // G2's link inside protection: kept; after: snatched; after expiry: a new binding.
        let kept = r.on_referral(Some(&b), G2, day(129));
        assert_eq!(kept.outcome, Some(ReferralOutcome::Kept));
        assert!(kept.change.is_none());
        let snatched = r.on_referral(Some(&b), G2, day(130));
        assert_eq!(snatched.outcome, Some(ReferralOutcome::Snatched));
        assert_eq!(snatched.change.unwrap().1.guide_id, "G2");
        let fresh = r.on_referral(Some(&b), G2, day(190));
        assert_eq!(fresh.outcome, Some(ReferralOutcome::Bound));
        // The same guide's link extends, keeping since.
        let ext = r.on_referral(Some(&b), G1, day(120));
        assert_eq!(ext.outcome, Some(ReferralOutcome::Extended));
        let (_, e) = ext.change.unwrap();
        assert_eq!((e.since_ms, e.expires_at_ms), (day(100), Some(day(210))));
    }

    #[test]
    fn snatch_rules_and_modes() {
        let b = BindingRuleSet::default()
            .on_referral(None, G1, day(100))
            .change
            .unwrap()
            .1;
        let never = BindingRuleSet {
            snatch: Snatch::Never,
            ..Default::default()
        };
        assert_eq!(
            never.on_referral(Some(&b), G2, day(150)).outcome,
            Some(ReferralOutcome::Kept)
        );
        let always = BindingRuleSet {
            snatch: Snatch::Always,
            ..Default::default()
        };
        assert_eq!(
            always.on_referral(Some(&b), G2, day(101)).outcome,
            Some(ReferralOutcome::Snatched)
        );
        let temporary = BindingRuleSet {
            mode: BindingMode::Temporary,
            snatch: Snatch::Never,
            ..Default::default()
        };
        let t = temporary.on_referral(None, G1, day(100)).change.unwrap().1;
        assert!(!t.protected_at(day(100)));
        assert_eq!(
            temporary.on_referral(Some(&t), G2, day(100)).outcome,
            Some(ReferralOutcome::Snatched),
            "the latest link wins"
        );
        let permanent = BindingRuleSet {
            mode: BindingMode::Permanent,
            ..Default::default()
        };
        let p = permanent.on_referral(None, G1, day(100)).change.unwrap().1;
        assert!(p.live_at(day(100_000)));
        assert!(!p.protected_at(day(130)));
    }

    #[test]
    fn routes_bind_only_the_unbound_and_orders_extend() {
        let r = BindingRuleSet::default();
        let bound = r.on_route(None, G1, day(10));
        let (c, b) = bound.change.unwrap();
        assert_eq!((c, b.guide_id.as_str()), (BindingChange::Bind, "G1"));
        assert!(r.on_route(Some(&b), G2, day(11)).change.is_none());
        let off = BindingRuleSet {
            bind_on_route: false,
            ..Default::default()
        };
        assert!(off.on_route(None, G1, day(10)).change.is_none());
        let (c, e) = r.on_order(Some(&b), day(50)).change.unwrap();
        assert_eq!(c, BindingChange::Extend);
        assert_eq!((e.since_ms, e.protected_until_ms), (day(10), day(80)));
        assert!(r.on_order(Some(&b), day(100)).change.is_none(), "lapsed");
        let no = BindingRuleSet {
            extend_on_order: false,
            ..Default::default()
        };
        assert!(no.on_order(Some(&b), day(50)).change.is_none());
    }

    #[test]
    fn referrer_precedence_by_store() {
        let r = BindingRuleSet::default();
        let b = r.on_route(None, G1, 0).change.unwrap().1;
        assert!(r.referrer_serves(&b, G2));
        let other = GuideRef {
            guide_id: "G9",
            store_id: "S9",
        };
        assert!(!r.referrer_serves(&b, other));
    }

    #[test]
    fn history_reads_as_intervals() {
        let r = BindingRuleSet::default();
        let rec = |change, guide: GuideRef<'_>, since, now| BindingRecord {
            change,
            actor: "route".into(),
            reason: format!("{change:?}"),
            cause_id: format!("c{now}"),
            previous_guide_id: None,
            state: r.state(guide, since, now),
        };
        let events = [
            (day(0), rec(BindingChange::Bind, G1, day(0), day(0))),
            (day(10), rec(BindingChange::Extend, G1, day(0), day(10))),
            (day(40), rec(BindingChange::Snatch, G2, day(40), day(40))),
            // G2's binding lapses at day 130; G1 binds again at day 200.
            (day(200), rec(BindingChange::Bind, G1, day(200), day(200))),
        ];
        let iv = intervals(events.iter().map(|(t, r)| (*t, r)), day(250));
        let got: Vec<(&str, i64, Option<i64>, &str)> = iv
            .iter()
            .map(|i| (i.guide_id.as_str(), i.from_ms, i.to_ms, i.ended.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("G1", day(0), Some(day(40)), "snatch"),
                ("G2", day(40), Some(day(130)), "expired"),
                ("G1", day(200), None, ""),
            ]
        );
        let iv = intervals(events.iter().map(|(t, r)| (*t, r)), day(300));
        assert_eq!(iv[2].to_ms, Some(day(290)));
    }

    #[test]
    fn checks_name_the_key() {
        let bad = BindingRuleSet {
            protection_days: 100,
            days: 90,
            ..Default::default()
        };
        assert!(
            bad.check("bindings[0]")
                .unwrap_err()
                .starts_with("bindings[0].protection_days")
        );
        let bad = BindingRuleSet {
            days: 0,
            ..Default::default()
        };
        assert!(bad.check("b").unwrap_err().starts_with("b.days"));
        assert!(BindingRuleSet::default().check("b").is_ok());
    }
}
