//! Guides' counts per business day, kept in memory by the sled backend (one process opens a
//! data directory, so the backend's locks make a count's check and its take one step). A day's
//! counts are read from disk the first time the day is used (derived from the stored decisions,
//! see [`super::SledStore`]); from then on every take and release goes through here.

use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

const SHARDS: usize = 64;

/// `(day, guide_id)` → count.
type Shard = Mutex<HashMap<(i32, Box<str>), u32>>;

#[derive(Debug)]
pub(super) struct Counts {
    seeded: RwLock<HashSet<i32>>,
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Counts {
    pub(super) fn new() -> Self {
        Self {
            seeded: RwLock::new(HashSet::new()),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    /// Whether `day` has been read from disk.
    pub(super) fn is_seeded(&self, day: i32) -> bool {
        self.seeded.read().contains(&day)
    }

    /// Loads `day`'s counts once (`read` reads them from disk), unless already loaded.
    pub(super) fn seed(
        &self,
        day: i32,
        read: impl FnOnce() -> Result<Vec<(String, u32)>, crate::storage::StorageError>,
    ) -> Result<(), crate::storage::StorageError> {
        if self.is_seeded(day) {
            return Ok(());
        }
        let mut seeded = self.seeded.write();
        if seeded.contains(&day) {
            return Ok(());
        }
        for (guide, n) in read()? {
            self.shard(&guide).lock().insert((day, guide.into()), n);
        }
        seeded.insert(day);
        Ok(())
    }

    pub(super) fn shard(&self, guide: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(guide) as usize) % SHARDS]
    }

    pub(super) fn get(&self, guide: &str, day: i32) -> u32 {
        self.shard(guide)
            .lock()
            .get(&(day, guide.into()))
            .copied()
            .unwrap_or(0)
    }

    /// Every guide's count on a loaded day.
    pub(super) fn day(&self, day: i32) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            out.extend(
                s.lock()
                    .iter()
                    .filter(|((d, _), n)| *d == day && **n > 0)
                    .map(|((_, g), n)| (g.to_string(), *n)),
            );
        }
        out.sort();
        out
    }

    pub(super) fn release(&self, guide: &str, day: i32) {
        if let Some(n) = self.shard(guide).lock().get_mut(&(day, guide.into())) {
            *n = n.saturating_sub(1);
        }
    }
}
