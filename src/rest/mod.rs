//! REST under `/api/...`: the route table, and turning every outcome into
//! rim's JSON wrapper with a real HTTP status.
//!
//! [`ROUTES`] is the one place a route is declared: one row of method,
//! path, who may call it, how its body is read, and its handler. Everything
//! else is derived from it: dispatch, the 405 answers and their `Allow`
//! header, the route labels of the request counters, and the list the
//! OpenAPI drift test compares with `openapi.json`. A path may end in a
//! parameter (`/api/file/{id}`), which the handler gets as `ctx.param`.
//!
//! The caller's identity comes only from the `Authorization` token;
//! handlers get it as `ctx.uid` and ignore any uid in bodies or queries.
//! Every answer is the JSON wrapper except the bytes of a file, which
//! stream out of the database ([`Body`] is either); an upload streams in
//! instead of being read whole like other bodies.

mod bots;
mod ctx;
mod download;
mod file_body;
mod friends;
mod groups;
mod invites;
mod messages;
mod profile;
mod push;
mod respond;
mod upload;
mod users;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Instant;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::error::{Error, Result};

pub use ctx::Ctx;
pub use respond::{Body, Reply, error_response, harden, json_response};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Needs `Authorization: Bearer <token>`; the handler gets `ctx.uid`.
    Token,
    /// Anyone (the handler may check credentials of its own, as
    /// `/api/user/token` checks the token in its query string).
    Public,
}

/// How a route's request body reaches its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Read whole first, up to `limits.max_body_bytes` (413 beyond).
    Read,
    /// Left unread for the handler to stream (`ctx.take_stream()`).
    Stream,
}

type Pending = Pin<Box<dyn Future<Output = Result<Reply>> + Send>>;
type Handler = fn(Ctx) -> Pending;

/// One REST route.
pub struct Route {
    pub method: Method,
    /// The path as documented; a last segment `{name}` is a parameter.
    pub path: &'static str,
    pub auth: Auth,
    pub input: Input,
    handler: Handler,
}

/// A row of [`ROUTES`]: `route!(METHOD "/path", Auth, Input, module::handler)`,
/// where the handler is an `async fn(Ctx) -> Result<T>` with `T` a
/// [`Reply`] or the JSON wrapper's bytes.
macro_rules! route {
    ($method:ident $path:literal, $auth:ident, $input:ident, $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            auth: Auth::$auth,
            input: Input::$input,
            handler: {
                fn handler(ctx: Ctx) -> Pending {
                    Box::pin(async move { $handler(ctx).await.map(Reply::from) })
                }
                handler
            },
        }
    };
}

/// Every REST route.
pub static ROUTES: &[Route] = &[
    route!(POST "/api/user/create", Public, Read, users::create),
    route!(POST "/api/user/login", Public, Read, users::login),
    route!(POST "/api/user/logout", Token, Read, users::logout),
    // Authenticated by the token in its query string.
    route!(GET "/api/user/token", Public, Read, users::by_token),
    route!(GET "/api/user/get", Token, Read, users::get),
    route!(GET "/api/user/me", Token, Read, users::me),
    route!(GET "/api/server/info", Public, Read, users::server_info),
    route!(GET "/api/user/search", Token, Read, users::search),
    route!(POST "/api/user/update", Token, Read, profile::update),
    // The body is the picture itself, streamed like a file.
    route!(POST "/api/user/avatar", Token, Stream, upload::avatar),
    route!(POST "/api/user/password", Token, Read, profile::password),
    route!(GET "/api/user/sessions", Token, Read, profile::sessions),
    route!(POST "/api/user/sessions/revoke", Token, Read, profile::revoke),
    route!(POST "/api/group/create", Token, Read, groups::create),
    route!(POST "/api/group/update", Token, Read, groups::update),
    route!(GET "/api/group/get", Token, Read, groups::list),
    route!(GET "/api/group/user/get", Token, Read, groups::members),
    route!(POST "/api/group/user/change", Token, Read, groups::change_members),
    route!(POST "/api/group/direct", Token, Read, groups::direct),
    route!(POST "/api/group/leave", Token, Read, groups::leave),
    route!(POST "/api/message/chat/list", Token, Read, messages::chat_list),
    route!(POST "/api/message/history", Token, Read, messages::history),
    route!(POST "/api/message/group/read", Token, Read, messages::group_read),
    route!(GET "/api/message/search", Token, Read, messages::search),
    route!(POST "/api/friend/add", Token, Read, friends::add),
    route!(GET "/api/friend/list", Token, Read, friends::list),
    route!(POST "/api/friend/status/modify", Token, Read, friends::modify),
    route!(POST "/api/invite/create", Token, Read, invites::create),
    route!(GET "/api/push/key", Public, Read, push::key),
    // Authenticated by the bot key in its path.
    route!(POST "/api/bot/{key}/message", Public, Read, bots::message),
    route!(POST "/api/push/subscribe", Token, Read, push::subscribe),
    route!(POST "/api/push/unsubscribe", Token, Read, push::unsubscribe),
    route!(POST "/api/group/notify", Token, Read, push::notify_level),
    // This API's own description, answered raw rather than in the wrapper.
    route!(GET "/api/openapi.json", Public, Read, openapi),
    // The body is the file itself, streamed rather than read whole.
    route!(POST "/api/file", Token, Stream, upload::upload),
    route!(GET "/api/file/{id}", Token, Read, download::download),
];

/// The OpenAPI document of the routes above, embedded at build time.
/// Longest a request waits for its user's socket frames that the server has
/// read and not yet committed (see [`Hub::settled`](crate::hub::Hub::settled)):
/// a commit takes a few milliseconds, so this is only reached when the
/// writer is badly behind, and then the request goes ahead anyway.
const OWN_FRAMES_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

const OPENAPI: &[u8] = include_bytes!("../../openapi.json");

async fn openapi(_: Ctx) -> Result<Vec<u8>> {
    Ok(OPENAPI.to_vec())
}

impl Route {
    /// The parameter of `path` if this route's path matches it (empty for
    /// a route without one).
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self.path.split_once('{') {
            None => (self.path == path).then_some(""),
            Some((prefix, _)) => path.strip_prefix(prefix),
        }
    }
}

/// The (method, path) pairs the router serves, for documentation checks,
/// with parameters as documented (`/api/file/{id}`).
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().map(|r| (r.method.as_str(), r.path))
}

/// The paths served without a bearer token.
pub fn public_paths() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .filter(|r| r.auth == Auth::Public)
        .map(|r| r.path)
}

/// Every distinct route path, as [`route_label`] names them.
pub fn route_labels() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|r| r.path)
}

/// The route a request path belongs to, as [`routes`] names it: the
/// documented path of the route that matches it, or the path itself when
/// none does. For bounded metric labels.
pub fn route_label(path: &str) -> &str {
    ROUTES
        .iter()
        .find(|r| r.matches(path).is_some())
        .map_or(path, |r| r.path)
}

/// The routes a path matches (one per method), and its parameter.
fn candidates(path: &str) -> (Vec<&'static Route>, &str) {
    let mut param = "";
    let found = ROUTES
        .iter()
        .filter(|r| match r.matches(path) {
            Some(p) => {
                param = p;
                true
            }
            None => false,
        })
        .collect();
    (found, param)
}

/// Answers one `/api/...` request.
pub async fn handle(app: &App, req: Request<Incoming>, ip: IpAddr) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match dispatch(app, req, ip).await {
        Ok(Reply::Json(body)) => json_response(StatusCode::OK, body).map(Either::Left),
        Ok(Reply::Raw(resp)) => resp,
        Err(err) => {
            let mut resp = error_response(&err);
            if let Error::MethodNotAllowed(_) = err {
                // RFC 9110: a 405 names the methods the path does support.
                let allowed: Vec<_> = candidates(&path)
                    .0
                    .iter()
                    .map(|r| r.method.as_str())
                    .collect();
                if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, allow);
                }
            }
            resp.map(Either::Left)
        }
    }
}

async fn dispatch(app: &App, req: Request<Incoming>, ip: IpAddr) -> Result<Reply> {
    // Called as soon as the headers are in: the body's time starts now.
    let received = Instant::now();
    let path = req.uri().path();
    let (candidates, param) = candidates(path);
    if candidates.is_empty() {
        return Err(Error::not_found(format!("no such route: {path}")));
    }
    let Some(route) = candidates.iter().find(|r| r.method == req.method()) else {
        let allowed: Vec<_> = candidates.iter().map(|r| r.method.as_str()).collect();
        return Err(Error::MethodNotAllowed(format!(
            "{} is not supported on {path}; use {}",
            req.method(),
            allowed.join(", ")
        )));
    };
    let param = param.to_owned();
    let query = ctx::parse_query(req.uri().query().unwrap_or(""));
    let (parts, body) = req.into_parts();
    let token = ctx::bearer_token(&parts.headers).unwrap_or_default();
    let caller = match route.auth {
        Auth::Token => {
            let session = app.authenticate(&token).await?;
            (session.uid, session.id)
        }
        Auth::Public => (0, 0),
    };
    let ctx =
        Ctx::new(app.clone(), caller, token, ip, param, parts.headers, query).received_at(received);
    let ctx = match route.input {
        Input::Read => {
            let deadline = received + app.config.body_timeout;
            let limit = app.config.max_body_bytes;
            let body = ctx::read_body(&ctx.headers, body, limit, deadline).await?;
            ctx.with_body(body)
        }
        Input::Stream => ctx.with_stream(body),
    };
    if ctx.uid != 0 {
        // What this user sent on a socket just before (a Read, then this
        // chat list) is committed first, so they see their own writes.
        app.hub.settled(ctx.uid, OWN_FRAMES_WAIT).await;
    }
    (route.handler)(ctx).await
}
