//! Abuse limits: token buckets keyed by account, IP address or user.
//!
//! A bucket holds up to `burst` tokens and refills at `per_sec`; each attempt
//! takes one. An empty bucket means 429 with the time until the next token.
//! Buckets that have refilled completely carry no information and are
//! dropped when the map grows, so memory stays bounded by recent activity.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;

/// Prune full buckets once the map holds this many keys.
const PRUNE_AT: usize = 10_000;

pub struct RateLimiter<K> {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_sec` = 0 disables the limit.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        RateLimiter {
            per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `count` events per `window`, all of which may come at once.
    pub fn per(count: u32, window: Duration) -> Self {
        if count == 0 {
            return RateLimiter::new(0.0, 1);
        }
        RateLimiter::new(f64::from(count) / window.as_secs_f64(), count)
    }

    /// Takes one token for `key`; on failure, how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(key) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst
            });
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((self.burst, now));
        let available =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if available >= 1.0 {
            *tokens = available - 1.0;
            Ok(())
        } else {
            *tokens = available;
            Err(Duration::from_secs_f64((1.0 - available) / self.per_sec))
        }
    }
}

/// The server's limits, built from the config.
pub struct Limits {
    pub login_per_account: RateLimiter<String>,
    pub login_per_ip: RateLimiter<IpAddr>,
    pub register_per_ip: RateLimiter<IpAddr>,
    pub messages_per_user: RateLimiter<u64>,
}

impl Limits {
    pub fn new(c: &Config) -> Limits {
        let r = &c.rate_limits;
        Limits {
            login_per_account: RateLimiter::per(
                r.logins_per_account_per_minute,
                Duration::from_secs(60),
            ),
            login_per_ip: RateLimiter::per(r.logins_per_ip_per_minute, Duration::from_secs(60)),
            register_per_ip: RateLimiter::per(
                r.registrations_per_ip_per_hour,
                Duration::from_secs(3600),
            ),
            messages_per_user: RateLimiter::new(f64::from(r.messages_per_second), r.message_burst),
        }
    }
}

/// The 429 answer for a limit hit.
pub fn too_many(what: &str, retry: Duration) -> Error {
    let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
    Error::TooManyRequests {
        message: format!("too many {what}; try again in {secs} s"),
        retry_after: secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let l = RateLimiter::per(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check(&1u8).is_ok());
        }
        let wait = l.check(&1u8).unwrap_err();
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(l.check(&2u8).is_ok(), "keys are independent");
    }

    #[test]
    fn zero_disables() {
        let l = RateLimiter::per(0, Duration::from_secs(1));
        for _ in 0..1000 {
            assert!(l.check(&1u8).is_ok());
        }
    }

    #[test]
    fn refills_over_time() {
        let l = RateLimiter::new(1000.0, 1);
        assert!(l.check(&1u8).is_ok());
        assert!(l.check(&1u8).is_err());
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check(&1u8).is_ok());
    }
}
