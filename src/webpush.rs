//! The cryptography of Web Push, by the standards browsers' push services
//! speak: a message encrypted for one subscription (RFC 8291, which is
//! RFC 8188's `aes128gcm` content coding keyed by an ECDH agreement with the
//! browser's key), and the server's signed identity (RFC 8292, VAPID: an
//! ES256 JWT with the server's P-256 key).
//!
//! Only composition lives here: the primitives (P-256 ECDH and ECDSA, HKDF
//! over SHA-256, AES-128-GCM) are RustCrypto's. Nothing in this module
//! sends anything; `push` does, with what it builds.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size announced in the header. A push message is one record
/// (push services take at most 4096 bytes of body), so this only has to be
/// larger than the message.
const RECORD_SIZE: u32 = 4096;

/// The header before the ciphertext: salt (16), record size (4), key id
/// length (1) and the key id, the sender's 65-byte public key.
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;

/// The AES-GCM tag at the end of the record.
pub const TAG_LEN: usize = 16;

/// The largest plaintext that still fits a 4096-byte push body: the header,
/// the padding delimiter and the tag take the rest.
pub const MAX_PLAINTEXT: usize = 4096 - HEADER_LEN - 1 - TAG_LEN;

/// Why a subscription's keys cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// `p256dh` is not an uncompressed P-256 point on the curve.
    BadPublicKey,
    /// `auth` is not 16 bytes.
    BadAuthSecret,
    /// The stored server key is not a P-256 private key.
    BadPrivateKey,
}

/// What a subscription gives us to encrypt for it: the browser's public key
/// and the shared authentication secret.
#[derive(Debug, Clone)]
pub struct Receiver {
    public: PublicKey,
    /// The public key as received, 65 bytes (uncompressed point).
    public_bytes: [u8; 65],
    auth: [u8; 16],
}

impl Receiver {
    /// Checks the raw keys of a subscription (`keys.p256dh` and `keys.auth`,
    /// decoded from base64url).
    pub fn new(p256dh: &[u8], auth: &[u8]) -> Result<Receiver, KeyError> {
        let public_bytes: [u8; 65] = p256dh.try_into().map_err(|_| KeyError::BadPublicKey)?;
        if public_bytes[0] != 0x04 {
            return Err(KeyError::BadPublicKey);
        }
        let public =
            PublicKey::from_sec1_bytes(&public_bytes).map_err(|_| KeyError::BadPublicKey)?;
        let auth: [u8; 16] = auth.try_into().map_err(|_| KeyError::BadAuthSecret)?;
        Ok(Receiver {
            public,
            public_bytes,
            auth,
        })
    }
}

/// Encrypts `plaintext` (at most [`MAX_PLAINTEXT`] bytes) for `to`, with a
/// fresh ephemeral key and salt: the body of the push request.
pub fn encrypt(to: &Receiver, plaintext: &[u8]) -> Vec<u8> {
    let ephemeral = SecretKey::random(&mut OsRng);
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    encrypt_with(to, plaintext, &ephemeral, &salt)
}

/// [`encrypt`] with a given ephemeral key and salt (RFC 8291, section 3.4).
fn encrypt_with(
    to: &Receiver,
    plaintext: &[u8],
    ephemeral: &SecretKey,
    salt: &[u8; 16],
) -> Vec<u8> {
    let as_public = public_bytes(&ephemeral.public_key());
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), to.public.as_affine());

    // The input keying material mixes the agreement with the auth secret
    // and both public keys.
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(&to.public_bytes);
    key_info.extend_from_slice(&as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&to.auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 length");

    // RFC 8188: the content key and nonce, from the salt.
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .expect("16 bytes is a valid HKDF-SHA-256 length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .expect("12 bytes is a valid HKDF-SHA-256 length");

    // One record, the last: the plaintext and the delimiter 0x02.
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).expect("16-byte key");
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .expect("AES-GCM encrypts any record of this size");

    let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    body
}

/// The server's VAPID key pair.
#[derive(Clone)]
pub struct Vapid {
    signing: SigningKey,
    /// The public key, uncompressed (65 bytes).
    public: [u8; 65],
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// A fresh key pair: (private scalar, 32 bytes; public point, 65 bytes),
    /// as stored.
    pub fn generate() -> (Vec<u8>, Vec<u8>) {
        let secret = SecretKey::random(&mut OsRng);
        let public = public_bytes(&secret.public_key());
        (secret.to_bytes().to_vec(), public.to_vec())
    }

    /// The key pair from its stored private key.
    pub fn from_private(private: &[u8]) -> Result<Vapid, KeyError> {
        let secret = SecretKey::from_slice(private).map_err(|_| KeyError::BadPrivateKey)?;
        Ok(Vapid {
            public: public_bytes(&secret.public_key()),
            signing: SigningKey::from(secret),
        })
    }

    /// The public key as the browser's `applicationServerKey` takes it:
    /// base64url without padding of the uncompressed point.
    pub fn public_key_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }

    /// The `Authorization` header of a push request (RFC 8292, section 3):
    /// `vapid t=<JWT>, k=<public key>`, where `claims` is the JWT's claims
    /// set as JSON (`aud`, `exp`, `sub`).
    pub fn authorization(&self, claims: &str) -> String {
        format!(
            "vapid t={}, k={}",
            self.jwt(claims),
            self.public_key_base64()
        )
    }

    /// An ES256 JWT (RFC 7515 compact form) of `claims`.
    fn jwt(&self, claims: &str) -> String {
        let mut jwt = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims));
        // ES256: ECDSA over SHA-256, the signature as r || s (64 bytes).
        let signature: Signature = self.signing.sign(jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        jwt
    }
}

fn public_bytes(key: &PublicKey) -> [u8; 65] {
    let point = key.to_encoded_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(point.as_bytes());
    out
}

/// Decodes base64url, with or without padding (browsers send it without;
/// some libraries add it).
pub fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Encodes bytes as base64url without padding.
pub fn encode_base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    fn b64(s: &str) -> Vec<u8> {
        decode_base64url(s).unwrap()
    }

    /// RFC 8291, appendix A: the example's keys, salt and message give the
    /// example's body, byte for byte.
    #[test]
    fn the_rfc_8291_example_encrypts_to_its_published_body() {
        let ua_public = b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        );
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let as_private = b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let receiver = Receiver::new(&ua_public, &auth).unwrap();
        let ephemeral = SecretKey::from_slice(&as_private).unwrap();
        assert_eq!(
            encode_base64url(&public_bytes(&ephemeral.public_key())),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        let body = encrypt_with(
            &receiver,
            b"When I grow up, I want to be a watermelon",
            &ephemeral,
            &salt,
        );
        assert_eq!(
            encode_base64url(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn fresh_encryptions_differ_and_fit_the_push_limit() {
        let (_, public) = Vapid::generate();
        let receiver = Receiver::new(&public, &[7u8; 16]).unwrap();
        let one = encrypt(&receiver, b"hello");
        let two = encrypt(&receiver, b"hello");
        assert_ne!(one, two, "a fresh salt and key every time");
        assert_eq!(one.len(), HEADER_LEN + 5 + 1 + TAG_LEN);
        let full = encrypt(&receiver, &[b'x'; MAX_PLAINTEXT]);
        assert_eq!(full.len(), 4096);
    }

    #[test]
    fn bad_subscription_keys_are_refused() {
        let (_, public) = Vapid::generate();
        assert_eq!(
            Receiver::new(&public[..64], &[0; 16]).unwrap_err(),
            KeyError::BadPublicKey
        );
        let mut off_curve = public.clone();
        off_curve[64] ^= 1;
        assert_eq!(
            Receiver::new(&off_curve, &[0; 16]).unwrap_err(),
            KeyError::BadPublicKey
        );
        let mut compressed = public.clone();
        compressed[0] = 0x02;
        assert!(Receiver::new(&compressed, &[0; 16]).is_err());
        assert_eq!(
            Receiver::new(&public, &[0; 15]).unwrap_err(),
            KeyError::BadAuthSecret
        );
    }

    #[test]
    fn the_vapid_header_verifies_with_the_public_key() {
        let (private, public) = Vapid::generate();
        let vapid = Vapid::from_private(&private).unwrap();
        assert_eq!(vapid.public_key_base64(), encode_base64url(&public));
        let header = vapid.authorization(r#"{"aud":"https://push.example","exp":1}"#);
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, vapid.public_key_base64());
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let (head, claims) = signed.split_once('.').unwrap();
        assert_eq!(b64(head), br#"{"typ":"JWT","alg":"ES256"}"#);
        assert_eq!(b64(claims), br#"{"aud":"https://push.example","exp":1}"#);
        let key = VerifyingKey::from_sec1_bytes(&public).unwrap();
        let sig = Signature::from_slice(&b64(sig)).unwrap();
        key.verify(signed.as_bytes(), &sig).unwrap();
        assert!(key.verify(b"something else", &sig).is_err());
    }
}
