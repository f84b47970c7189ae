//! Which web pages may use the API and the WebSocket: CORS for `/api`
//! (`http.cors_origins`) and the `Origin` check of WebSocket upgrades.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, HOST, HeaderValue, ORIGIN, VARY,
};
use hyper::{Request, Response, StatusCode};

use crate::app::App;
use crate::error::Error;
use crate::rest;

/// The request's `Origin` if it is one of `http.cors_origins`.
pub fn cors_origin<B>(app: &App, req: &Request<B>) -> Option<HeaderValue> {
    let origin = req.headers().get(ORIGIN)?;
    let text = origin.to_str().ok()?;
    app.config
        .cors_origins
        .iter()
        .any(|o| o == text)
        .then(|| origin.clone())
}

/// Browsers send `Origin` on WebSocket upgrades. With `http.cors_origins` set,
/// only those origins and pages served by rim itself may connect; native
/// clients send no `Origin` and are not affected.
pub fn websocket_allowed<B>(app: &App, req: &Request<B>) -> bool {
    if app.config.cors_origins.is_empty() {
        return true;
    }
    let Some(origin) = req.headers().get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    authority.eq_ignore_ascii_case(host) || cors_origin(app, req).is_some()
}

/// Answers a CORS preflight: allowed origins get the permissions, others 403.
pub fn preflight(origin: Option<HeaderValue>) -> Response<Full<Bytes>> {
    let Some(origin) = origin else {
        return rest::error_response(&Error::forbidden(
            "cross-origin requests from this origin are not allowed",
        ));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.insert(VARY, HeaderValue::from_static("Origin"));
    resp
}
