//! Per-key token buckets. Each replica limits its own share: a brand with N replicas behind a
//! balancer admits about N times a key's rate in all, which is what a rate limit against
//! runaway clients needs (it is not a quota that money depends on).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key name; at most one per key in the keyring, so the map stays bounded.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Most buckets kept; beyond this the oldest are forgotten (they refill anyway).
const MAX_BUCKETS: usize = 100_000;

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl RateLimiter {
    /// Takes one token from `name`'s bucket (`rate` per second, `burst` deep), or says how long
    /// until one is there.
    pub fn take(&self, name: &str, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(name) {
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
            buckets.insert(
                name.to_string(),
                Bucket {
                    tokens: burst,
                    at: now,
                },
            );
        }
        let Some(b) = buckets.get_mut(name) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}
