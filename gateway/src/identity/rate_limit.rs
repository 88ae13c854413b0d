//! A token bucket per principal: each caller gets `requests_per_second` on average and bursts up to `burst`.
//! Callers over their budget get RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` saying when to come back.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use highwind_common::principal::Principal;
use serde::{Deserialize, Serialize};

/// Buckets idle this long are forgotten when the table is pruned.
const IDLE: Duration = Duration::from_secs(600);
/// The table is pruned once it holds this many principals.
const PRUNE_AT: usize = 10_000;

/// The per-principal budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained calls per second per principal.
    pub requests_per_second: f64,
    /// Calls a principal may make at once after being idle.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets of every principal seen recently.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<Principal, Bucket>>,
}

impl RateLimiter {
    /// A limiter with `config`'s budget.
    pub fn new(config: RateLimitConfig) -> Self {
        Self { config, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one call from `principal`'s budget at `now`, or says how long until one is available.
    pub fn check(&self, principal: &Principal, now: Instant) -> Result<(), Duration> {
        let RateLimitConfig { requests_per_second: rate, burst } = self.config;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE);
        }
        let bucket = buckets.entry(principal.clone()).or_insert(Bucket { tokens: burst, updated: now });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate.max(f64::MIN_POSITIVE)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_principal() {
        let limiter = RateLimiter::new(RateLimitConfig { requests_per_second: 2.0, burst: 3.0 });
        let (alice, bob) = (Principal::user("alice"), Principal::user("bob"));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&alice, start).is_ok());
        }
        let wait = limiter.check(&alice, start).expect_err("burst spent");
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limiter.check(&bob, start).is_ok(), "budgets are per principal");
        assert!(limiter.check(&alice, start + Duration::from_millis(500)).is_ok(), "refilled after the wait");
        assert!(limiter.check(&alice, start + Duration::from_millis(500)).is_err());
    }
}
