//! Step 6 of route(): each guide's count for the business day, behind a per-guide lock that is
//! held while the decision is written, so a count never passes capacity and stored counts are
//! written in the order they were taken.

use crate::domain::Day;
use parking_lot::{Mutex, MutexGuard};

#[derive(Debug, Default, Clone, Copy)]
pub struct Slot {
    day: Day,
    used: u32,
}

impl Slot {
    /// Leads taken on `day` (0 when the slot still holds an earlier day).
    pub fn used_on(&self, day: Day) -> u32 {
        if self.day == day { self.used } else { 0 }
    }

    pub fn set(&mut self, day: Day, used: u32) {
        self.day = day;
        self.used = used;
    }
}

/// One slot per guide of the network, indexed like [`crate::catalog::Network::guides`].
#[derive(Debug)]
pub struct CapacityBook {
    slots: Vec<Mutex<Slot>>,
}

impl CapacityBook {
    pub fn new(guides: usize) -> Self {
        Self {
            slots: (0..guides).map(|_| Mutex::new(Slot::default())).collect(),
        }
    }

    /// Locks one guide's slot.
    pub fn lock(&self, guide: u32) -> MutexGuard<'_, Slot> {
        self.slots[guide as usize].lock()
    }

    /// A guide's count on `day`, read without holding the lock afterwards.
    pub fn used(&self, guide: u32, day: Day) -> u32 {
        self.slots[guide as usize].lock().used_on(day)
    }

    /// Sum of counts on `day`.
    pub fn total_used(&self, day: Day) -> u64 {
        self.slots
            .iter()
            .map(|s| u64::from(s.lock().used_on(day)))
            .sum()
    }
}
