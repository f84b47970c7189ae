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

/// Browsers send `Origin` on WebSocket upgrades, and a WebSocket is not
/// bound by CORS: without this check any page a user visits could open
/// sockets to the server from the user's browser and address (to flood it,
/// or to reach a server only the user's network can see). Pages of this server (its
/// `Host`, or `public_url` behind a proxy that rewrites it) and the origins
/// in `http.cors_origins` may connect, whether or not the list is empty;
/// native clients send no `Origin` and are not affected.
pub fn websocket_allowed<B>(app: &App, req: &Request<B>) -> bool {
    let Some(origin) = req.headers().get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    let same_host = !authority.is_empty() && authority.eq_ignore_ascii_case(host);
    let public = app
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| url_origin(u).eq_ignore_ascii_case(origin));
    same_host || public || cors_origin(app, req).is_some()
}

/// The origin (`scheme://host[:port]`) of an address that may go on with a path.
fn url_origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    url[start..]
        .find('/')
        .map_or(url, |end| &url[..start + end])
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

#[cfg(test)]
mod tests {
    use super::url_origin;

    #[test]
    fn the_origin_of_an_address_drops_its_path() {
        assert_eq!(
            url_origin("https://chat.example.org"),
            "https://chat.example.org"
        );
        assert_eq!(
            url_origin("https://example.org:8443/rim"),
            "https://example.org:8443"
        );
    }
}
