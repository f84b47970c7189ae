//! Credentials: argon2id password hashing and login tokens.
//!
//! Hashing is slow on purpose, so it runs on a few dedicated threads (one
//! fewer than the cores by default) at the lowest scheduling priority, never on
//! the async workers: a login flood queues here while messages keep flowing. Each hash
//! takes its memory (7 MiB at the default cost) when it starts and gives it back
//! to the system when it ends: a server that is not hashing holds none of it,
//! and one that is holds at most threads x buffer however many logins arrive
//! (see [`crate::malloc::release_big_buffers`]). Under a memory limit (a cgroup) a second
//! hash starts only when the limit leaves room for it (see [`Gate`]). A hash
//! made at another cost than the configured one is made again at the next
//! successful login ([`made_at`], `App::login`). Tokens are 256 random bits shown to the
//! client once; the database keeps only their SHA-256, and lookups go by that
//! hash, so comparing tokens never happens byte by byte in our code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::cgroup::MemoryLimit;
use crate::config::HashCost;
use crate::error::{Error, Result};

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Hashes that may wait for a thread. Bounded like every queue: past it a
/// login is refused at once with 503 and `Retry-After` instead of waiting
/// behind a flood (the per-address and per-account login limits come first,
/// so only many addresses at once can fill it). A waiting job is a password
/// and a reply channel, a few hundred bytes.
pub const QUEUE: usize = 256;

#[derive(Clone)]
pub struct Hasher {
    cost: HashCost,
    jobs: mpsc::SyncSender<Job>,
    gate: Arc<Gate>,
}

/// Lets a hash take its buffer only when the memory limit leaves room for
/// it. One hash may always run (or no login could ever succeed); another
/// starts while one is running only if the limit's headroom covers every
/// running hash's buffer and its own, plus [`Gate::MARGIN`] (a running
/// hash may not have touched all of its buffer yet, so this counts it
/// twice rather than not at all). Otherwise the hashing thread waits,
/// polling, until one ends. Without a limit nothing waits.
///
/// Measured (`rim-bench --scenario memory`): 5,000 WebSocket users in a
/// 64 MiB cgroup leave about 15 MiB, so three logins hashing at once would
/// get the server killed where one at a time fits.
struct Gate {
    limit: Option<MemoryLimit>,
    running: AtomicUsize,
}

/// A running hash, counted until dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// Room kept beyond the buffers: the kernel's and the allocator's share.
    const MARGIN: u64 = 4 << 20;
    const POLL: Duration = Duration::from_millis(10);

    fn new(limit: Option<MemoryLimit>) -> Gate {
        Gate {
            limit,
            running: AtomicUsize::new(0),
        }
    }

    /// Waits until a hash of `bytes` may take its buffer.
    fn enter(&self, bytes: u64) -> Slot<'_> {
        loop {
            let running = self.running.load(Ordering::Acquire);
            let room = match (&self.limit, running) {
                (None, _) | (_, 0) => true,
                (Some(limit), n) => limit
                    .headroom()
                    .is_none_or(|free| free >= bytes * (n as u64 + 1) + Gate::MARGIN),
            };
            if room
                && self
                    .running
                    .compare_exchange(running, running + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Slot(&self.running);
            }
            if !room {
                std::thread::sleep(Gate::POLL);
            }
        }
    }
}

impl Hasher {
    /// Starts `threads` hashing threads; they end when the last `Hasher`
    /// clone is dropped.
    pub fn new(cost: HashCost, threads: usize) -> anyhow::Result<Hasher> {
        Hasher::with_queue(cost, threads, QUEUE)
    }

    /// [`Hasher::new`] with `queue` hashes allowed to wait.
    fn with_queue(cost: HashCost, threads: usize, queue: usize) -> anyhow::Result<Hasher> {
        Hasher::with_gate(cost, threads, queue, MemoryLimit::detect())
    }

    fn with_gate(
        cost: HashCost,
        threads: usize,
        queue: usize,
        limit: Option<MemoryLimit>,
    ) -> anyhow::Result<Hasher> {
        crate::malloc::release_big_buffers();
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("rim-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Hasher {
            cost,
            jobs,
            gate: Arc::new(Gate::new(limit)),
        })
    }

    /// Runs `f` on a hashing thread and waits for its answer.
    async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic costs this request, not the thread.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result);
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Error::Overloaded {
                message: "too many logins at once; try again in a second".into(),
                retry_after: 1,
            },
            mpsc::TrySendError::Disconnected(_) => busy(),
        })?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(Error::Internal("password hashing failed".into())),
            Err(_) => Err(busy()),
        }
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String> {
        let cost = self.cost;
        let gate = self.gate.clone();
        self.run(move || hash_with(cost, &password, Some(&gate)))
            .await?
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }

    /// Checks a password against a stored hash. When the account does not
    /// exist (`None`) the password is hashed at the configured cost all the
    /// same, and the answer is false: "no such account" takes as long as
    /// "wrong password", without a decoy hash made (and its memory taken) at
    /// startup.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool> {
        let cost = self.cost;
        let gate = self.gate.clone();
        self.run(move || match stored {
            Some(stored) => verify_with(&password, &stored, Some(&gate)),
            None => {
                let _ = hash_with(cost, &password, Some(&gate));
                false
            }
        })
        .await
    }
}

/// Puts the calling thread at the lowest scheduling priority (nice 19): when
/// hashing and messages compete for the cores, messages win at once, and
/// hashing still gets every cycle nobody else wants.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; on Linux, who = 0
    // with PRIO_PROCESS names the calling thread alone.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

fn busy() -> Error {
    Error::Unavailable("the server is shutting down".into())
}

/// Hashes a password on the calling thread (the `rim` command line; the
/// server uses [`Hasher::hash`]).
pub fn hash_blocking(cost: HashCost, password: &str) -> anyhow::Result<String> {
    hash_with(cost, password, None)
}

/// Whether `stored` is an argon2id (v0x13) hash made at `cost`.
pub fn made_at(stored: &str, cost: HashCost) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    parsed.algorithm == ARGON2ID_IDENT
        && parsed.version == Some(Version::V0x13.into())
        && params.m_cost() == cost.memory_kib
        && params.t_cost() == cost.iterations
        && params.p_cost() == cost.parallelism
}

/// The memory one hash with `params` works in, taken for that hash alone
/// and freed when it ends (a mapping of its own: see [`release_big_buffers`]).
fn blocks_for(params: &Params) -> Vec<Block> {
    vec![Block::default(); params.block_count()]
}

/// The bytes of a hash's working memory.
fn buffer_bytes(params: &Params) -> u64 {
    params.block_count() as u64 * Block::SIZE as u64
}

fn hash_with(cost: HashCost, password: &str, gate: Option<&Gate>) -> anyhow::Result<String> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("argon2: {e}");
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| err(&e))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_raw = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_raw)
        .map_err(|e| err(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let _slot = gate.map(|g| g.enter(buffer_bytes(&params)));
    argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            &mut blocks_for(&params),
        )
        .map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| err(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

/// Recomputes the stored hash's parameters over `password`; the comparison of
/// the outputs is constant-time (`Output`'s equality).
fn verify_with(password: &str, stored: &str, gate: Option<&Gate>) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt_raw = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_raw).ok()?;
        let mut out = vec![0u8; expected.len()];
        let _slot = gate.map(|g| g.enter(buffer_bytes(&params)));
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut blocks_for(&params),
            )
            .ok()?;
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

/// A fresh login token: 32 random bytes as 64 hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// What the database stores and looks tokens up by.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh invite code: 100 random bits as 20 characters of Crockford's
/// base32 in groups of five (`k7m2q-9xpzt-...`). That alphabet has no
/// look-alikes (no i, l, o, u), so a code can be read out or typed from paper.
pub fn new_invite_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    let mut code = String::with_capacity(23);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        code.push(ALPHABET[usize::from(b & 31)] as char);
    }
    code
}

/// What the database stores and looks an invite up by. Case, spaces, dashes
/// and the usual misreadings (o for 0, i or l for 1) do not matter.
pub fn invite_hash(code: &str) -> [u8; 32] {
    let normal: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    Sha256::digest(normal.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn invite_codes_are_random_and_forgiving_to_type() {
        let code = new_invite_code();
        assert_eq!(code.len(), 23);
        assert_eq!(code.matches('-').count(), 3);
        assert_ne!(code, new_invite_code());
        let typed = code
            .to_uppercase()
            .replace('-', " ")
            .replace('0', "O")
            .replace('1', "l");
        assert_eq!(invite_hash(&typed), invite_hash(&code));
        assert_ne!(invite_hash("abcde"), invite_hash("abcdf"));
    }

    #[test]
    fn phc_strings_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let cost = HashCost {
            memory_kib: 256,
            iterations: 2,
            parallelism: 1,
        };
        let ours = hash_with(cost, "hunter2-hunter2", None).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"hunter2-hunter2", &parsed)
                .is_ok()
        );
        let params = Params::new(512, 1, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"other-password", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with("other-password", &theirs, None));
        assert!(!verify_with("other-passwore", &theirs, None));
        assert!(!verify_with("x", "not a phc string", None));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_retry_after_instead_of_waiting() {
        let cost = HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = Hasher::with_queue(cost, 1, 1).unwrap();
        // Hold the one thread until the test lets it go.
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let holding = {
            let h = h.clone();
            tokio::spawn(async move {
                h.run(move || {
                    let _ = started_tx.send(());
                    let _ = held.recv();
                })
                .await
            })
        };
        started.await.unwrap();
        // One may wait (polled once, it is queued), the next is refused at once.
        let mut waiting = Box::pin(h.hash("queued password".into()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        let refused = h.hash("one too many".into()).await.unwrap_err();
        assert_eq!(refused.code(), 503, "{refused:?}");
        assert_eq!(refused.retry_after(), Some(1));
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        assert!(waiting.await.unwrap().starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let cost = HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = Hasher::new(cost, 2).unwrap();
        let stored = h.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains("correct horse"));
        assert!(
            h.verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify("wrong".into(), Some(stored)).await.unwrap());
        assert!(!h.verify("anything".into(), None).await.unwrap());
    }

    /// A hash at another cost still verifies, and is known as made at it.
    #[tokio::test]
    async fn a_hash_tells_the_cost_it_was_made_at() {
        let old = HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let new = HashCost {
            memory_kib: 128,
            ..old
        };
        let stored = hash_with(old, "correct horse", None).unwrap();
        assert!(made_at(&stored, old) && !made_at(&stored, new));
        let h = Hasher::new(new, 1).unwrap();
        assert!(
            h.verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        let fresh = h.hash("correct horse".into()).await.unwrap();
        assert!(made_at(&fresh, new) && !made_at(&fresh, old));
        assert!(!made_at("not a phc string", new));
    }

    /// Under a limit with room for one buffer only, a second hash waits for
    /// the first to end; with room for both, it does not.
    #[test]
    fn the_gate_lets_a_second_hash_in_only_when_the_limit_has_room() {
        use std::fs;
        let root = tempfile::tempdir().unwrap();
        let group = root.path().join("memory/g");
        fs::create_dir_all(&group).unwrap();
        let set = |limit: u64| {
            fs::write(group.join("memory.limit_in_bytes"), limit.to_string()).unwrap();
            fs::write(group.join("memory.usage_in_bytes"), "0").unwrap();
        };
        let buffer = 8u64 << 20;
        set(buffer + Gate::MARGIN);
        let limit = MemoryLimit::from_listing("1:memory:/g\n", root.path());
        let gate = Arc::new(Gate::new(limit));
        let first = gate.enter(buffer);
        let second = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let _slot = gate.enter(buffer);
                gate.running.load(Ordering::Acquire)
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !second.is_finished(),
            "the second hash started without room"
        );
        drop(first);
        assert_eq!(second.join().unwrap(), 1, "it ran alone");
        set(3 * buffer + Gate::MARGIN);
        let _first = gate.enter(buffer);
        let _second = gate.enter(buffer);
        assert_eq!(gate.running.load(Ordering::Acquire), 2);
    }
}
