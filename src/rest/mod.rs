//! REST under `/api/...`: routing, request decoding limits, and turning every
//! outcome into rim's JSON wrapper with a real HTTP status.
//!
//! Routing is a plain table of (method, path, route), and a second one of
//! path prefixes for the routes whose last segment is a parameter
//! (`/api/file/{id}`); a path that exists with another method answers 405,
//! an unknown path 404, both in the wrapper. The caller's identity comes
//! only from the `Authorization` token; handlers get it as `ctx.uid` and
//! ignore any uid in bodies or queries.
//!
//! Every answer is the JSON wrapper except the bytes of a file, which
//! stream out of the database ([`Body`] is either); an upload streams in
//! instead of being read whole like other bodies.

mod files;
mod friends;
mod groups;
mod invites;
mod messages;
mod users;

use std::collections::HashMap;
use std::net::IpAddr;

use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::{Error, Result};
use crate::protocol;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    UserCreate,
    UserLogin,
    UserLogout,
    UserToken,
    UserGet,
    UserMe,
    ServerInfo,
    UserSearch,
    GroupCreate,
    GroupUpdate,
    GroupGet,
    GroupMembers,
    GroupMemberChange,
    GroupDirect,
    ChatList,
    History,
    GroupRead,
    FriendAdd,
    FriendList,
    FriendModify,
    InviteCreate,
    OpenApi,
    MessageSearch,
    FileUpload,
    FileGet,
}

/// Every REST route: method, path, handler, and whether it needs a token.
const ROUTES: &[(Method, &str, Route, bool)] = &[
    (Method::POST, "/api/user/create", Route::UserCreate, false),
    (Method::POST, "/api/user/login", Route::UserLogin, false),
    (Method::POST, "/api/user/logout", Route::UserLogout, true),
    // Authenticated by the token in its query string.
    (Method::GET, "/api/user/token", Route::UserToken, false),
    (Method::GET, "/api/user/get", Route::UserGet, true),
    (Method::GET, "/api/user/me", Route::UserMe, true),
    (Method::GET, "/api/server/info", Route::ServerInfo, false),
    (Method::GET, "/api/user/search", Route::UserSearch, true),
    (Method::POST, "/api/group/create", Route::GroupCreate, true),
    (Method::POST, "/api/group/update", Route::GroupUpdate, true),
    (Method::GET, "/api/group/get", Route::GroupGet, true),
    (
        Method::GET,
        "/api/group/user/get",
        Route::GroupMembers,
        true,
    ),
    (
        Method::POST,
        "/api/group/user/change",
        Route::GroupMemberChange,
        true,
    ),
    (Method::POST, "/api/group/direct", Route::GroupDirect, true),
    (
        Method::POST,
        "/api/message/chat/list",
        Route::ChatList,
        true,
    ),
    (Method::POST, "/api/message/history", Route::History, true),
    (
        Method::POST,
        "/api/message/group/read",
        Route::GroupRead,
        true,
    ),
    (Method::POST, "/api/friend/add", Route::FriendAdd, true),
    (Method::GET, "/api/friend/list", Route::FriendList, true),
    (
        Method::POST,
        "/api/friend/status/modify",
        Route::FriendModify,
        true,
    ),
    (
        Method::POST,
        "/api/invite/create",
        Route::InviteCreate,
        true,
    ),
    // This API's own description (openapi.json at the repository root),
    // answered raw rather than in the wrapper.
    (Method::GET, "/api/openapi.json", Route::OpenApi, false),
    (
        Method::GET,
        "/api/message/search",
        Route::MessageSearch,
        true,
    ),
    // The body is the file itself, streamed rather than read whole.
    (Method::POST, "/api/file", Route::FileUpload, true),
];

/// Routes whose path ends in a parameter: method, prefix, the path as
/// documented, handler, whether it needs a token. The parameter is the rest
/// of the path after the prefix.
const PREFIX_ROUTES: &[(Method, &str, &str, Route, bool)] = &[(
    Method::GET,
    "/api/file/",
    "/api/file/{id}",
    Route::FileGet,
    true,
)];

/// A response body: the JSON wrapper (or another small answer), or a file
/// streamed from the database.
pub type Body = Either<Full<Bytes>, files::FileBody>;

/// The OpenAPI document of the routes above, embedded at build time.
const OPENAPI: &[u8] = include_bytes!("../../openapi.json");

/// The (method, path) pairs the router serves, for documentation checks,
/// with parameters as documented (`/api/file/{id}`).
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.as_str(), *p))
        .chain(PREFIX_ROUTES.iter().map(|(m, _, p, _, _)| (m.as_str(), *p)))
}

/// The paths served without a bearer token.
pub fn public_paths() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .filter(|r| !r.3)
        .map(|r| r.1)
        .chain(PREFIX_ROUTES.iter().filter(|r| !r.4).map(|r| r.2))
}

/// The route a request path belongs to, as [`routes`] names it: the path
/// itself, or the documented form of a parameter route. For bounded metric
/// labels.
pub fn route_label(path: &str) -> &str {
    PREFIX_ROUTES
        .iter()
        .find(|r| path.starts_with(r.1))
        .map_or(path, |r| r.2)
}

/// The routes (method, handler, needs a token) a path matches, and the
/// parameter of a prefix route.
fn candidates(path: &str) -> (Vec<(&'static Method, Route, bool)>, &str) {
    let exact: Vec<_> = ROUTES
        .iter()
        .filter(|r| r.1 == path)
        .map(|r| (&r.0, r.2, r.3))
        .collect();
    if !exact.is_empty() {
        return (exact, "");
    }
    for (_, prefix, ..) in PREFIX_ROUTES {
        if let Some(param) = path.strip_prefix(prefix) {
            let found = PREFIX_ROUTES
                .iter()
                .filter(|r| r.1 == *prefix)
                .map(|r| (&r.0, r.3, r.4))
                .collect();
            return (found, param);
        }
    }
    (Vec::new(), "")
}

/// What a handler gets: the app, the caller, the query and the body.
pub struct Ctx<'a> {
    pub app: &'a App,
    /// The authenticated caller (0 on public routes).
    pub uid: u64,
    /// The bearer token as sent, for logout.
    pub token: String,
    /// The client's address, for per-address limits.
    pub ip: IpAddr,
    query: HashMap<String, String>,
    body: Bytes,
}

impl Ctx<'_> {
    /// Decodes the JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        protocol::decode(&self.body)
    }

    /// A required query parameter.
    pub fn query(&self, name: &str) -> Result<&str> {
        self.query
            .get(name)
            .map(String::as_str)
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

/// What a handler answers: the JSON wrapper's bytes, or a whole response.
enum Answer {
    Json(Vec<u8>),
    Raw(Response<Body>),
}

/// Answers one `/api/...` request.
pub async fn handle(app: &App, req: Request<Incoming>, ip: IpAddr) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match dispatch(app, req, ip).await {
        Ok(Answer::Json(body)) => json_response(StatusCode::OK, body).map(Either::Left),
        Ok(Answer::Raw(resp)) => resp,
        Err(err) => {
            let mut resp = error_response(&err);
            if let Error::MethodNotAllowed(_) = err {
                // RFC 9110: a 405 names the methods the path does support.
                let allowed: Vec<_> = candidates(&path).0.iter().map(|r| r.0.as_str()).collect();
                if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, allow);
                }
            }
            resp.map(Either::Left)
        }
    }
}

async fn dispatch(app: &App, req: Request<Incoming>, ip: IpAddr) -> Result<Answer> {
    let path = req.uri().path();
    let (candidates, param) = candidates(path);
    if candidates.is_empty() {
        return Err(Error::not_found(format!("no such route: {path}")));
    }
    let param = param.to_owned();
    let Some(&(_, route, needs_auth)) = candidates.iter().find(|(m, ..)| *m == req.method()) else {
        let allowed: Vec<_> = candidates.iter().map(|(m, ..)| m.as_str()).collect();
        return Err(Error::MethodNotAllowed(format!(
            "{} is not supported on {path}; use {}",
            req.method(),
            allowed.join(", ")
        )));
    };
    let query = parse_query(req.uri().query().unwrap_or(""));
    let token = bearer_token(&req).unwrap_or_default();
    let uid = if needs_auth {
        app.authenticate(&token).await?.uid
    } else {
        0
    };
    // Files stream: the upload's body is not read whole, and a download
    // answers bytes rather than JSON.
    if route == Route::FileUpload {
        return files::upload(app, uid, &query, req).await.map(Answer::Json);
    }
    let file_headers = (route == Route::FileGet).then(|| req.headers().clone());
    let body = read_body(req, app.config.max_body_bytes).await?;
    if let Some(headers) = file_headers {
        return files::download(app, uid, &param, &query, &headers)
            .await
            .map(Answer::Raw);
    }
    let ctx = Ctx {
        app,
        uid,
        token,
        ip,
        query,
        body,
    };
    let json = match route {
        Route::UserCreate => users::create(ctx).await,
        Route::UserLogin => users::login(ctx).await,
        Route::UserLogout => users::logout(ctx).await,
        Route::UserToken => users::by_token(ctx).await,
        Route::UserGet => users::get(ctx).await,
        Route::UserMe => users::me(ctx).await,
        Route::ServerInfo => users::server_info(ctx),
        Route::UserSearch => users::search(ctx).await,
        Route::GroupCreate => groups::create(ctx).await,
        Route::GroupUpdate => groups::update(ctx).await,
        Route::GroupGet => groups::list(ctx).await,
        Route::GroupMembers => groups::members(ctx).await,
        Route::GroupMemberChange => groups::change_members(ctx).await,
        Route::GroupDirect => groups::direct(ctx).await,
        Route::ChatList => messages::chat_list(ctx).await,
        Route::History => messages::history(ctx).await,
        Route::GroupRead => messages::group_read(ctx).await,
        Route::FriendAdd => friends::add(ctx).await,
        Route::FriendList => friends::list(ctx).await,
        Route::FriendModify => friends::modify(ctx).await,
        Route::InviteCreate => invites::create(ctx).await,
        Route::OpenApi => Ok(OPENAPI.to_vec()),
        Route::MessageSearch => messages::search(ctx).await,
        Route::FileUpload | Route::FileGet => {
            Err(Error::Internal("file routes are answered above".into()))
        }
    };
    json.map(Answer::Json)
}

/// The token of `Authorization: Bearer <token>`. Like rim, the scheme word is
/// not checked: the token is the last word of the header.
fn bearer_token<B>(req: &Request<B>) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.split_whitespace().last().map(str::to_owned)
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes> {
    let too_large = || Error::TooLarge(format!("the request body is larger than {limit} bytes"));
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::bad_request("invalid Content-Length"))?;
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(Error::bad_request("the request body could not be read")),
    }
}

/// Splits `a=1&b=x%20y` into a map, decoding percent escapes and `+`.
fn parse_query(query: &str) -> HashMap<String, String> {
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

/// Page and size for listing routes: page from 1, size 1 to 100.
pub fn paging(page: Option<i64>, size: Option<i64>) -> Result<(u32, u32)> {
    let page = page.unwrap_or(1);
    let size = size.unwrap_or(20);
    if !(1..=1_000_000).contains(&page) {
        return Err(Error::bad_request(format!(
            "page {page} is out of range: pages start at 1"
        )));
    }
    if !(1..=100).contains(&size) {
        return Err(Error::bad_request(format!(
            "size {size} is out of range: use 1 to 100"
        )));
    }
    Ok((page as u32, size as u32))
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
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

pub fn error_response(err: &Error) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(status, protocol::failure(err));
    if let Error::Unauthorized(_) = err {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
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

    #[test]
    fn paging_is_bounded() {
        assert_eq!(paging(None, None).unwrap(), (1, 20));
        assert!(paging(Some(0), None).is_err());
        assert!(paging(Some(-1), None).is_err());
        assert!(paging(None, Some(101)).is_err());
        assert!(paging(None, Some(0)).is_err());
    }
}
