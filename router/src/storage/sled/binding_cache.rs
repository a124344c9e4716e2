//! Members' latest binding events, kept in memory so that a returning member's route does not
//! read and decode the event from disk every time.
//!
//! The store fills it on a read and overwrites it on every binding append. A fill never replaces
//! a newer entry: each shard counts its appends and clears (its epoch), and a read fills only if
//! none happened between the read's start and its fill. A full shard is emptied whole (bounded
//! memory, no per-entry bookkeeping); the next reads refill it from disk.

use crate::domain::trail::TrailEvent;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    /// Bumped by every append and every clear in this shard.
    epoch: u64,
    members: HashMap<Box<str>, Arc<TrailEvent>>,
}

/// A bounded map member → latest binding event.
pub(crate) struct BindingCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

/// Where a read stood when it missed: passed back to [`BindingCache::fill`].
#[derive(Debug)]
pub(crate) struct Miss {
    shard: usize,
    epoch: u64,
}

impl std::fmt::Debug for BindingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish()
    }
}

fn shard_of(member_id: &str) -> usize {
    // FNV-1a: cheap, and member ids are not chosen to collide with each other.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

impl BindingCache {
    /// Holds at most about `capacity` members; 0 turns the cache off.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    /// The cached event, or where the read stood so that it can fill the cache afterwards.
    pub fn get(&self, member_id: &str) -> Result<Arc<TrailEvent>, Miss> {
        let shard = shard_of(member_id);
        let s = self.shards[shard].lock();
        match s.members.get(member_id) {
            Some(e) => Ok(e.clone()),
            None => Err(Miss {
                shard,
                epoch: s.epoch,
            }),
        }
    }

    /// Caches what a read found on disk, unless an append or clear came in between.
    pub fn fill(&self, miss: Miss, event: &TrailEvent) {
        let mut s = self.shards[miss.shard].lock();
        if s.epoch == miss.epoch {
            self.insert(&mut s, event);
        }
    }

    /// Records an appended binding event (written to disk already).
    pub fn appended(&self, event: &TrailEvent) {
        let mut s = self.shards[shard_of(&event.member_id)].lock();
        s.epoch += 1;
        self.insert(&mut s, event);
    }

    /// Caches `event` in its shard, emptying the shard first when it is full.
    fn insert(&self, s: &mut Shard, event: &TrailEvent) {
        if self.per_shard == 0 {
            return;
        }
        if s.members.len() >= self.per_shard {
            s.members = HashMap::new();
            s.epoch += 1;
        }
        s.members
            .insert(event.member_id.as_str().into(), Arc::new(event.clone()));
    }

    /// Members cached now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().members.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::binding::{BindingChange, BindingRecord, BindingState};
    use crate::domain::trail::EventBody;

    fn binding(member: &str, seq: u64, guide: &str) -> TrailEvent {
        TrailEvent {
            member_id: member.into(),
            seq,
            occurred_at_ms: 1_000 * seq as i64,
            recorded_at_ms: 1_000 * seq as i64,
            body: EventBody::Binding(BindingRecord {
                change: BindingChange::Bind,
                actor: "route".into(),
                reason: "test".into(),
                cause_id: format!("lead:{seq}"),
                previous_guide_id: None,
                state: BindingState {
                    guide_id: guide.into(),
                    store_id: "S1".into(),
                    since_ms: 0,
                    expires_at_ms: None,
                    protected_until_ms: 10,
                    rule_version: "b1".into(),
                },
            }),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn guide(e: &TrailEvent) -> &str {
        &e.binding().unwrap().state.guide_id
    }

    #[test]
    fn a_fill_never_replaces_a_newer_append() {
        let c = BindingCache::new(64);
        // A read misses, then an append lands before the read fills what it found on disk.
        let miss = c.get("M1").unwrap_err();
        c.appended(&binding("M1", 2, "G2"));
        c.fill(miss, &binding("M1", 1, "G1"));
        assert_eq!(guide(&c.get("M1").unwrap()), "G2");
        // Without an append in between the fill is kept.
        let miss = c.get("M2").unwrap_err();
        c.fill(miss, &binding("M2", 1, "G7"));
        assert_eq!(guide(&c.get("M2").unwrap()), "G7");
        // An append replaces a cached event.
        c.appended(&binding("M2", 2, "G8"));
        assert_eq!(guide(&c.get("M2").unwrap()), "G8");
    }

    #[test]
    fn stays_bounded_and_a_clear_voids_reads_in_flight() {
        let c = BindingCache::new(32);
        for i in 0..1_000 {
            c.appended(&binding(&format!("M{i}"), 1, "G1"));
            assert!(c.len() <= 32, "{} cached", c.len());
        }
        // A shard that clears between a read's miss and its fill drops the fill.
        let miss = c.get("late").unwrap_err();
        let shard = miss.shard;
        let mut i = 0;
        while c.shards[shard].lock().epoch == miss.epoch {
            c.appended(&binding(&format!("x{i}"), 1, "G1"));
            i += 1;
        }
        c.fill(miss, &binding("late", 1, "G1"));
        assert!(c.get("late").is_err());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let c = BindingCache::new(0);
        c.appended(&binding("M1", 1, "G1"));
        let miss = c.get("M1").unwrap_err();
        c.fill(miss, &binding("M1", 1, "G1"));
        assert!(c.get("M1").is_err());
    }
}
