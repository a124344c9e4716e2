//! Step 3 of route(): the member's binding. Before candidates: who should serve the lead (the
//! referring guide, the bound guide, the bound guide's store) by the binding rule set in force.
//! After the decision: the binding change (bind, extend, snatch) as an event in the member's
//! trail, whose outcome the decision carries.

use crate::catalog::{GuideStatus, Network};
use crate::domain::binding::{
    BindingRecord, BindingRuleSet, BindingState, GuideRef, ReferralOutcome, RouteBinding, Ruling,
};
use crate::domain::trail::{EventBody, TrailEvent};
use crate::domain::{Lead, Reasons};
use crate::storage::{Chain, StorageError};

/// Where to look for a guide, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stage {
    /// One guide (store, guide), for a reason.
    Guide(u32, u32, Reasons),
    /// Any guide of one store.
    Store(u32, Reasons),
    /// The network, by the policy.
    Network,
}

/// What route() knows of the lead's member, as read: the commit appends onto `head` only if
/// no one else has appended since (else it reads again).
pub struct Member<'a> {
    pub member_id: &'a str,
    /// The member's last `(seq, hash)` when read.
    pub head: Option<(u64, String)>,
    pub rules: &'a BindingRuleSet,
    /// The binding before this route (live or not).
    pub current: Option<BindingState>,
    /// What the referral does, when the lead carried one.
    pub referral: Option<Ruling>,
}

fn guide_ref<'n>(net: &'n Network, g: u32) -> GuideRef<'n> {
    let guide = net.guide(g);
    GuideRef {
        guide_id: &guide.id,
        store_id: &net.store(guide.store).id,
    }
}

impl<'a> Member<'a> {
    /// Reads the member's head, then their binding: a binding appended in between moves the
    /// head past the one read, so the commit is refused and the route reads again.
    pub fn read(
        store: &dyn crate::storage::Storage,
        member_id: &'a str,
        rules: &'a BindingRuleSet,
        net: &Network,
        lead: &Lead,
        now: i64,
    ) -> Result<Self, StorageError> {
        let head = store.trail_head(member_id)?;
        let binding = store.latest_binding(member_id)?;
        Ok(Self::of(member_id, head, binding, rules, net, lead, now))
    }

    /// The member as read: their head and latest binding event (read in that order, or in
    /// one step: [`crate::storage::Storage::route_state`]).
    pub fn of(
        member_id: &'a str,
        head: Option<(u64, String)>,
        binding: Option<crate::domain::trail::TrailEvent>,
        rules: &'a BindingRuleSet,
        net: &Network,
        lead: &Lead,
        now: i64,
    ) -> Self {
        let current = binding.and_then(|e| e.binding().map(|b| b.state.clone()));
        let referral = lead.referrer_guide_id.as_deref().map(|r| {
            match net.guide_index(r).map(|g| (g, net.guide(g).status)) {
                Some((g, GuideStatus::Active | GuideStatus::Away)) => {
                    rules.on_referral(current.as_ref(), guide_ref(net, g), now)
                }
                Some((_, GuideStatus::Left)) => {
                    ignored(format!("the referring guide {r} has left"))
                }
                None => ignored(format!("no guide {r} in the network")),
            }
        });
        Self {
            member_id,
            head,
            rules,
            current,
            referral,
        }
    }

    /// The binding after the referral, if it is live at `now`.
    fn bound(&self, now: i64) -> Option<&BindingState> {
        self.referral
            .as_ref()
            .and_then(|r| r.change.as_ref().map(|(_, s)| s))
            .or(self.current.as_ref())
            .filter(|b| b.live_at(now))
    }
}

fn ignored(why: String) -> Ruling {
    Ruling {
        outcome: Some(ReferralOutcome::Ignored),
        change: None,
        why,
    }
}

/// The stages to try for `lead`, best first; always ends with the network.
pub fn plan(net: &Network, lead: &Lead, member: Option<&Member<'_>>, now: i64) -> Vec<Stage> {
    let mut stages = Vec::with_capacity(4);
    let referrer = lead
        .referrer_guide_id
        .as_deref()
        .and_then(|r| net.guide_index(r))
        .filter(|&g| net.guide(g).status == GuideStatus::Active);
    let before = member.and_then(|m| m.current.as_ref().filter(|b| b.live_at(now)));
    if let Some(g) = referrer {
        let r = guide_ref(net, g);
        let serves = match (member, before) {
            (_, None) => true,
            (_, Some(b)) if b.guide_id == r.guide_id => true,
            (Some(m), Some(b)) => {
                m.referral.as_ref().and_then(|x| x.outcome) == Some(ReferralOutcome::Snatched)
                    || m.rules.referrer_serves(b, r)
            }
            (None, Some(_)) => true,
        };
        if serves {
            stages.push(Stage::Guide(net.guide(g).store, g, Reasons::REFERRER));
        }
    }
    if let Some(m) = member
        && let Some(b) = m.bound(now).filter(|b| b.protected_at(now))
        && let Some(g) = net.guide_index(&b.guide_id)
    {
        let guide = net.guide(g);
        if guide.status != GuideStatus::Left {
            if guide.status == GuideStatus::Active && Some(g) != referrer {
                stages.push(Stage::Guide(guide.store, g, Reasons::BOUND));
            }
            if m.rules.away == crate::domain::binding::AwayFallback::SameStore {
                stages.push(Stage::Store(guide.store, Reasons::BOUND_GUIDE_UNAVAILABLE));
            }
        }
    }
    stages.push(Stage::Network);
    stages
}

/// Records what the route did to the binding: the referral's change, else a bind to the
/// routed guide when the rules bind on route. Adds the event to `chain` (committed with the
/// decision) and returns what the decision carries.
pub fn commit(
    chain: &mut Chain<'_>,
    member: &Member<'_>,
    net: &Network,
    lead: &Lead,
    assigned: Option<u32>,
    now: i64,
) -> RouteBinding {
    let ruling = match (&member.referral, assigned) {
        (Some(r), _) if r.change.is_some() => r.clone(),
        (r, Some(g)) => {
            let mut on_route =
                member
                    .rules
                    .on_route(member.current.as_ref(), guide_ref(net, g), now);
            if let Some(r) = r {
                on_route.why = format!("{}; {}", r.why, on_route.why);
            }
            on_route
        }
        (r, None) => Ruling {
            outcome: None,
            change: None,
            why: r.as_ref().map_or_else(
                || "unrouted: the binding is unchanged".to_string(),
                |r| r.why.clone(),
            ),
        },
    };
    let referral = member.referral.as_ref().and_then(|r| r.outcome);
    let Some((change, state)) = ruling.change else {
        return RouteBinding {
            referral,
            change: None,
            state: member.current.clone().filter(|b| b.live_at(now)),
            event_seq: None,
            why: ruling.why,
            decided_by: member.rules.version.clone(),
        };
    };
    let cause = format!("lead:{}", lead.lead_id);
    let previous = member
        .current
        .as_ref()
        .filter(|b| b.live_at(now) && b.guide_id != state.guide_id)
        .map(|b| b.guide_id.clone());
    let record = BindingRecord {
        change,
        actor: "route".into(),
        reason: format!("{} (rule set {})", ruling.why, member.rules.version),
        cause_id: cause.clone(),
        previous_guide_id: previous,
        state: state.clone(),
    };
    let event: &TrailEvent = chain.push(now, now, EventBody::Binding(record), None);
    RouteBinding {
        referral,
        change: Some(change),
        state: Some(state),
        event_seq: Some(event.seq),
        why: ruling.why,
        decided_by: member.rules.version.clone(),
    }
}
