//! Exported trails → journeys for the attribution models in `leadrouter-models`.
//!
//! Per member, touches accumulate into a path; an order closes it as a converting journey (value
//! in yuan, each touch's age in hours before the order); touches after a member's last order end
//! as a journey that did not convert. A touch counts towards an order when it was recorded before
//! the order and happened by its time. An order with no touch before it is a one-step journey
//! through its paid channel (`PAID:<channel>`), so every order is credited somewhere.

use crate::domain::trail::{EventBody, TrailEvent};
use leadrouter_models::attribution::Journeys;
use std::collections::HashMap;

/// What names a touch's step in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepBy {
    /// The touch's channel (MINI_PROGRAM, LIVESTREAM, …).
    Channel,
    /// The touch's kind (SHARE_LINK_CLICK, STORE_VISIT, …).
    Kind,
}

/// Builds journeys from events given each member's in `seq` order (members may interleave).
#[derive(Debug)]
pub struct JourneyBuilder {
    by: StepBy,
    open: HashMap<String, Vec<(String, i64)>>,
    journeys: Journeys,
}

impl JourneyBuilder {
    pub fn new(by: StepBy) -> Self {
        Self {
            by,
            open: HashMap::new(),
            journeys: Journeys::new(),
        }
    }

    pub fn push(&mut self, e: &TrailEvent) {
        let path = self.open.entry(e.member_id.clone()).or_default();
        match &e.body {
            EventBody::Touch(t) => {
                let step = match self.by {
                    StepBy::Channel => t.channel.as_str(),
                    StepBy::Kind => t.kind.as_str(),
                };
                path.push((step.to_string(), e.occurred_at_ms));
            }
            // A binding is a relationship, not a marketing touch.
            EventBody::Binding(_) | EventBody::Offer(_) | EventBody::Adjustment(_) => {}
            EventBody::Order(o) => {
                let at = e.occurred_at_ms;
                let (before, later): (Vec<_>, Vec<_>) = path.drain(..).partition(|(_, t)| *t <= at);
                *path = later;
                let (steps, ages): (Vec<String>, Vec<f64>) = if before.is_empty() {
                    (
                        vec![format!("PAID:{}", o.facts.paid_channel.as_str())],
                        vec![0.0],
                    )
                } else {
                    before
                        .into_iter()
                        .map(|(s, t)| (s, (at - t) as f64 / 3_600_000.0))
                        .unzip()
                };
                let names: Vec<&str> = steps.iter().map(String::as_str).collect();
                // Checked inputs: a path of at least one step, a positive amount.
                let _ = self.journeys.push(
                    &names,
                    1.0,
                    o.facts.amount_cents as f64 / 100.0,
                    0.0,
                    Some(ages),
                );
            }
            EventBody::Refund(_) => {}
        }
    }

    /// Closes every member's open path as a journey that did not convert.
    pub fn finish(mut self) -> Journeys {
        let mut open: Vec<_> = self.open.into_iter().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, path) in open {
            if !path.is_empty() {
                let names: Vec<&str> = path.iter().map(|(s, _)| s.as_str()).collect();
                let _ = self.journeys.push(&names, 0.0, 0.0, 1.0, None);
            }
        }
        self.journeys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;
    use crate::domain::trail::{
        OrderFacts, OrderRecord, Ownership, OwnershipRule, Role, Touch, TouchKind,
    };
    use leadrouter_models::attribution::{Model, attribute};

    fn ev(member: &str, seq: u64, at: i64, body: EventBody) -> TrailEvent {
        TrailEvent::unchained(member, seq, at, body)
    }

    fn touch(channel: Channel) -> EventBody {
        EventBody::Touch(Touch {
            touch_id: "t".into(),
            kind: TouchKind::GuideChat,
            channel,
            guide_id: None,
            store_id: None,
            lead_id: None,
            recorded_by: None,
        })
    }

    fn order(cents: i64) -> EventBody {
        EventBody::Order(Box::new(OrderRecord {
            facts: OrderFacts {
                order_id: "o".into(),
                amount_cents: cents,
                paid_channel: Channel::Ecommerce,
                fulfilling_store_id: None,
                sharing_guide_id: None,
                referrer_guide_ids: vec![],
            },
            sharing_guide_store_id: None,
            departed_guide_ids: vec![],
            ownership: Ownership {
                guide_id: None,
                store_id: None,
                channel: Some(Channel::Ecommerce),
                rule: OwnershipRule::PaidChannel,
                rule_version: "v".into(),
                deciding_events: vec![],
                explanation: String::new(),
            },
            split_version: "s".into(),
            rounding_role: Role::Owner,
            entries: vec![],
            recorded_by: None,
        }))
    }

    #[test]
    fn orders_close_paths_and_leftovers_do_not_convert() {
        let h = 3_600_000;
        let mut b = JourneyBuilder::new(StepBy::Channel);
        b.push(&ev("m1", 1, 0, touch(Channel::Livestream)));
        b.push(&ev("m2", 1, 0, touch(Channel::Community)));
        b.push(&ev("m1", 2, 2 * h, touch(Channel::MiniProgram)));
        b.push(&ev("m1", 3, 4 * h, order(12_345)));
        b.push(&ev("m1", 4, 5 * h, order(100)));
        let j = b.finish();
        assert_eq!(j.journeys().len(), 3);
        let first = &j.journeys()[0];
        assert_eq!(first.ages.as_deref(), Some(&[4.0, 2.0][..]));
        assert_eq!(first.value, 123.45);
        // The second order had no touch: its paid channel.
        assert_eq!(j.channels()[j.journeys()[1].path[0]], "PAID:ECOMMERCE");
        assert_eq!(
            (j.journeys()[2].conversions, j.journeys()[2].nulls),
            (0.0, 1.0)
        );
        let last = attribute(&j, Model::Last).unwrap();
        assert_eq!(last.conversions.iter().sum::<f64>(), 2.0);
    }
}
