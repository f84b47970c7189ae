//! Credentials: argon2id password hashing and login tokens.
//!
//! Hashing is slow on purpose, so it runs on the blocking pool behind a
//! semaphore sized to the cores: a login flood queues here and cannot starve
//! the async workers that carry messages. Tokens are 256 random bits shown to
//! the client once; the database keeps only their SHA-256, and lookups go by
//! that hash, so comparing tokens never happens byte by byte in our code.

use std::sync::Arc;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::HashCost;
use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Hasher {
    cost: HashCost,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when an account does not
    /// exist so that "no such account" takes as long as "wrong password".
    decoy: Arc<String>,
}

impl Hasher {
    pub fn new(cost: HashCost, concurrency: usize) -> anyhow::Result<Hasher> {
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        let decoy = hash_blocking(cost, &hex(&random))?;
        Ok(Hasher {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy: Arc::new(decoy),
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String> {
        let _permit = self.permits.acquire().await.map_err(|_| busy())?;
        let cost = self.cost;
        tokio::task::spawn_blocking(move || hash_blocking(cost, &password))
            .await
            .map_err(|_| busy())?
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }

    /// Checks a password against a stored hash (or against the decoy when the
    /// account does not exist, then always false).
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool> {
        let _permit = self.permits.acquire().await.map_err(|_| busy())?;
        let real = stored.is_some();
        let stored = stored.unwrap_or_else(|| (*self.decoy).clone());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|_| busy())?;
        Ok(ok && real)
    }
}

fn busy() -> Error {
    Error::Unavailable("the server is shutting down".into())
}

/// Hashes a password on the calling thread (the `rim` command line; the
/// server uses [`Hasher::hash`]).
pub fn hash_blocking(cost: HashCost, password: &str) -> anyhow::Result<String> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
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
}
