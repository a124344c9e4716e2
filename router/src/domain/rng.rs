//! Seeded draws: [`SplitMix64`] lives with the models (the dual bound's random instances use
//! it too) and is re-exported here for the engine and policies.

pub use leadrouter_models::rng::SplitMix64;

/// 64 random bits from the operating system (not for keys: see `auth::keys`).
pub fn os_random_u64() -> u64 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_fixed() {
        // Reference values of SplitMix64 seeded with 0.
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(g.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut g = SplitMix64::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            seen[g.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
