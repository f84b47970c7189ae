//! What a REST handler gets: [`Ctx`], the caller and the decoded request,
//! and the small parsers it is made with (query strings, bearer tokens,
//! bodies, paging).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap};
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::{Error, Result};
use crate::protocol;

/// One request, as its handler sees it.
pub struct Ctx {
    pub app: App,
    /// The authenticated caller (0 on public routes).
    pub uid: u64,
    /// The caller's session (0 on public routes).
    pub session: i64,
    /// The bearer token as sent, for logout.
    pub token: String,
    /// The client's address, for per-address limits.
    pub ip: IpAddr,
    /// The last segment of a parameter route (`{id}` of `/api/file/{id}`).
    pub param: String,
    pub headers: HeaderMap,
    /// When the request's headers had arrived: its body's time counts from here.
    pub received: Instant,
    query: HashMap<String, String>,
    /// The body, read whole, on routes that read it so.
    body: Bytes,
    /// The body still unread, on routes that stream it.
    stream: Option<Incoming>,
}

impl Ctx {
    pub(super) fn new(
        app: App,
        (uid, session): (u64, i64),
        token: String,
        ip: IpAddr,
        param: String,
        headers: HeaderMap,
        query: HashMap<String, String>,
    ) -> Ctx {
        Ctx {
            app,
            uid,
            session,
            token,
            ip,
            param,
            headers,
            received: Instant::now(),
            query,
            body: Bytes::new(),
            stream: None,
        }
    }

    /// Counts the body's time from `at` rather than from now.
    pub(super) fn received_at(mut self, at: Instant) -> Ctx {
        self.received = at;
        self
    }

    pub(super) fn with_body(mut self, body: Bytes) -> Ctx {
        self.body = body;
        self
    }

    pub(super) fn with_stream(mut self, stream: Incoming) -> Ctx {
        self.stream = Some(stream);
        self
    }

    /// Decodes the JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        protocol::decode(&self.body)
    }

    /// The body as read, for routes that take more than JSON.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The unread body of a streaming route (once).
    pub fn take_stream(&mut self) -> Result<Incoming> {
        self.stream
            .take()
            .ok_or_else(|| Error::Internal("this route does not stream its body".into()))
    }

    /// An optional query parameter.
    pub fn query_opt(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A required query parameter.
    pub fn query(&self, name: &str) -> Result<&str> {
        self.query_opt(name)
            .ok_or_else(|| Error::bad_request(format!("missing query parameter {name:?}")))
    }

    /// A required numeric query parameter.
    pub fn query_u64(&self, name: &str) -> Result<u64> {
        let raw = self.query(name)?;
        raw.parse().map_err(|_| {
            Error::bad_request(format!(
                "query parameter {name:?} must be a non-negative integer, got {raw:?}"
            ))
        })
    }

    /// An optional numeric query parameter.
    pub fn query_opt_u64(&self, name: &str) -> Result<Option<u64>> {
        match self.query.contains_key(name) {
            false => Ok(None),
            true => self.query_u64(name).map(Some),
        }
    }
}

/// The token of `Authorization: Bearer <token>`. Like rim, the scheme word is
/// not checked: the token is the last word of the header.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.split_whitespace().last().map(str::to_owned)
}

/// Reads a body whole, up to `limit` bytes (413 beyond), by `deadline`
/// (408 past it: a body that trickles or stalls holds a connection only
/// that long).
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes> {
    let too_large = || Error::TooLarge(format!("the request body is larger than {limit} bytes"));
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::bad_request("invalid Content-Length"))?;
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let read = Limited::new(body, limit).collect();
    let Ok(read) = tokio::time::timeout_at(deadline.into(), read).await else {
        return Err(body_too_slow());
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(Error::bad_request("the request body could not be read")),
    }
}

/// The 408 for a body that did not arrive in time.
pub(super) fn body_too_slow() -> Error {
    Error::Timeout("the request body did not arrive in time".into())
}

/// Splits `a=1&b=x%20y` into a map, decoding percent escapes and `+`.
pub(super) fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let q = parse_query("account=a%20b&x=1+2&bad=%zz&tail=%4");
        assert_eq!(q["account"], "a b");
        assert_eq!(q["x"], "1 2");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["tail"], "%4");
    }
}
