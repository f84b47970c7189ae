//! Turning outcomes into HTTP answers: the JSON wrapper with its headers,
//! errors with their status, and the body type of every REST answer.

use http_body_util::{Either, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::file_body::FileBody;
use crate::error::Error;
use crate::protocol;

/// A response body: the JSON wrapper (or another small answer), or a file
/// streamed from the database.
pub type Body = Either<Full<Bytes>, FileBody>;

/// What a handler answers: the JSON wrapper's bytes, or a whole response.
pub enum Reply {
    Json(Vec<u8>),
    Raw(Response<Body>),
}

impl From<Vec<u8>> for Reply {
    fn from(json: Vec<u8>) -> Reply {
        Reply::Json(json)
    }
}

impl From<Response<Body>> for Reply {
    fn from(resp: Response<Body>) -> Reply {
        Reply::Raw(resp)
    }
}

/// The headers every answer of rim's carries, whatever it holds: never
/// sniffed for another type, never framed, never telling other sites where
/// the reader came from, never read by another origin.
pub fn harden(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    harden(h);
    resp
}

pub fn error_response(err: &Error) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(status, protocol::failure(err));
    if let Error::Unauthorized(_) = err {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(secs) = err.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
