//! Abuse limits: token buckets keyed by account, IP address or user, and
//! caps on how many of something one address may hold at once.
//!
//! A bucket holds up to `burst` tokens and refills at `per_sec`; each attempt
//! takes one. An empty bucket means 429 with the time until the next token.
//! Buckets that have refilled completely carry no information and are
//! dropped when the map grows, so memory stays bounded by recent activity.
//!
//! An [`AddressSlots`] counts what each client address holds (sockets that
//! have not logged in yet, say) and refuses one more past a per-address or
//! a total cap. Its [`Slot`]s give themselves back when dropped, so a count
//! cannot leak however its holder ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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
        self.check_n(key, 1)
    }

    /// Takes `n` tokens for `key` at once, or none; on failure, how long
    /// until they are available (never, past the burst: the request is
    /// larger than the limit allows at all, and waits a whole window).
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), Duration> {
        let n = f64::from(n);
        if self.per_sec <= 0.0 || n == 0.0 {
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
        if available >= n {
            *tokens = available - n;
            Ok(())
        } else {
            *tokens = available;
            let missing = if n > self.burst {
                self.burst
            } else {
                n - available
            };
            Err(Duration::from_secs_f64(missing / self.per_sec))
        }
    }
}

/// Counts what client addresses hold, with a cap per address and in total.
pub struct AddressSlots {
    per_address: usize,
    total: usize,
    held: Mutex<SlotCounts>,
}

#[derive(Default)]
struct SlotCounts {
    total: usize,
    /// Only addresses holding at least one slot: the map is as large as what
    /// is held, never as the addresses seen.
    by_address: HashMap<IpAddr, usize>,
}

/// Why [`AddressSlots::try_take`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotsFull {
    /// This address holds `per_address` already.
    Address,
    /// All addresses together hold `total`.
    Total,
}

/// One slot held by `ip`; dropping it gives it back.
pub struct Slot {
    slots: Arc<AddressSlots>,
    ip: IpAddr,
}

impl AddressSlots {
    pub fn new(per_address: usize, total: usize) -> Arc<AddressSlots> {
        Arc::new(AddressSlots {
            per_address,
            total,
            held: Mutex::new(SlotCounts::default()),
        })
    }

    /// A slot for `ip`, unless that would pass either cap.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, SlotsFull> {
        let ip = ip.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.by_address.get(&ip).copied().unwrap_or(0) >= self.per_address {
            return Err(SlotsFull::Address);
        }
        if held.total >= self.total {
            return Err(SlotsFull::Total);
        }
        Ok(held.take(self, ip))
    }

    /// A slot for `ip` even past the caps: for a holder that already earned
    /// its place (a socket that logged in and out again), so that the caps
    /// stop newcomers without throwing out who is already here.
    pub fn take_anyway(self: &Arc<Self>, ip: IpAddr) -> Slot {
        let ip = ip.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.take(self, ip)
    }

    /// How many slots are held in all.
    pub fn total(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// How many slots `ip` holds, and how many are held in all.
    pub fn held(&self, ip: IpAddr) -> (usize, usize) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.by_address.get(&ip.to_canonical()).copied();
        (mine.unwrap_or(0), held.total)
    }
}

impl SlotCounts {
    fn take(&mut self, slots: &Arc<AddressSlots>, ip: IpAddr) -> Slot {
        self.total += 1;
        *self.by_address.entry(ip).or_insert(0) += 1;
        Slot {
            slots: slots.clone(),
            ip,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&self.ip);
            }
        }
    }
}

/// One token bucket owned by its user, not shared (a WebSocket connection's
/// frame limit): no lock, no key.
pub struct Bucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// `per_sec` = 0 disables the limit.
    pub fn new(per_sec: f64, burst: u32) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            per_sec,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes one token; on failure, how long until one is available.
    pub fn take(&mut self) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let available = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        self.at = now;
        if available >= 1.0 {
            self.tokens = available - 1.0;
            Ok(())
        } else {
            self.tokens = available;
            Err(Duration::from_secs_f64((1.0 - available) / self.per_sec))
        }
    }
}

/// Keys seen recently, at most `cap` of them (the oldest forgotten first):
/// the addresses that logged into an account, which its slower per-account
/// limit then leaves alone.
pub struct Recent<K> {
    cap: usize,
    seen: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Recent<K> {
    pub fn new(cap: usize) -> Self {
        Recent {
            cap: cap.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn insert(&self, key: K) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= self.cap && !seen.contains_key(&key) {
            // Forget the older half at once, so this runs rarely.
            let mut ages: Vec<Instant> = seen.values().copied().collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            seen.retain(|_, at| *at > cut);
        }
        seen.insert(key, Instant::now());
    }

    pub fn contains(&self, key: &K) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.contains_key(key)
    }
}

/// The server's limits, built from the config.
pub struct Limits {
    /// Keyed by (lowercased account, address).
    pub login_per_account_ip: RateLimiter<(String, IpAddr)>,
    /// Keyed by lowercased account; only attempts from addresses not in
    /// `known_logins` take from it.
    pub login_per_account: RateLimiter<String>,
    pub known_logins: Recent<(String, IpAddr)>,
    pub login_per_ip: RateLimiter<IpAddr>,
    pub register_per_ip: RateLimiter<IpAddr>,
    pub messages_per_user: RateLimiter<u64>,
    /// WebSockets that have not logged in (yet, or again after a Logout).
    pub sockets_before_login: Arc<AddressSlots>,
    /// `Typing` pushes: at most one per conversation and user every
    /// [`TYPING_EVERY`] (the protocol promises it; not configurable).
    pub typing: RateLimiter<(u64, u64)>,
    pub groups_per_user: RateLimiter<u64>,
    pub member_adds_per_user: RateLimiter<u64>,
    pub searches_per_user: RateLimiter<u64>,
    frames_per_second: u32,
    frame_burst: u32,
}

/// How often one person's `Typing` in one conversation is passed on.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

impl Limits {
    pub fn new(c: &Config) -> Limits {
        let r = &c.rate_limits;
        let hour = Duration::from_secs(3600);
        let minute = Duration::from_secs(60);
        Limits {
            login_per_account_ip: RateLimiter::per(r.logins_per_account_per_minute, minute),
            login_per_account: RateLimiter::per(r.logins_per_account_per_hour, hour),
            known_logins: Recent::new(PRUNE_AT),
            login_per_ip: RateLimiter::per(r.logins_per_ip_per_minute, minute),
            register_per_ip: RateLimiter::per(r.registrations_per_ip_per_hour, hour),
            messages_per_user: RateLimiter::new(f64::from(r.messages_per_second), r.message_burst),
            sockets_before_login: AddressSlots::new(
                c.max_sockets_before_login_per_address,
                c.max_sockets_before_login,
            ),
            typing: RateLimiter::per(1, TYPING_EVERY),
            groups_per_user: RateLimiter::per(r.groups_per_user_per_hour, hour),
            member_adds_per_user: RateLimiter::per(r.member_adds_per_user_per_hour, hour),
            searches_per_user: RateLimiter::per(r.searches_per_user_per_minute, minute),
            frames_per_second: r.frames_per_second,
            frame_burst: r.frame_burst,
        }
    }

    /// The bucket a new WebSocket connection draws its non-message frames from.
    pub fn frame_bucket(&self) -> Bucket {
        Bucket::new(f64::from(self.frames_per_second), self.frame_burst)
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
    fn a_bucket_of_its_own_allows_its_burst_then_refuses() {
        let mut b = Bucket::new(1.0, 3);
        for _ in 0..3 {
            assert!(b.take().is_ok());
        }
        assert!(b.take().is_err());
        let mut off = Bucket::new(0.0, 1);
        for _ in 0..1000 {
            assert!(off.take().is_ok());
        }
    }

    #[test]
    fn recent_keys_are_remembered_up_to_the_cap() {
        let r = Recent::new(4);
        for k in 0..4u8 {
            r.insert(k);
        }
        assert!((0..4u8).all(|k| r.contains(&k)));
        r.insert(9);
        assert!(r.contains(&9), "the newest key is kept");
        assert!(!r.contains(&0), "the oldest key is forgotten");
    }

    #[test]
    fn zero_disables() {
        let l = RateLimiter::per(0, Duration::from_secs(1));
        for _ in 0..1000 {
            assert!(l.check(&1u8).is_ok());
        }
    }

    #[test]
    fn address_slots_cap_each_address_and_the_total() {
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let c: IpAddr = "::ffff:203.0.113.3".parse().unwrap();
        let slots = AddressSlots::new(2, 3);
        let a1 = slots.try_take(a).unwrap();
        let _a2 = slots.try_take(a).unwrap();
        assert_eq!(slots.try_take(a).err(), Some(SlotsFull::Address));
        let _b1 = slots.try_take(b).unwrap();
        assert_eq!(slots.try_take(c).err(), Some(SlotsFull::Total));
        drop(a1);
        assert_eq!(slots.held(a), (1, 2));
        let _c1 = slots.try_take(c).unwrap();
        assert_eq!(slots.held("203.0.113.3".parse().unwrap()), (1, 3));
        let _over = slots.take_anyway(a);
        assert_eq!(slots.held(a), (2, 4));
        drop(_over);
        drop(_a2);
        assert_eq!(slots.held(a), (0, 2));
        assert!(!slots.held.lock().unwrap().by_address.contains_key(&a));
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
