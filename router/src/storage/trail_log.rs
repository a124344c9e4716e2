//! Appends to members' trails, one writer per member at a time: the engine (binding events of
//! routes) and attribution (touches, orders, refunds, extensions) share these locks, so every
//! event chains onto the one before it.

use super::{Storage, StorageError, TrailKey};
use crate::domain::trail::{EventBody, TrailEvent};
use parking_lot::{Mutex, MutexGuard};
use std::hash::BuildHasher;
use std::sync::Arc;

/// Member locks.
const STRIPES: usize = 1024;

#[derive(Debug)]
pub struct TrailLog {
    store: Arc<dyn Storage>,
    locks: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

/// Held while a member's trail is read and appended to.
pub struct MemberGuard<'a> {
    _guard: MutexGuard<'a, ()>,
}

impl TrailLog {
    pub fn new(store: Arc<dyn Storage>) -> Self {
        Self {
            store,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    /// Locks `member_id`'s trail (and others sharing its stripe).
    pub fn lock(&self, member_id: &str) -> MemberGuard<'_> {
        let i = (self.hasher.hash_one(member_id) as usize) % self.locks.len();
        MemberGuard {
            _guard: self.locks[i].lock(),
        }
    }

    /// Appends `body` after `head` (the member's last `(seq, hash)`, read under the guard) and
    /// indexes it under `key` when given. The guard proves the caller holds the member's lock.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &self,
        _held: &MemberGuard<'_>,
        member_id: &str,
        head: Option<&(u64, String)>,
        occurred_at_ms: i64,
        recorded_at_ms: i64,
        body: EventBody,
        key: Option<TrailKey<'_>>,
    ) -> Result<TrailEvent, StorageError> {
        let (event, line) = TrailEvent::next_with_line(
            member_id,
            head.map(|(s, h)| (*s, h.as_str())),
            occurred_at_ms,
            recorded_at_ms,
            body,
        );
        self.store.append_trail(&event, &line, key)?;
        Ok(event)
    }

    /// Appends `body`, happening and recorded at `at_ms`, after the member's last event (read
    /// here), without an idempotency key: the service's own events (bindings, offers).
    pub fn append_now(
        &self,
        held: &MemberGuard<'_>,
        member_id: &str,
        at_ms: i64,
        body: EventBody,
    ) -> Result<TrailEvent, StorageError> {
        let head = self.store.trail_head(member_id)?;
        self.append(held, member_id, head.as_ref(), at_ms, at_ms, body, None)
    }
}
