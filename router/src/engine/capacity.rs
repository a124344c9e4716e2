//! Step 6 of route(): each guide's count for the business day, as this engine last saw it. The
//! count that matters is the storage's: a commit takes capacity only while the stored count is
//! below it (DESIGN §6), so several engines on one storage never pass a guide's capacity. This
//! book is the engine's cache of those counts, for ranking: one atomic word per guide holding
//! day and count, raised to what commits report, lowered by this engine's releases, and set
//! from storage when refreshed.

use crate::catalog::Network;
use crate::domain::Day;
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
    state: AtomicU64,
}

impl GuideSlot {
    fn update(&self, f: impl Fn(u64) -> u64) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some(f(w)));
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

    /// Sets a guide's count on `day` (what storage said).
    pub fn set(&self, guide: u32, day: Day, used: u32) {
        self.slots[guide as usize]
            .state
            .store(pack(day, used), Ordering::Release);
    }

    /// Raises a guide's count on `day` to at least `used` (what a commit reported; a later
    /// commit may have reported more already).
    pub fn observe(&self, guide: u32, day: Day, used: u32) {
        self.slots[guide as usize].update(|w| pack(day, unpack(w, day).max(used)));
    }

    /// Lowers a guide's count on `day` by one (a release this engine committed).
    pub fn release(&self, guide: u32, day: Day) {
        self.slots[guide as usize].update(|w| pack(day, unpack(w, day).saturating_sub(1)));
    }

    /// A guide's count on `day` as last seen (a take may land right after).
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
        b.set(1, Day(20_000), 7);
        assert_eq!(b.used(1, Day(20_000)), 7);
        assert_eq!(b.used(1, Day(20_001)), 0);
        assert_eq!(b.used(0, Day(20_000)), 0);
        assert_eq!(b.total_used(Day(20_000)), 7);
        // Days before 1970 pack too.
        b.set(0, Day(-3), 2);
        assert_eq!(b.used(0, Day(-3)), 2);
        // A commit's report only raises; a release lowers by one.
        b.observe(0, Day(-3), 1);
        assert_eq!(b.used(0, Day(-3)), 2);
        b.observe(0, Day(-3), 5);
        assert_eq!(b.used(0, Day(-3)), 5);
        b.release(0, Day(-3));
        assert_eq!(b.used(0, Day(-3)), 4);
        // A new day starts from nothing.
        b.observe(0, Day(-2), 1);
        assert_eq!(b.used(0, Day(-2)), 1);
    }
}
