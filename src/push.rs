//! Web Push: telling members' browsers and phones about new messages while
//! no rim tab of theirs is in the foreground, through their push services.
//!
//! [`Pusher`] is the handle `app` holds. A committed message is handed to
//! it on the database's publisher thread with `try_send` into a bounded
//! queue: when the queue is full the push is dropped and counted, so a slow
//! or unreachable push service never delays a message. [`run`], the sender
//! task, takes each message in turn, finds the subscriptions of the members
//! whose level lets it through (`store::push::targets`), leaves out the
//! devices that were connected and in the foreground when it was committed
//! (`hub`), and sends each push in a task of its own, at most [`MAX_SENDING`] at once: encrypted for
//! that subscription (RFC 8291), signed with the server's VAPID key
//! (RFC 8292), 10 seconds at most per attempt, retried with backoff on 429
//! and 5xx up to [`ATTEMPTS`] times; a subscription the service says is
//! gone (404, 410) is removed.
//!
//! Requests go only to the hosts of `push.allowed_hosts`, checked when a
//! subscription is stored (`validate::push_endpoint`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::metrics::{Metrics, PushResult};
use crate::protocol;
use crate::store::{Db, Kind, Message, Subscription};
use crate::webpush::{self, Receiver, Vapid};

/// Pushes being sent at once; further ones wait (and the queue fills).
pub const MAX_SENDING: usize = 32;

/// Tries of one push: the first and two retries.
pub const ATTEMPTS: u32 = 3;

/// The limit on one attempt, connecting and answering included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a VAPID signature is valid (RFC 8292 allows at most 24 hours).
const JWT_LIFETIME_SECS: i64 = 12 * 3600;

/// Characters of a message shown in its notification.
const PREVIEW_CHARS: usize = 200;

/// A stored message to push.
struct Job {
    gid: u64,
    msg_id: u64,
    sender: u64,
    kind: Kind,
    content: String,
    /// Who the message mentions, for members whose level is `mentions`.
    mentions: Vec<u64>,
    /// Sessions in the foreground when the message was committed: they show
    /// it themselves.
    visible: Vec<i64>,
}

/// The handle to the sender task. Clone freely.
#[derive(Clone)]
pub struct Pusher {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Job>,
    /// Taken once, by [`run`].
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
    sender: Sender,
    enabled: bool,
    show_content: bool,
    metrics: Arc<Metrics>,
}

impl Pusher {
    pub fn new(vapid: Vapid, config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Pusher> {
        let (tx, rx) = mpsc::channel(config.push.queue);
        Ok(Pusher {
            inner: Arc::new(Inner {
                tx,
                rx: Mutex::new(Some(rx)),
                sender: Sender::new(vapid, config)?,
                enabled: config.push.enabled,
                show_content: config.push.show_content,
                metrics,
            }),
        })
    }

    /// The VAPID public key, for `GET /api/push/key`.
    pub fn public_key(&self) -> String {
        self.inner.sender.vapid.public_key_base64()
    }

    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Queues the pushes of a committed message, except to the sessions in
    /// `visible`. Never waits: called on the database's publisher thread,
    /// which must not be held up.
    pub fn message(&self, m: &Message, visible: Vec<i64>) {
        if !self.inner.enabled {
            return;
        }
        let job = Job {
            gid: m.gid,
            msg_id: m.id,
            sender: m.uid,
            kind: m.kind,
            content: m.content.clone(),
            mentions: m.mentions.clone(),
            visible,
        };
        if self.inner.tx.try_send(job).is_err() {
            self.inner.metrics.record_push(PushResult::Dropped);
        }
    }

    /// The sender, for `rim push test`.
    pub fn sender(&self) -> &Sender {
        &self.inner.sender
    }
}

/// The sender task: runs until `stop` turns true, then abandons the pushes
/// still being sent.
pub async fn run(pusher: Pusher, db: Db, mut stop: watch::Receiver<bool>) {
    let Some(mut rx) = pusher.inner.rx.lock().ok().and_then(|mut rx| rx.take()) else {
        return;
    };
    let slots = Arc::new(Semaphore::new(MAX_SENDING));
    let mut sending = JoinSet::new();
    loop {
        let mut job = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        // Finished sends are reaped here, so the set holds only live ones.
        while sending.try_join_next().is_some() {}
        let mentions = std::mem::take(&mut job.mentions);
        let mentioned = move |uid: u64| mentions.contains(&uid);
        let targets = match db.push_targets(job.gid, job.sender, mentioned).await {
            Ok(targets) => targets,
            Err(e) => {
                crate::log_warn!("push: cannot read the subscriptions", error = e);
                continue;
            }
        };
        // A device that was connected and in the foreground when the message
        // was committed has shown it already.
        let subscriptions: Vec<Subscription> = targets
            .subscriptions
            .into_iter()
            .filter(|s| !job.visible.contains(&s.session))
            .collect();
        if subscriptions.is_empty() {
            continue;
        }
        let title = match &targets.group {
            Some(group) => format!("{} · {group}", targets.sender),
            None => targets.sender.clone(),
        };
        let body = if pusher.inner.show_content {
            preview(job.kind, &job.content)
        } else {
            "New message".to_owned()
        };
        let payload = Bytes::from(protocol::push_payload(job.gid, job.msg_id, &title, &body));
        let topic = format!("rim-g{}", job.gid);
        for sub in subscriptions {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let pusher = pusher.clone();
            let db = db.clone();
            let payload = payload.clone();
            let topic = topic.clone();
            sending.spawn(async move {
                let outcome = pusher.inner.sender.send(&sub, &payload, &topic).await;
                // Counted first: whoever sees the subscription gone sees it counted.
                pusher.inner.metrics.record_push(outcome.result);
                if outcome.result == PushResult::Gone
                    && let Err(e) = db.remove_push_subscription(sub.id).await
                {
                    crate::log_warn!("push: cannot remove a subscription", error = e);
                }
                drop(permit);
            });
        }
    }
    sending.abort_all();
}

/// What a notification says of a message: the text, cut to about
/// [`PREVIEW_CHARS`] characters; the name of an image or a file.
fn preview(kind: Kind, content: &str) -> String {
    let text = match kind {
        Kind::Text | Kind::RichText => content.to_owned(),
        Kind::Image | Kind::File => protocol::parse_attachment(kind, content)
            .ok()
            .and_then(|a| a.name)
            .unwrap_or_default(),
    };
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

type Https = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Sends pushes: the HTTPS client, the VAPID key and the request settings.
pub struct Sender {
    client: Https,
    vapid: Vapid,
    contact: Option<String>,
    ttl_secs: u64,
}

/// How one push ended, and what the push service said last.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: PushResult,
    /// The last HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// The start of the last answer's body, or the error.
    pub detail: String,
}

impl Sender {
    pub fn new(vapid: Vapid, config: &Config) -> anyhow::Result<Sender> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(ATTEMPT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(Sender {
            client,
            vapid,
            contact: config.push_contact().map(str::to_owned),
            ttl_secs: config.push.ttl.as_secs(),
        })
    }

    /// Sends `payload` to one subscription, retrying on 429 and 5xx.
    pub async fn send(&self, sub: &Subscription, payload: &[u8], topic: &str) -> Outcome {
        let receiver = match Receiver::new(&sub.p256dh, &sub.auth) {
            Ok(r) => r,
            Err(_) => {
                return Outcome {
                    result: PushResult::Rejected,
                    status: None,
                    detail: "the subscription's keys are not usable".into(),
                };
            }
        };
        let mut backoff = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            let body = Bytes::from(webpush::encrypt(&receiver, payload));
            let (outcome, retry_after) = self.attempt(&sub.endpoint, body, topic).await;
            let retry = outcome.result == PushResult::Failed && attempt < ATTEMPTS;
            if !retry {
                return outcome;
            }
            tokio::time::sleep(retry_after.unwrap_or(backoff).min(Duration::from_secs(60))).await;
            backoff *= 4;
            attempt += 1;
        }
    }

    /// One request; a `Retry-After` the service asked for.
    async fn attempt(
        &self,
        endpoint: &str,
        body: Bytes,
        topic: &str,
    ) -> (Outcome, Option<Duration>) {
        let failed = |detail: String| Outcome {
            result: PushResult::Failed,
            status: None,
            detail,
        };
        let Some(audience) = origin(endpoint) else {
            return (
                Outcome {
                    result: PushResult::Rejected,
                    status: None,
                    detail: "the endpoint is not a URL".into(),
                },
                None,
            );
        };
        let exp = crate::time::now_ms() / 1000 + JWT_LIFETIME_SECS;
        let claims = protocol::vapid_claims(audience, exp, self.contact.as_deref());
        let request = Request::post(endpoint)
            .header("authorization", self.vapid.authorization(&claims))
            .header("ttl", self.ttl_secs.to_string())
            .header("urgency", "high")
            .header("topic", topic)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .body(Full::new(body));
        let request = match request {
            Ok(r) => r,
            Err(e) => return (failed(format!("cannot build the request: {e}")), None),
        };
        let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
            let resp = self.client.request(request).await?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // The answer's first bytes are enough to say what went wrong.
            let body = http_body_util::Limited::new(resp.into_body(), 4096)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body))
        })
        .await;
        match answer {
            Err(_) => (failed("no answer within 10 seconds".into()), None),
            Ok(Err(e)) => (failed(format!("cannot reach the push service: {e}")), None),
            Ok(Ok((status, retry_after, body))) => {
                let result = classify(status);
                let detail = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                let outcome = Outcome {
                    result,
                    status: Some(status.as_u16()),
                    detail,
                };
                (outcome, retry_after)
            }
        }
    }
}

/// What an answer of the push service means.
fn classify(status: StatusCode) -> PushResult {
    match status.as_u16() {
        200..=299 => PushResult::Sent,
        404 | 410 => PushResult::Gone,
        429 | 500..=599 => PushResult::Failed,
        _ => PushResult::Rejected,
    }
}

/// `scheme://host[:port]` of a URL: the VAPID audience.
fn origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    (end > scheme_end).then(|| &url[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_is_the_endpoints_origin() {
        assert_eq!(
            origin("https://fcm.googleapis.com/fcm/send/abc"),
            Some("https://fcm.googleapis.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:4000/p/1?x"),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(origin("https://"), None);
        assert_eq!(origin("nothing"), None);
    }

    #[test]
    fn previews_are_cut_and_files_show_their_names() {
        assert_eq!(preview(Kind::Text, "hi"), "hi");
        let long = "长".repeat(300);
        let cut = preview(Kind::Text, &long);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(
            preview(Kind::File, r#"{"fileId":3,"name":"plan.pdf"}"#),
            "plan.pdf"
        );
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(StatusCode::CREATED), PushResult::Sent);
        assert_eq!(classify(StatusCode::GONE), PushResult::Gone);
        assert_eq!(classify(StatusCode::NOT_FOUND), PushResult::Gone);
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS), PushResult::Failed);
        assert_eq!(classify(StatusCode::BAD_GATEWAY), PushResult::Failed);
        assert_eq!(classify(StatusCode::FORBIDDEN), PushResult::Rejected);
    }
}
