//! A stand-in for a browser's push service, on loopback: the real ones are
//! outside this machine. It records every push request, answers as each
//! subscription's path asks, and plays the browser's part too: it holds
//! each subscription's private key and decrypts what arrives (RFC 8291,
//! written here independently of the server's code), and checks the VAPID
//! signature (RFC 8292) with the server's public key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::common::WAIT;

/// One push request as the service received it.
#[derive(Debug)]
pub struct Received {
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A browser's subscription: the keys it keeps and the JSON it sends.
pub struct Browser {
    pub endpoint: String,
    secret: SecretKey,
    pub public: Vec<u8>,
    pub auth: [u8; 16],
}

impl Browser {
    /// `PushSubscription.toJSON()`.
    pub fn subscription(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(&self.public),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }

    /// Decrypts a push body (RFC 8188 `aes128gcm`, keys by RFC 8291); `None`
    /// when it was not encrypted for this browser.
    pub fn open(&self, body: &[u8]) -> Option<Vec<u8>> {
        assert!(body.len() > 21, "a push body has a header");
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().unwrap());
        assert!(rs >= 18, "record size {rs}");
        let id_len = body[20] as usize;
        assert_eq!(id_len, 65, "the key id is the sender's public key");
        let sender_public = &body[21..21 + id_len];
        let ciphertext = &body[21 + id_len..];
        assert!(
            ciphertext.len() <= rs as usize,
            "one record: {} bytes over a record size of {rs}",
            ciphertext.len()
        );
        let sender = PublicKey::from_sec1_bytes(sender_public).expect("sender key on the curve");
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public);
        info.extend_from_slice(sender_public);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .unwrap();
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let Ok(mut plain) = Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(Nonce::from_slice(&nonce), ciphertext)
        else {
            return None;
        };
        // Padding: zeros after the delimiter, which is 2 in the last record.
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "the last record's delimiter");
        Some(plain)
    }

    /// [`Browser::open`], and the JSON inside.
    pub fn decrypt(&self, body: &[u8]) -> Value {
        let plain = self
            .open(body)
            .expect("the push decrypts with the subscription's keys");
        serde_json::from_slice(&plain).expect("the payload is JSON")
    }
}

/// The stand-in service.
pub struct PushService {
    pub addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    /// Answers given so far, per path.
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// How the service answers a path: `/gone/...` with 410, `/flaky/...` with
/// 503 the first time and 201 after, `/limited/...` with 429 and
/// `Retry-After: 1` the first time, anything else with 201.
fn answer_for(path: &str, nth: usize) -> (u16, Option<&'static str>) {
    if path.starts_with("/gone/") {
        (410, None)
    } else if path.starts_with("/flaky/") && nth == 0 {
        (503, None)
    } else if path.starts_with("/limited/") && nth == 0 {
        (429, Some("1"))
    } else {
        (201, None)
    }
}

impl PushService {
    pub async fn start() -> PushService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let state = counts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let counts = state.clone();
                let served = served.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    let counts = counts.clone();
                    let served = served.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await?.to_bytes().to_vec();
                        let nth = {
                            let mut counts = counts.lock().unwrap();
                            let n = counts.entry(path.clone()).or_default();
                            *n += 1;
                            *n - 1
                        };
                        served.fetch_add(1, Ordering::Relaxed);
                        let (status, retry_after) = answer_for(&path, nth);
                        let _ = tx.send(Received {
                            path,
                            headers,
                            body,
                        });
                        let mut resp = Response::builder().status(status);
                        if let Some(after) = retry_after {
                            resp = resp.header("retry-after", after);
                        }
                        Ok::<_, hyper::Error>(resp.body(Full::new(Bytes::new())).unwrap())
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        PushService {
            addr,
            received,
            counts,
        }
    }

    /// A new browser subscribed at `path` of this service.
    pub fn browser(&self, path: &str) -> Browser {
        let secret = SecretKey::random(&mut OsRng);
        let public = secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let mut auth = [0u8; 16];
        OsRng.fill_bytes(&mut auth);
        Browser {
            endpoint: format!("http://{}{path}", self.addr),
            secret,
            public,
            auth,
        }
    }

    /// The next push request (fails the test after a wait).
    pub async fn next(&mut self) -> Received {
        // Retries back off for a second or more.
        tokio::time::timeout(WAIT + Duration::from_secs(5), self.received.recv())
            .await
            .expect("a push in time")
            .expect("service running")
    }

    /// Requests answered at `path` so far.
    pub fn answered(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Checks a request's VAPID header (RFC 8292) against the server's
    /// public key: an ES256 JWT whose audience is this service's origin,
    /// valid for at most 24 hours, with the operator's contact; returns
    /// its claims.
    pub fn verify_vapid(&self, req: &Received, server_key: &str) -> Value {
        let auth = req.header("authorization");
        let rest = auth
            .strip_prefix("vapid t=")
            .unwrap_or_else(|| panic!("a vapid Authorization header, got {auth:?}"));
        let (jwt, k) = rest.split_once(", k=").expect("t= and k=");
        assert_eq!(k, server_key, "k is the server's public key");
        let (signed, signature) = jwt.rsplit_once('.').expect("a signed JWT");
        let (head, claims) = signed.split_once('.').expect("header.claims");
        let head: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap();
        assert_eq!(head["alg"], "ES256");
        let key = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(server_key).unwrap())
            .expect("the server key is a P-256 point");
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap())
            .expect("a 64-byte ES256 signature");
        key.verify(signed.as_bytes(), &signature)
            .expect("the JWT is signed by the server's key");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], format!("http://{}", self.addr));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let exp = claims["exp"].as_i64().expect("exp");
        assert!(
            exp > now && exp <= now + 24 * 3600,
            "exp {exp} within 24 h of {now}"
        );
        claims
    }
}
