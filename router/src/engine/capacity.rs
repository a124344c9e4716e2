//! Step 6 of route(): each guide's count for the business day. Reads are lock-free (one atomic
//! word per guide holding day and count); a take happens under that guide's lock, held while the
//! decision is written, so a count never passes capacity and stored counts are written in the
//! order they were taken.

use crate::catalog::Network;
use crate::domain::Day;
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU64, Ordering};

fn pack(day: Day, used: u32) -> u64 {
    (u64::from(day.0 as u32) << 32) | u64::from(used)
}

fn unpack(word: u64, day: Day) -> u32 {
    if (word >> 32) as u32 == day.0 as u32 {
        word as u32
    } else {
        0
    }
}

#[derive(Debug, Default)]
struct GuideSlot {
    lock: Mutex<()>,
    state: AtomicU64,
}

/// One guide's slot, locked for a take.
#[derive(Debug)]
pub struct Held<'a> {
    _guard: MutexGuard<'a, ()>,
    state: &'a AtomicU64,
}

impl Held<'_> {
    /// Leads taken on `day` (0 when the slot still holds an earlier day).
    pub fn used_on(&self, day: Day) -> u32 {
        unpack(self.state.load(Ordering::Acquire), day)
    }

    pub fn set(&mut self, day: Day, used: u32) {
        self.state.store(pack(day, used), Ordering::Release);
    }
}

/// One slot per guide of the network, indexed like [`crate::catalog::Network::guides`].
#[derive(Debug)]
pub struct CapacityBook {
    slots: Vec<GuideSlot>,
}

impl CapacityBook {
    pub fn new(guides: usize) -> Self {
        Self {
            slots: (0..guides).map(|_| GuideSlot::default()).collect(),
        }
    }

    /// Locks one guide's slot.
    pub fn lock(&self, guide: u32) -> Held<'_> {
        let slot = &self.slots[guide as usize];
        Held {
            _guard: slot.lock.lock(),
            state: &slot.state,
        }
    }

    /// A guide's count on `day`, without locking (a snapshot: a take may land right after).
    pub fn used(&self, guide: u32, day: Day) -> u32 {
        unpack(
            self.slots[guide as usize].state.load(Ordering::Acquire),
            day,
        )
    }

    /// A book for `next`, carrying each guide's day and count over from this book (for `prev`)
    /// by guide id. Call with no take in flight on this book.
    pub fn carried_over(&self, prev: &Network, next: &Network) -> Self {
        let book = Self::new(next.guides().len());
        for (i, g) in next.guides().iter().enumerate() {
            if let Some(p) = prev.guide_index(&g.id) {
                let word = self.slots[p as usize].state.load(Ordering::Acquire);
                book.slots[i].state.store(word, Ordering::Release);
            }
        }
        book
    }

    /// Sum of counts on `day`.
    pub fn total_used(&self, day: Day) -> u64 {
        self.slots
            .iter()
            .map(|s| u64::from(unpack(s.state.load(Ordering::Acquire), day)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_day() {
        let b = CapacityBook::new(2);
        b.lock(1).set(Day(20_000), 7);
        assert_eq!(b.used(1, Day(20_000)), 7);
        assert_eq!(b.used(1, Day(20_001)), 0);
        assert_eq!(b.used(0, Day(20_000)), 0);
        assert_eq!(b.total_used(Day(20_000)), 7);
        // Days before 1970 pack too.
        b.lock(0).set(Day(-3), 2);
        assert_eq!(b.used(0, Day(-3)), 2);
    }
}
