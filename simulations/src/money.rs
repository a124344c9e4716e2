//! The money of a run. In each run (a policy under a binding rule set), members' touches,
//! orders and refunds go through the production attribution code as they happen: ownership by
//! the `[[ownership]]` rule set in service (the first), the split by the `[[splits]]` policy in
//! service (the first), refunds reversed by the split code, every event on the member's
//! hash-chained trail. At the end of the run the trails are verified and recomputed as
//! `leadrouter trail verify` does, and restated under every `[[ownership]]` × `[[splits]]`
//! alternative by the production restatement ([`leadrouter::attribution::restate`]): the
//! simulator decides no owner and splits no order itself.

use crate::scenario::Scenario;
use crate::world::{Arrival, Link};
use leadrouter::attribution::recompute::TrailChecker;
use leadrouter::attribution::restate::{Alternative, Restater};
use leadrouter::attribution::split::owner_party;
use leadrouter::attribution::{
    Attribution, AttributionConfig, OrderInput, RefundInput, TouchInput,
};
use leadrouter::catalog::Network;
use leadrouter::clock::ManualClock;
use leadrouter::domain::trail::{EventBody, OrderFacts, Touch, TouchKind, TrailEvent};
use leadrouter::domain::{Channel, Lead};
use leadrouter::engine::Engine;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What one alternative (an ownership rule set and a split policy) pays over a run, net of
/// refunds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Money {
    pub ownership: String,
    pub split: String,
    pub orders: u64,
    pub revenue_cents: i64,
    pub refunds: u64,
    pub refunded_cents: i64,
    /// Cents by role (`owner`, `fulfilling_store`, …).
    pub by_role: BTreeMap<&'static str, i64>,
    /// Cents by party (`guide:G1`, `store:S1`, `channel:ECOMMERCE`, `o2o:centre`).
    pub by_party: BTreeMap<String, i64>,
    /// Orders by the rule that decided their owner (`BOUND_GUIDE`, …).
    pub by_rule: BTreeMap<&'static str, u64>,
    /// Orders whose owner is not the guide who served the order's lead: the orders a store or
    /// the e-commerce team is likely to dispute.
    pub not_served: u64,
    /// Per store: what the store is paid and what its guides are paid.
    pub by_store: BTreeMap<String, (i64, i64)>,
    /// The Gini of what each active guide is paid (unpaid guides count as 0), and how many are
    /// paid anything.
    pub guide_gini: f64,
    pub guides_paid: usize,
}

impl Money {
    pub fn named(ownership: &str, split: &str) -> Self {
        Self {
            ownership: ownership.to_string(),
            split: split.to_string(),
            ..Default::default()
        }
    }

    /// Σ of the parties of a kind (`guide`, `store`, `channel`, `o2o`).
    pub fn of_kind(&self, kind: &str) -> i64 {
        self.by_party
            .iter()
            .filter(|(p, _)| p.split(':').next() == Some(kind))
            .map(|(_, c)| *c)
            .sum()
    }

    /// Adds a money event (an order, a refund or a reassignment; others are ignored);
    /// `served` is the party (`guide:ID`) who served an order's lead, when known.
    pub fn add(&mut self, e: &TrailEvent, served: Option<&str>) {
        let entries = match &e.body {
            EventBody::Order(o) => {
                self.orders += 1;
                self.revenue_cents += o.facts.amount_cents;
                *self.by_rule.entry(o.ownership.rule.as_str()).or_default() += 1;
                if served != Some(owner_party(&o.ownership).as_str()) {
                    self.not_served += 1;
                }
                &o.entries
            }
            EventBody::Refund(r) => {
                self.refunds += 1;
                self.refunded_cents += r.amount_cents;
                &r.entries
            }
            EventBody::Adjustment(a) => &a.entries,
            _ => return,
        };
        for x in entries {
            *self.by_role.entry(x.role.as_str()).or_default() += x.amount_cents;
            *self.by_party.entry(x.party.clone()).or_default() += x.amount_cents;
        }
    }

    /// Once every event is in: each store's and its guides' totals, and the guides' spread
    /// over the network's active guides.
    pub fn finish(&mut self, net: &Network) {
        self.by_store.clear();
        for (party, cents) in &self.by_party {
            let store = match party.split_once(':') {
                Some(("store", id)) => Some((id.to_string(), true)),
                Some(("guide", id)) => net
                    .guide_index(id)
                    .map(|g| (net.store(net.guide(g).store).id.to_string(), false)),
                _ => None,
            };
            if let Some((store, own)) = store {
                let e = self.by_store.entry(store).or_default();
                if own {
                    e.0 += cents;
                } else {
                    e.1 += cents;
                }
            }
        }
        let paid: Vec<f64> = (0..net.guides().len() as u32)
            .filter(|&j| net.guide_key(j).active)
            .map(|g| {
                self.by_party
                    .get(&format!("guide:{}", net.guide(g).id))
                    .copied()
                    .unwrap_or(0) as f64
            })
            .collect();
        self.guides_paid = paid.iter().filter(|&&c| c > 0.0).count();
        self.guide_gini = crate::run::gini(&paid);
    }
}

/// What checking a run's trails found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trails {
    pub members: usize,
    pub events: usize,
    pub orders: usize,
    pub refunds: usize,
    /// The hash chains hold and every stored owner, split and reversal recomputes.
    pub ok: bool,
    /// The first few problems, when not.
    pub problems: Vec<String>,
}

/// An order or refund still to happen.
#[derive(Debug)]
enum Due {
    Order {
        member: String,
        facts: OrderFacts,
        refund: Option<(i64, i64)>,
    },
    Refund {
        member: String,
        order_id: String,
        cents: i64,
    },
}

/// One run's attribution: the service, and what is still to happen.
#[derive(Debug)]
pub struct Books {
    attribution: Attribution,
    /// By (time, arrival order).
    due: BTreeMap<(i64, u64), Due>,
    next: u64,
    /// The guide who served each order's lead.
    served: HashMap<String, u32>,
}

fn guest(lead_id: &str) -> String {
    format!("guest-{lead_id}")
}

impl Books {
    /// The attribution service over `engine`'s store, with the first ownership rule set and
    /// split policy of the scenario in service.
    pub fn new(engine: Arc<Engine>, s: &Scenario) -> anyhow::Result<Self> {
        let attribution = Attribution::new(
            engine,
            AttributionConfig {
                ownership: vec![s.ownership[0].clone()],
                splits: vec![s.splits[0].clone()],
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("attribution: {e}"))?;
        Ok(Self {
            attribution,
            due: BTreeMap::new(),
            next: 0,
            served: HashMap::new(),
        })
    }

    fn at(&mut self, at_ms: i64, due: Due) {
        self.due.insert((at_ms, self.next), due);
        self.next += 1;
    }

    /// Records every order and refund due by `until_ms`, each at its time.
    pub fn settle(&mut self, clock: &ManualClock, until_ms: i64) -> anyhow::Result<()> {
        while let Some(entry) = self.due.first_entry() {
            let (at, _) = *entry.key();
            if at > until_ms {
                break;
            }
            let due = entry.remove();
            clock.set(at);
            match due {
                Due::Order {
                    member,
                    facts,
                    refund,
                } => {
                    let order_id = facts.order_id.clone();
                    self.attribution
                        .record_order_unflushed(OrderInput {
                            member_id: member.clone(),
                            facts,
                            occurred_at_ms: at,
                            recorded_by: None,
                        })
                        .map_err(|e| anyhow::anyhow!("order {order_id}: {e}"))?;
                    if let Some((after, cents)) = refund {
                        self.at(
                            at + after,
                            Due::Refund {
                                member,
                                order_id,
                                cents,
                            },
                        );
                    }
                }
                Due::Refund {
                    member,
                    order_id,
                    cents,
                } => {
                    self.attribution
                        .record_refund_unflushed(RefundInput {
                            refund_id: format!("r-{order_id}"),
                            order_id: order_id.clone(),
                            amount_cents: Some(cents),
                            occurred_at_ms: at,
                            recorded_by: None,
                        })
                        .map_err(|e| anyhow::anyhow!("refund of {order_id} ({member}): {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// The lead as this run's engine gets it: the member's id, and the guide whose share link
    /// it came through (a member's own guide is the one they are, or were last, bound to here).
    pub fn lead(&self, a: &Arrival, net: &Network) -> anyhow::Result<Lead> {
        let mut lead = a.lead.clone();
        let Some(v) = &a.member else {
            return Ok(lead);
        };
        let member = v.member_id();
        lead.referrer_guide_id = match v.link {
            None => None,
            Some(Link::Guide(g)) => Some(net.guide(g).id.to_string()),
            Some(Link::Own) => self
                .attribution
                .engine()
                .store()
                .latest_binding(&member)?
                .and_then(|e| e.binding().map(|b| b.state.guide_id.clone())),
        };
        lead.member_id = Some(member);
        Ok(lead)
    }

    fn touch(
        &self,
        lead: &Lead,
        id: &str,
        kind: TouchKind,
        guide: Option<String>,
        store: Option<String>,
    ) -> anyhow::Result<()> {
        let Some(member) = &lead.member_id else {
            return Ok(());
        };
        self.attribution
            .record_touch(TouchInput {
                member_id: member.clone(),
                touch: Touch {
                    touch_id: format!("{id}-{}", lead.lead_id),
                    kind,
                    channel: lead.channel,
                    guide_id: guide,
                    store_id: store,
                    lead_id: Some(lead.lead_id.clone()),
                    recorded_by: None,
                },
                occurred_at_ms: lead.occurred_at_ms,
            })
            .map_err(|e| anyhow::anyhow!("touch of lead {}: {e}", lead.lead_id))?;
        Ok(())
    }

    /// The member's touch before the lead is routed: the share link they opened, the store
    /// they visited, the livestream they watched or the e-commerce shop they visited.
    pub fn arrived(&self, a: &Arrival, lead: &Lead, net: &Network) -> anyhow::Result<()> {
        let Some(v) = &a.member else {
            return Ok(());
        };
        let guide = |g: u32| Some(net.guide(g).id.to_string());
        match (&lead.referrer_guide_id, lead.channel) {
            (Some(g), _) => self.touch(
                lead,
                "link",
                TouchKind::ShareLinkClick,
                Some(g.clone()),
                None,
            ),
            (None, Channel::StoreQr) => self.touch(
                lead,
                "visit",
                TouchKind::StoreVisit,
                None,
                Some(net.store(a.home_store).id.to_string()),
            ),
            (None, Channel::Livestream) => match v.host {
                Some(h) => self.touch(lead, "live", TouchKind::LivestreamView, guide(h), None),
                None => Ok(()),
            },
            (None, Channel::Ecommerce) => {
                self.touch(lead, "shop", TouchKind::EcommerceVisit, None, None)
            }
            _ => Ok(()),
        }
    }

    /// The lead was served by guide `g`: the guide chats with the member when they sell; when
    /// the lead converts, its order is paid an hour later.
    pub fn served(
        &mut self,
        a: &Arrival,
        lead: &Lead,
        g: u32,
        converted: bool,
        net: &Network,
    ) -> anyhow::Result<()> {
        let guide = net.guide(g);
        let store = net.store(guide.store).id.to_string();
        if a.sells {
            self.touch(
                lead,
                "chat",
                TouchKind::GuideChat,
                Some(guide.id.to_string()),
                None,
            )?;
        }
        if !converted {
            return Ok(());
        }
        let order_id = format!("o-{}", lead.lead_id);
        // An e-commerce order without a guide ships from the warehouse.
        let fulfilled = a.sells || lead.channel != Channel::Ecommerce;
        let facts = OrderFacts {
            order_id: order_id.clone(),
            amount_cents: a.basket_cents,
            paid_channel: lead.channel,
            fulfilling_store_id: fulfilled.then_some(store),
            sharing_guide_id: a.sells.then(|| guide.id.to_string()),
            referrer_guide_ids: Vec::new(),
        };
        self.served.insert(order_id, g);
        let member = lead
            .member_id
            .clone()
            .unwrap_or_else(|| guest(&lead.lead_id));
        self.at(
            lead.occurred_at_ms + 3_600_000,
            Due::Order {
                member,
                facts,
                refund: a.refund,
            },
        );
        Ok(())
    }

    /// Verifies and recomputes the run's trails, and restates them under every alternative;
    /// with `export`, also writes them as `leadrouter trail export` does.
    pub fn close(
        &self,
        net: &Network,
        s: &Scenario,
        export: bool,
    ) -> anyhow::Result<(Vec<Money>, Trails, Vec<u8>)> {
        let book = self.attribution.rules();
        let mut checker = TrailChecker::grouped(&book);
        let alternatives: Vec<Alternative> = s
            .ownership
            .iter()
            .flat_map(|o| {
                s.splits.iter().map(|p| Alternative {
                    ownership: o.clone(),
                    split: p.clone(),
                })
            })
            .collect();
        let mut money: Vec<Money> = alternatives
            .iter()
            .map(|a| Money::named(&a.ownership.version, &a.split.version))
            .collect();
        let mut restater = Restater::grouped(alternatives, book.history_limit);
        let mut failed: Option<String> = None;
        self.attribution
            .engine()
            .store()
            .scan_trails(&mut |e: TrailEvent| {
                checker.push(e.clone(), None);
                let restated = match restater.push(e) {
                    Ok(r) => r,
                    Err(what) => {
                        failed = Some(what);
                        return false;
                    }
                };
                for (m, x) in money.iter_mut().zip(&restated) {
                    let served = x.order().and_then(|o| self.served.get(&o.facts.order_id));
                    let served = served.map(|&g| format!("guide:{}", net.guide(g).id));
                    m.add(x, served.as_deref());
                }
                true
            })?;
        if let Some(what) = failed {
            anyhow::bail!("restating the trails: {what}");
        }
        let check = checker.finish();
        let mut problems: Vec<String> = Vec::new();
        if let Err(b) = &check.chain {
            problems.push(b.to_string());
        }
        problems.extend(
            check
                .recomputed
                .mismatches
                .iter()
                .take(5)
                .map(|m| m.to_string()),
        );
        let trails = Trails {
            members: check.members,
            events: check.events,
            orders: check.recomputed.orders,
            refunds: check.recomputed.refunds,
            ok: check.ok(),
            problems,
        };
        for m in &mut money {
            m.finish(net);
        }
        let mut lines = Vec::new();
        if export {
            leadrouter::app::trail::export_store(
                self.attribution.engine().store().as_ref(),
                None,
                &mut lines,
            )?;
        }
        Ok((money, trails, lines))
    }
}
