//! Which guides a route tries, in order. [`Picker`] gathers and ranks the candidates of one
//! stage and round at a time and hands out the ranked guides with capacity left (as this engine
//! last saw it), so that the caller commits each in turn — waiting on storage or not — and no
//! scratch space is held while it waits. A guide that filled up first is passed over; when a
//! round's ranked guides are all taken the candidates are gathered again (up to [`ROUNDS`]).

use super::{Engine, Picked, ROUNDS, SCRATCH, Snapshot, bind, candidates, local_hour};
use crate::domain::{Alternative, Day, Lead, Level, Reasons, SplitMix64, Unrouted};
use crate::engine::{Gathered, ValidLead};
use crate::policy::{Candidate, Ranked, RouteContext};
use std::sync::Arc;

pub(crate) struct Picker<'a> {
    engine: &'a Engine,
    snap: &'a Snapshot,
    /// The policy for this lead (`[policy]`, or an experiment's arm).
    policy: &'a std::sync::Arc<dyn crate::policy::Policy>,
    lead: &'a Lead,
    valid: &'a ValidLead,
    stages: &'a [bind::Stage],
    /// Guides not to pick (an offer's decliners).
    exclude: &'a [Arc<str>],
    day: Day,
    channel: usize,
    hour: u32,
    segment: Option<u16>,
    /// The stage being tried, and its next round.
    stage: usize,
    round: usize,
    /// The current round's ranked guides, the next to hand out, and what they were ranked at.
    ranked: Vec<(Candidate, Ranked)>,
    next: usize,
    level: Level,
    propensity: f64,
    /// The policy's probability of each entry of `ranked` (see [`crate::policy::Ranking`]).
    probabilities: Option<Vec<f64>>,
    because: Reasons,
    /// Whether the current ranking is a round after the first.
    again: bool,
    /// What the network stage gathered: why nothing was placed, if nothing is.
    gathered: Gathered,
}

impl<'a> Picker<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        snap: &'a Snapshot,
        lead: &'a Lead,
        valid: &'a ValidLead,
        stages: &'a [bind::Stage],
        exclude: &'a [Arc<str>],
        day: Day,
    ) -> Self {
        let channel = lead.channel.index();
        let hour = local_hour(engine.clock.now_ms(), engine.cfg.time_zone);
        let segment = lead
            .member_id
            .as_deref()
            .and_then(|m| snap.network.member_segment(m));
        let policy = snap.choose(lead).policy;
        Self {
            engine,
            snap,
            policy,
            lead,
            valid,
            stages,
            exclude,
            day,
            channel,
            hour,
            segment,
            stage: 0,
            round: 0,
            ranked: Vec::new(),
            next: 0,
            level: Level::District,
            propensity: 1.0,
            probabilities: None,
            because: Reasons::default(),
            again: false,
            gathered: Gathered::None(Unrouted::NoCandidate),
        }
    }

    /// The next guide to try, or `None` when every stage is spent.
    pub(crate) fn next(&mut self) -> Option<Picked> {
        loop {
            while self.next < self.ranked.len() {
                let k = self.next;
                self.next += 1;
                let (c, ranked) = self.ranked[k];
                if self.snap.book.used(c.guide, self.day) >= c.capacity {
                    continue;
                }
                return Some(self.picked(k, c, ranked));
            }
            if !self.rank_next() {
                return None;
            }
        }
    }

    /// Why nothing was placed, once [`Picker::next`] returned `None`.
    pub(crate) fn why(&self) -> Unrouted {
        match self.gathered {
            Gathered::None(why) => why,
            // Every ranked guide filled up under us for all rounds.
            Gathered::Found(_) => Unrouted::AllAtCapacity,
        }
    }

    fn picked(&self, k: usize, c: Candidate, ranked: Ranked) -> Picked {
        let net = &self.snap.network;
        let raced = self.again || k > 0;
        let mut reasons = Reasons::level(self.level)
            .with(self.because)
            .with(ranked.reasons);
        if raced {
            reasons = reasons.with(Reasons::CAPACITY_RACE);
        }
        let best = self.ranked.first().map_or(0.0, |(_, r)| r.score);
        let chance = |j: usize, r: &Ranked| match &self.probabilities {
            Some(p) => p.get(j).copied().unwrap_or(0.0),
            // Deterministic but for ties: a tied guide had the tie's share.
            None if self.propensity < 1.0 && r.score == best => self.propensity,
            None => 0.0,
        };
        let alternatives = self
            .ranked
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .take(self.engine.cfg.alternatives)
            .map(|(j, (a, r))| Alternative {
                store_id: net.store(a.store).id.clone(),
                guide_id: net.guide(a.guide).id.clone(),
                score: r.score,
                reasons: r.reasons,
                propensity: chance(j, r),
            })
            .collect();
        Picked {
            store: c.store,
            guide: c.guide,
            score: ranked.score,
            reasons,
            alternatives,
            propensity: if raced { 1.0 } else { self.propensity },
            level: self.level,
            capacity: c.capacity,
        }
    }

    /// Gathers and ranks the next round of candidates (of this stage, else of the next stage
    /// that finds any); false when the stages are spent.
    fn rank_next(&mut self) -> bool {
        let net = &self.snap.network;
        let scan = candidates::Scan {
            net,
            book: &self.snap.book,
            lead: self.valid,
            location: self.lead.location.as_ref(),
            day: self.day,
            cfg: &self.engine.cfg.candidates,
            max_level: self.engine.max_level,
            count_capacity: true,
        };
        let keep = self.engine.cfg.alternatives + 1;
        loop {
            let Some(&stage) = self.stages.get(self.stage) else {
                return false;
            };
            let rounds = match stage {
                bind::Stage::Network => ROUNDS,
                bind::Stage::Guide(..) | bind::Stage::Store(..) => 1,
            };
            if self.round >= rounds {
                self.stage += 1;
                self.round = 0;
                continue;
            }
            let because = match stage {
                bind::Stage::Network => Reasons::default(),
                bind::Stage::Guide(_, _, r) | bind::Stage::Store(_, r) => r,
            };
            let round = self.round;
            self.round += 1;
            let ranked = SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (scratch, cands) = &mut *guard;
                let mut found = match stage {
                    bind::Stage::Network => scan.gather(scratch, cands),
                    bind::Stage::Guide(s, g, _) => scan.gather_store(scratch, cands, s, Some(g)),
                    bind::Stage::Store(s, _) => scan.gather_store(scratch, cands, s, None),
                };
                if !self.exclude.is_empty() {
                    cands.retain(|c| !self.exclude.iter().any(|g| **g == *net.guide(c.guide).id));
                    if cands.is_empty() && matches!(found, Gathered::Found(_)) {
                        found = Gathered::None(Unrouted::NoCandidate);
                    }
                }
                if stage == bind::Stage::Network {
                    self.gathered = found;
                }
                let Gathered::Found(level) = found else {
                    return None;
                };
                let mut ctx = RouteContext {
                    network: net,
                    region: self.valid.region,
                    level,
                    day: self.day,
                    rng: SplitMix64::keyed(self.engine.cfg.seed, self.lead.lead_id.as_bytes()),
                    channel: self.channel,
                    hour: self.hour,
                    segment: self.segment,
                };
                let ranking = self.policy.rank(&mut ctx, cands, keep);
                self.ranked.clear();
                self.ranked
                    .extend(ranking.order.iter().map(|r| (cands[r.idx], *r)));
                Some((level, ranking.propensity, ranking.probabilities))
            });
            let Some((level, propensity, probabilities)) = ranked else {
                // Nothing found in this stage: on to the next.
                self.stage += 1;
                self.round = 0;
                continue;
            };
            self.level = level;
            self.propensity = propensity;
            self.probabilities = probabilities;
            self.because = because;
            self.again = round > 0;
            self.next = 0;
            return true;
        }
    }
}
