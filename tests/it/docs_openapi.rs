//! `openapi.json` cannot drift from the code.
//!
//! Three checks: the operations it documents are exactly the routes the router
//! serves (plus `/healthz`, which `server` answers outside the REST table);
//! the server hands out the file itself at `GET /api/openapi.json`; and real
//! answers of a real server, success and errors for every operation, validate
//! against the schema documented for that operation and status. A status the
//! document does not list for an operation fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use hyper::Method;
use rim::store::{Kind, NewMessage};
use serde_json::{Value, json};

use crate::common::{RawReply, TestServer, http, send_raw};

/// The document as the repository holds it (and as the binary embeds it).
const DOC: &str = include_str!("../../openapi.json");

/// Answered by `server` itself, not by the REST route table.
const OUTSIDE_REST: &[(&str, &str)] = &[("GET", "/healthz")];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("openapi.json is valid JSON")
}

/// (METHOD, path) of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for (method, _) in item.as_object().expect("path item").iter() {
            assert!(
                HTTP_METHODS.contains(&method.as_str()),
                "{path}: unexpected key {method:?}"
            );
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[test]
fn every_served_route_is_documented_and_nothing_else() {
    let mut served: BTreeSet<(String, String)> = rim::rest::routes()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert!(
        served.len() >= 19,
        "the route table looks empty: {served:?}"
    );
    for (m, p) in OUTSIDE_REST {
        assert!(
            served.insert((m.to_string(), p.to_string())),
            "{m} {p} is in the REST table now"
        );
    }
    let documented = documented(&doc());
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served but not in openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in openapi.json but not served: {extra:?}"
    );
}

/// Follows a local `$ref` (`#/a/b`) to the JSON pointer it names.
fn pointer_of(reference: &str) -> &str {
    reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local refs are allowed: {reference}"))
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Every `$ref` anywhere in the document, with where it appears.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    out.push((at.clone(), child.as_str().expect("$ref is a string")));
                } else {
                    refs(child, format!("{at}/{}", escape(k)), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn document_is_complete_and_consistent() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut all = Vec::new();
    refs(&doc, String::new(), &mut all);
    for (at, reference) in &all {
        assert!(
            doc.pointer(pointer_of(reference)).is_some(),
            "{at}: dangling $ref {reference}"
        );
    }
    let public: BTreeSet<_> = rim::rest::public_paths().chain(["/healthz"]).collect();
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.contains_key("200"), "{method} {path}: no 200");
        let open = op.get("security") == Some(&json!([]));
        assert_eq!(
            open,
            public.contains(path.as_str()),
            "{method} {path}: documented as public or not, wrongly"
        );
        if !open {
            assert!(
                responses.contains_key("401"),
                "{method} {path}: authenticated but no 401"
            );
        }
        if path.starts_with("/api/") {
            // Every REST route reads its body (bounded), whatever its method.
            assert!(responses.contains_key("413"), "{method} {path}: no 413");
            assert!(responses.contains_key("400"), "{method} {path}: no 400");
            // ... under a deadline (`timeouts.body_secs`).
            assert!(responses.contains_key("408"), "{method} {path}: no 408");
        }
        // A connection over `max_connections_per_address` gets a 429,
        // whatever it asks for.
        assert!(responses.contains_key("429"), "{method} {path}: no 429");
        // These answer from memory, without the database.
        if !["/api/openapi.json", "/api/server/info", "/api/push/key"].contains(&path.as_str()) {
            for code in ["500", "503"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path}: uses the database but no {code}"
                );
            }
        }
        if let Some(example) = op.pointer("/requestBody/content/application~1json/example") {
            let schema = op
                .pointer("/requestBody/content/application~1json/schema")
                .unwrap();
            let pointer = format!(
                "/paths/{}/{}/requestBody/content/application~1json/schema",
                escape(&path),
                method.to_lowercase()
            );
            assert!(schema.is_object());
            let validator = validator(&doc, &pointer);
            let errors: Vec<_> = validator
                .iter_errors(example)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path}: the request example breaks its schema: {errors:?}"
            );
        }
    }
    // The wrapper's error codes are exactly the ones `rim::error::Error` has.
    let codes: BTreeSet<u64> =
        doc["components"]["schemas"]["Failure"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
    let errors = [
        rim::error::Error::BadRequest(String::new()),
        rim::error::Error::Unauthorized(String::new()),
        rim::error::Error::Forbidden(String::new()),
        rim::error::Error::NotFound(String::new()),
        rim::error::Error::MethodNotAllowed(String::new()),
        rim::error::Error::Conflict(String::new()),
        rim::error::Error::TooLarge(String::new()),
        rim::error::Error::RangeNotSatisfiable(String::new()),
        rim::error::Error::TooManyRequests {
            message: String::new(),
            retry_after: 1,
        },
        rim::error::Error::Unavailable(String::new()),
        rim::error::Error::Overloaded {
            message: String::new(),
            retry_after: 1,
        },
        rim::error::Error::Full(String::new()),
        rim::error::Error::Internal(String::new()),
    ];
    let from_code: BTreeSet<u64> = errors.iter().map(|e| u64::from(e.code())).collect();
    assert_eq!(codes, from_code);
}

/// A validator for the schema at `pointer` inside the document, so that its
/// `$ref`s to `#/components/...` resolve against the document itself.
fn validator(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    let obj = root.as_object_mut().unwrap();
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    // A URI fragment: the braces of a path parameter are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    obj.insert("$ref".into(), json!(format!("#{fragment}")));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"))
}

/// Validates real answers and remembers which (operation, status) pairs it saw.
struct Checker {
    doc: Value,
    validators: BTreeMap<String, jsonschema::Validator>,
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
    checked: usize,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            doc: doc(),
            validators: BTreeMap::new(),
            seen: BTreeMap::new(),
            checked: 0,
        }
    }

    /// Asserts `status`/`body` is documented for `method path` and matches its schema.
    fn check(&mut self, method: &str, path: &str, status: u16, body: &Value) {
        let path = rim::rest::route_label(path.split('?').next().unwrap());
        let op_pointer = format!("/paths/{}/{}", escape(path), method.to_lowercase());
        let op = self
            .doc
            .pointer(&op_pointer)
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let Some(mut response) = op["responses"].get(status.to_string()) else {
            panic!("{method} {path} answered {status}, which openapi.json does not list: {body}");
        };
        let mut response_pointer = format!("{op_pointer}/responses/{status}");
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            response_pointer = pointer_of(reference).to_owned();
            response = self
                .doc
                .pointer(&response_pointer)
                .expect("response $ref resolves");
        }
        assert!(
            response
                .pointer("/content/application~1json/schema")
                .is_some(),
            "{method} {path} {status}: no application/json schema"
        );
        let schema_pointer = format!("{response_pointer}/content/application~1json/schema");
        let doc = &self.doc;
        let validator = self
            .validators
            .entry(schema_pointer.clone())
            .or_insert_with(|| validator(doc, &schema_pointer));
        let errors: Vec<_> = validator
            .iter_errors(body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: the answer breaks the documented schema {schema_pointer}:\n{errors:#?}\n{body}"
        );
        self.seen
            .entry((method.to_uppercase(), path.to_owned()))
            .or_default()
            .insert(status);
        self.checked += 1;
    }

    /// Asserts that an answer that is not JSON (the bytes of a file) is
    /// documented: its status, and its `Content-Type` among the documented
    /// ones (or no content at all, for a 304).
    fn check_raw(&mut self, method: &str, path: &str, status: u16, content_type: Option<&str>) {
        let path = rim::rest::route_label(path.split('?').next().unwrap());
        let op_pointer = format!("/paths/{}/{}", escape(path), method.to_lowercase());
        let op = self
            .doc
            .pointer(&op_pointer)
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let Some(response) = op["responses"].get(status.to_string()) else {
            panic!("{method} {path} answered {status}, which openapi.json does not list");
        };
        let documented = response.get("content").and_then(Value::as_object);
        match (content_type, documented) {
            (None, None) => {}
            (Some(ct), Some(types)) => assert!(
                types.contains_key(ct) || types.contains_key("*/*"),
                "{method} {path} {status}: Content-Type {ct} is not documented"
            ),
            (ct, types) => {
                panic!("{method} {path} {status}: answered with {ct:?}, documented {types:?}")
            }
        }
        self.seen
            .entry((method.to_uppercase(), path.to_owned()))
            .or_default()
            .insert(status);
        self.checked += 1;
    }
}

/// The test's HTTP client, validating every answer as it goes.
struct Api {
    /// The server talked to.
    addr: SocketAddr,
    checker: Checker,
}

impl Api {
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = http(
            self.addr,
            method.clone(),
            path,
            token,
            body.map(|b| b.to_string()),
        )
        .await;
        self.checker.check(method.as_str(), path, r.status, &r.json);
        (r.status, r.json)
    }

    async fn post(&mut self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Expects `status`; returns `data`.
    async fn expect(
        &mut self,
        status: u16,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (got, json) = self.call(method.clone(), path, token, body).await;
        assert_eq!(got, status, "{method} {path}: {json}");
        json["data"].clone()
    }

    async fn get_is(&mut self, status: u16, path: &str, token: Option<&str>) -> Value {
        self.expect(status, Method::GET, path, token, None).await
    }

    async fn post_is(
        &mut self,
        status: u16,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        self.expect(status, Method::POST, path, token, Some(body))
            .await
    }

    /// A request with a raw body (an upload) and extra headers; the answer is
    /// checked as JSON when it is JSON, else as documented bytes.
    async fn raw(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> RawReply {
        let mut req = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .unwrap();
        let r = send_raw(self.addr, req).await;
        let ct = r
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        if ct.as_deref() == Some("application/json") {
            self.checker
                .check(method.as_str(), path, r.status, &r.json());
        } else {
            self.checker
                .check_raw(method.as_str(), path, r.status, ct.as_deref());
        }
        r
    }

    /// A POST whose body is over `max_body_bytes`.
    async fn too_large(&mut self, method: Method, path: &str, token: Option<&str>) {
        let big = json!({"pad": "x".repeat(70 * 1024)});
        self.expect(413, method, path, token, Some(big)).await;
    }
}

#[tokio::test]
async fn the_server_serves_this_very_document() {
    let srv = TestServer::start().await;
    let r = srv.get("/api/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json,
        doc(),
        "GET /api/openapi.json differs from openapi.json"
    );
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas() {
    // The test configuration turns rate limits off; this test wants the
    // login limit's 429, so it runs with the default one.
    let srv = TestServer::start_with(|c| {
        c.rate_limits.logins_per_account_per_minute =
            rim::config::RateLimits::default().logins_per_account_per_minute;
    })
    .await;
    let mut api = Api {
        addr: srv.addr,
        checker: Checker::new(),
    };
    let user = |account: &str| json!({"account": account, "password": format!("password-{account}"), "name": account.to_uppercase(), "email": format!("{account}@example.org")});
    let login =
        |account: &str| json!({"account": account, "password": format!("password-{account}")});

    // ---- users
    let a = api
        .post_is(200, "/api/user/create", None, user("alice"))
        .await
        .as_u64()
        .unwrap();
    let b = api
        .post_is(200, "/api/user/create", None, user("bob"))
        .await
        .as_u64()
        .unwrap();
    let c = api
        .post_is(200, "/api/user/create", None, user("carol"))
        .await
        .as_u64()
        .unwrap();
    api.post_is(409, "/api/user/create", None, user("alice"))
        .await;
    api.post_is(
        400,
        "/api/user/create",
        None,
        json!({"account": "a", "password": "password-a"}),
    )
    .await;
    api.post_is(400, "/api/user/create", None, json!("not an object"))
        .await;
    api.too_large(Method::POST, "/api/user/create", None).await;
    let ta = api
        .post_is(200, "/api/user/login", None, login("alice"))
        .await;
    let ta = ta.as_str().unwrap().to_owned();
    let tb = api
        .post_is(200, "/api/user/login", None, login("bob"))
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let tc = api
        .post_is(200, "/api/user/login", None, login("carol"))
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let (ta, tb, tc) = (Some(ta.as_str()), Some(tb.as_str()), Some(tc.as_str()));
    api.post_is(
        401,
        "/api/user/login",
        None,
        json!({"account": "alice", "password": "wrong password"}),
    )
    .await;
    api.post_is(400, "/api/user/login", None, json!({"account": "alice"}))
        .await;
    // The per-account login limit (10 a minute by default) answers 429.
    let mut limited = false;
    for _ in 0..12 {
        let (status, _) = api
            .post(
                "/api/user/login",
                None,
                json!({"account": "mallory", "password": "guess-guess"}),
            )
            .await;
        limited |= status == 429;
    }
    assert!(limited, "no 429 after 12 login attempts");

    let token_path = format!("/api/user/token?token={}", ta.unwrap());
    let me = api.get_is(200, &token_path, None).await;
    assert_eq!(me["email"], "alice@example.org");
    api.get_is(401, "/api/user/token?token=nope", None).await;
    api.get_is(400, "/api/user/token", None).await;

    api.get_is(200, &format!("/api/user/get?uid={b}"), ta).await;
    api.get_is(404, "/api/user/get?uid=999", ta).await;
    api.get_is(200, "/api/user/me", ta).await;
    api.get_is(200, "/api/server/info", None).await;
    api.too_large(Method::GET, "/api/server/info", None).await;
    api.get_is(401, "/api/user/me", None).await;
    api.get_is(400, "/api/user/get?uid=x", ta).await;
    api.get_is(400, "/api/user/get?uid=18446744073709551615", ta)
        .await;
    api.get_is(401, &format!("/api/user/get?uid={b}"), None)
        .await;
    api.get_is(200, "/api/user/search?account=bob", ta).await;
    api.get_is(404, "/api/user/search?account=nobody", ta).await;
    api.get_is(400, "/api/user/search", ta).await;
    api.get_is(401, "/api/user/search?account=bob", Some("bad-token"))
        .await;

    // ---- one's own account: carol's, so that the others' tokens stay
    let profile = api
        .post_is(
            200,
            "/api/user/update",
            tc,
            json!({"name": "Carol C.", "hideLastSeen": true}),
        )
        .await;
    assert_eq!(profile["hideLastSeen"], true);
    api.post_is(400, "/api/user/update", tc, json!({"name": "x\u{202e}y"}))
        .await;
    api.post_is(401, "/api/user/update", None, json!({"name": "x"}))
        .await;
    api.too_large(Method::POST, "/api/user/update", tc).await;
    let png = crate::common::png_bytes(4, 4, 0, 1);
    let as_png = [("content-type", "image/png")];
    let r = api
        .raw(Method::POST, "/api/user/avatar", tc, &as_png, png.clone())
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .raw(
            Method::POST,
            "/api/user/avatar",
            tc,
            &[("content-type", "text/plain")],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .raw(Method::POST, "/api/user/avatar", None, &as_png, png)
        .await;
    assert_eq!(r.status, 401);
    let huge = crate::common::png_bytes(4, 4, 3 << 20, 2);
    let r = api
        .raw(Method::POST, "/api/user/avatar", tc, &as_png, huge)
        .await;
    assert_eq!(r.status, 413);
    let spare = api
        .post_is(200, "/api/user/login", None, login("carol"))
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let devices = api.get_is(200, "/api/user/sessions", tc).await;
    api.get_is(401, "/api/user/sessions", None).await;
    let spare_id = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["current"] == false)
        .expect("the spare session")["id"]
        .clone();
    api.post_is(
        200,
        "/api/user/sessions/revoke",
        tc,
        json!({"id": spare_id}),
    )
    .await;
    api.post_is(
        404,
        "/api/user/sessions/revoke",
        tc,
        json!({"id": spare_id}),
    )
    .await;
    api.post_is(
        401,
        "/api/user/sessions/revoke",
        Some(&spare),
        json!({"id": spare_id}),
    )
    .await;
    let change = |old: &str, new: &str| json!({"old": old, "new": new});
    api.post_is(
        403,
        "/api/user/password",
        tc,
        change("wrong-password", "carol-2nd-password"),
    )
    .await;
    api.post_is(
        400,
        "/api/user/password",
        tc,
        change("password-carol", "short"),
    )
    .await;
    api.post_is(
        401,
        "/api/user/password",
        None,
        change("password-carol", "carol-2nd-password"),
    )
    .await;
    let revoked = api
        .post_is(
            200,
            "/api/user/password",
            tc,
            change("password-carol", "carol-2nd-password"),
        )
        .await;
    assert_eq!(revoked, 0, "carol's only other session was revoked above");

    // ---- friends
    api.post_is(200, "/api/friend/add", ta, json!({"fid": b}))
        .await;
    api.post_is(409, "/api/friend/add", ta, json!({"fid": b}))
        .await;
    api.post_is(400, "/api/friend/add", ta, json!({"fid": a}))
        .await;
    api.post_is(404, "/api/friend/add", ta, json!({"fid": 999}))
        .await;
    api.post_is(401, "/api/friend/add", None, json!({"fid": b}))
        .await;
    api.too_large(Method::POST, "/api/friend/add", ta).await;
    let incoming = api.get_is(200, "/api/friend/list?status=0", tb).await;
    assert_eq!(incoming[0]["id"], a);
    api.get_is(400, "/api/friend/list?status=5", tb).await;
    api.get_is(401, "/api/friend/list?status=0", None).await;
    api.post_is(
        200,
        "/api/friend/status/modify",
        tb,
        json!({"fid": a, "status": 1}),
    )
    .await;
    api.post_is(
        409,
        "/api/friend/status/modify",
        tb,
        json!({"fid": a, "status": 1}),
    )
    .await;
    api.post_is(
        404,
        "/api/friend/status/modify",
        tb,
        json!({"fid": 999, "status": 1}),
    )
    .await;
    api.post_is(
        400,
        "/api/friend/status/modify",
        tb,
        json!({"fid": a, "status": 7}),
    )
    .await;
    api.post_is(
        401,
        "/api/friend/status/modify",
        None,
        json!({"fid": a, "status": 1}),
    )
    .await;

    // ---- invites: alice is the first account ever, so an admin
    let invite = api
        .post_is(
            200,
            "/api/invite/create",
            ta,
            json!({"uses": 2, "expiresDays": 1}),
        )
        .await;
    assert!(
        invite["code"].is_string() && invite["link"].is_null(),
        "{invite}"
    );
    api.post_is(403, "/api/invite/create", tb, json!({})).await;
    api.post_is(400, "/api/invite/create", ta, json!({"uses": 0}))
        .await;
    api.post_is(401, "/api/invite/create", None, json!({}))
        .await;
    let friends = api.get_is(200, "/api/friend/list?status=1", ta).await;
    assert_eq!(friends[0]["id"], b);

    // ---- Web Push: the key, a subscription, levels
    let key = api.get_is(200, "/api/push/key", None).await;
    assert!(key["key"].is_string(), "{key}");
    let r = api
        .raw(Method::GET, "/api/push/key", None, &[], vec![b' '; 70_000])
        .await;
    assert_eq!(r.status, 413);
    let subscription = |endpoint: &str| json!({"endpoint": endpoint, "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}});
    let endpoint = "https://fcm.googleapis.com/fcm/send/docs";
    api.post_is(200, "/api/push/subscribe", tb, subscription(endpoint))
        .await;
    api.post_is(
        400,
        "/api/push/subscribe",
        tb,
        subscription("http://10.0.0.1/"),
    )
    .await;
    api.post_is(401, "/api/push/subscribe", None, subscription(endpoint))
        .await;
    let removed = api
        .post_is(
            200,
            "/api/push/unsubscribe",
            tb,
            json!({"endpoint": endpoint}),
        )
        .await;
    assert_eq!(removed, json!(true));
    api.post_is(400, "/api/push/unsubscribe", tb, json!({}))
        .await;
    api.post_is(
        401,
        "/api/push/unsubscribe",
        None,
        json!({"endpoint": endpoint}),
    )
    .await;
    let chat = api
        .post_is(200, "/api/group/direct", ta, json!({"uid": b}))
        .await
        .as_u64()
        .unwrap();
    api.post_is(
        200,
        "/api/group/notify",
        tb,
        json!({"gid": chat, "level": "none"}),
    )
    .await;
    api.post_is(
        400,
        "/api/group/notify",
        tb,
        json!({"gid": chat, "level": "loud"}),
    )
    .await;
    api.post_is(
        403,
        "/api/group/notify",
        tc,
        json!({"gid": chat, "level": "all"}),
    )
    .await;
    api.post_is(
        404,
        "/api/group/notify",
        tb,
        json!({"gid": 999, "level": "all"}),
    )
    .await;
    api.post_is(
        401,
        "/api/group/notify",
        None,
        json!({"gid": chat, "level": "all"}),
    )
    .await;

    // ---- groups
    let direct = api
        .post_is(200, "/api/group/direct", ta, json!({"uid": b}))
        .await
        .as_u64()
        .unwrap();
    api.post_is(403, "/api/group/direct", tc, json!({"uid": a}))
        .await;
    api.post_is(404, "/api/group/direct", ta, json!({"uid": 999}))
        .await;
    api.post_is(400, "/api/group/direct", ta, json!({"uid": a}))
        .await;
    api.post_is(401, "/api/group/direct", None, json!({"uid": b}))
        .await;
    let group = json!({"group": {"name": "club", "avatar": ""}, "users": [{"uid": b, "role": 1}]});
    let gid = api
        .post_is(200, "/api/group/create", ta, group.clone())
        .await
        .as_u64()
        .unwrap();
    api.post_is(
        404,
        "/api/group/create",
        ta,
        json!({"group": {"name": "x"}, "users": [{"uid": 999}]}),
    )
    .await;
    api.post_is(
        400,
        "/api/group/create",
        ta,
        json!({"group": {"name": "x", "mode": 1}}),
    )
    .await;
    api.post_is(401, "/api/group/create", None, group.clone())
        .await;
    api.post_is(
        200,
        "/api/group/update",
        ta,
        json!({"id": gid, "name": "climbing club"}),
    )
    .await;
    api.post_is(
        403,
        "/api/group/update",
        tb,
        json!({"id": gid, "name": "mine now"}),
    )
    .await;
    api.post_is(
        404,
        "/api/group/update",
        ta,
        json!({"id": 999, "name": "x"}),
    )
    .await;
    api.post_is(400, "/api/group/update", ta, json!({"name": "x"}))
        .await;
    api.post_is(401, "/api/group/update", None, json!({"id": gid}))
        .await;
    let groups = api.get_is(200, "/api/group/get", ta).await;
    assert_eq!(groups.as_array().unwrap().len(), 2);
    api.get_is(401, "/api/group/get", None).await;
    let members = api
        .get_is(200, &format!("/api/group/user/get?gid={gid}"), tb)
        .await;
    assert_eq!(members[0]["role"], 2);
    api.get_is(403, &format!("/api/group/user/get?gid={direct}"), tc)
        .await;
    api.get_is(404, "/api/group/user/get?gid=999", ta).await;
    api.get_is(400, "/api/group/user/get", ta).await;
    api.get_is(401, &format!("/api/group/user/get?gid={gid}"), None)
        .await;
    api.post_is(
        200,
        "/api/group/user/change",
        ta,
        json!({"gid": gid, "uids": [c], "opType": 1}),
    )
    .await;
    api.post_is(
        403,
        "/api/group/user/change",
        tb,
        json!({"gid": gid, "uids": [c], "opType": 2}),
    )
    .await;
    api.post_is(
        404,
        "/api/group/user/change",
        ta,
        json!({"gid": 999, "uids": [c], "opType": 1}),
    )
    .await;
    api.post_is(
        400,
        "/api/group/user/change",
        ta,
        json!({"gid": gid, "uids": [c], "opType": 5}),
    )
    .await;
    // Alice is the club's only admin: she cannot stop being one.
    api.post_is(
        409,
        "/api/group/user/change",
        ta,
        json!({"gid": gid, "uids": [a], "opType": 4}),
    )
    .await;
    // Only friends can be put in a group.
    api.post_is(200, "/api/friend/add", tb, json!({"fid": c}))
        .await;
    api.post_is(
        200,
        "/api/friend/status/modify",
        tc,
        json!({"fid": b, "status": 1}),
    )
    .await;
    let brief = json!({"group": {"name": "brief"}, "users": [{"uid": c}]});
    let brief = api
        .post_is(200, "/api/group/create", tb, brief)
        .await
        .as_u64()
        .unwrap();
    api.post_is(200, "/api/group/leave", tc, json!({"gid": brief}))
        .await;
    api.post_is(403, "/api/group/leave", tc, json!({"gid": brief}))
        .await;
    api.post_is(404, "/api/group/leave", tc, json!({"gid": 999}))
        .await;
    api.post_is(400, "/api/group/leave", tb, json!({"gid": direct}))
        .await;
    api.post_is(401, "/api/group/leave", None, json!({"gid": brief}))
        .await;
    api.post_is(
        401,
        "/api/group/user/change",
        None,
        json!({"gid": gid, "uids": [c], "opType": 1}),
    )
    .await;

    // ---- messages: one in each conversation, sent over the WebSocket
    let mut ws = srv.ws_login(ta.unwrap()).await;
    for (g, text) in [(direct, "hi bob"), (gid, "hi club")] {
        let ack = ws.send_msg(g, text, &format!("m-{g}")).await;
        assert_eq!(ack["kind"], "Ack", "{ack}");
    }
    let rows = api
        .post_is(
            200,
            "/api/message/chat/list",
            tb,
            json!({"page": 1, "size": 10}),
        )
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    api.post_is(200, "/api/message/chat/list", tb, json!({}))
        .await;
    api.post_is(400, "/api/message/chat/list", tb, json!({"size": 0}))
        .await;
    api.post_is(401, "/api/message/chat/list", None, json!({}))
        .await;
    let history = api
        .post_is(200, "/api/message/history", tb, json!({"gid": direct}))
        .await;
    assert_eq!(history[0]["msg"]["content"], "hi bob");
    api.post_is(
        200,
        "/api/message/history",
        tb,
        json!({"gid": gid, "beforeId": 1_000}),
    )
    .await;
    api.post_is(403, "/api/message/history", tc, json!({"gid": direct}))
        .await;
    api.post_is(404, "/api/message/history", tb, json!({"gid": 999}))
        .await;
    api.post_is(400, "/api/message/history", tb, json!({}))
        .await;
    api.post_is(401, "/api/message/history", None, json!({"gid": direct}))
        .await;
    api.post_is(200, "/api/message/group/read", tb, json!({"gid": direct}))
        .await;
    api.post_is(403, "/api/message/group/read", tc, json!({"gid": direct}))
        .await;
    api.post_is(404, "/api/message/group/read", tb, json!({"gid": 999}))
        .await;
    api.post_is(400, "/api/message/group/read", tb, json!({"gid": "one"}))
        .await;
    api.post_is(401, "/api/message/group/read", None, json!({"gid": direct}))
        .await;
    api.too_large(Method::POST, "/api/message/group/read", tb)
        .await;

    // ---- search
    let hits = api.get_is(200, "/api/message/search?q=hi+bob", tb).await;
    assert_eq!(hits[0]["snippet"], "«hi» «bob»");
    api.get_is(
        200,
        &format!("/api/message/search?q=club&gid={gid}&page=1&size=5"),
        tb,
    )
    .await;
    api.get_is(400, "/api/message/search", tb).await;
    api.get_is(400, "/api/message/search?q=hi&size=0", tb).await;
    api.get_is(403, &format!("/api/message/search?q=hi&gid={direct}"), tc)
        .await;
    api.get_is(404, "/api/message/search?q=hi&gid=999", tb)
        .await;
    api.get_is(401, "/api/message/search?q=hi", None).await;
    api.too_large(Method::GET, "/api/message/search?q=hi", tb)
        .await;

    // ---- files: upload, send in the direct chat, download
    let upload = |name: &str| format!("/api/file?name={name}");
    let png = crate::common::png_bytes(2, 3, 5000, 1);
    let file = api
        .raw(
            Method::POST,
            &upload("a.png"),
            ta,
            &[("content-type", "image/png")],
            png.clone(),
        )
        .await;
    assert_eq!(file.status, 200);
    let file = file.json()["data"].clone();
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(2), json!(3))
    );
    let fid = file["id"].as_u64().unwrap();
    let r = api
        .raw(
            Method::POST,
            &upload("a.png"),
            ta,
            &[("content-type", "image/png")],
            b"<html>".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .raw(Method::POST, &upload("a.png"), None, &[], png.clone())
        .await;
    assert_eq!(r.status, 401);
    let content = json!({"fileId": fid, "name": "a.png"}).to_string();
    ws.send(json!({"event": "Msg", "body": {"kind": "Image", "gid": direct, "content": content, "clientMsgId": "img"}}))
        .await;
    // Pushes (bob's read receipts) may come first; then the ack.
    loop {
        let frame = ws.recv().await;
        if frame["clientMsgId"] == "img" {
            assert_eq!(frame["kind"], "Ack", "{frame}");
            break;
        }
    }
    let path = format!("/api/file/{fid}");
    let whole = api.raw(Method::GET, &path, tb, &[], Vec::new()).await;
    assert_eq!((whole.status, whole.body.len()), (200, png.len()));
    let etag = whole.headers["etag"].to_str().unwrap().to_owned();
    let part = api
        .raw(
            Method::GET,
            &path,
            tb,
            &[("range", "bytes=0-7")],
            Vec::new(),
        )
        .await;
    assert_eq!((part.status, part.body.as_slice()), (206, &png[..8]));
    let same = api
        .raw(
            Method::GET,
            &path,
            tb,
            &[("if-none-match", &etag)],
            Vec::new(),
        )
        .await;
    assert_eq!(same.status, 304);
    let r = api
        .raw(
            Method::GET,
            &path,
            tb,
            &[("range", "bytes=99999-")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 416);
    let r = api.raw(Method::GET, &path, tc, &[], Vec::new()).await;
    assert_eq!(r.status, 404);
    let r = api
        .raw(
            Method::GET,
            &format!("{path}?name=%07"),
            tb,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api.raw(Method::GET, &path, None, &[], Vec::new()).await;
    assert_eq!(r.status, 401);
    api.too_large(Method::GET, &path, tb).await;
    // A server that takes files of 1 MiB at most.
    let small = TestServer::start_with(|c| c.max_upload_bytes = 1 << 20).await;
    let (_, small_token) = small.user("erin").await;
    api.addr = small.addr;
    let r = api
        .raw(
            Method::POST,
            &upload("big.bin"),
            Some(&small_token),
            &[],
            vec![0; (1 << 20) + 1],
        )
        .await;
    assert_eq!(r.status, 413);
    api.addr = srv.addr;

    // ---- invites: alice registered first, so she is the server's admin
    let invite = api
        .post_is(
            200,
            "/api/invite/create",
            ta,
            json!({"uses": 2, "expiresDays": 1}),
        )
        .await;
    assert!(invite["link"].is_null(), "{invite}");
    api.post_is(200, "/api/invite/create", ta, json!({})).await;
    api.post_is(403, "/api/invite/create", tb, json!({})).await;
    api.post_is(400, "/api/invite/create", ta, json!({"uses": 0}))
        .await;
    api.post_is(401, "/api/invite/create", None, json!({}))
        .await;

    // ---- a server that takes no registrations
    let closed =
        TestServer::start_with(|c| c.registration = rim::config::RegistrationMode::Closed).await;
    api.addr = closed.addr;
    api.post_is(403, "/api/user/create", None, user("dave"))
        .await;
    api.addr = srv.addr;

    // ---- the document itself, the probe, logout
    api.get_is(200, "/api/openapi.json", None).await;
    api.get_is(200, "/healthz", None).await;
    api.post_is(200, "/api/user/logout", tc, json!({})).await;
    api.post_is(401, "/api/user/logout", tc, json!({})).await;

    // ---- a bot, made with `rim bot add`, posts with its key
    let home = api
        .post_is(
            200,
            "/api/group/create",
            ta,
            json!({"group": {"name": "home"}}),
        )
        .await
        .as_u64()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = crate::child::write_config(dir.path());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rim"))
        .args([
            "bot",
            "add",
            "Doorbell",
            "--group",
            &home.to_string(),
            "--db",
        ])
        .arg(&srv.db_path)
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("url: "))
        .expect("the bot's URL");
    let bot_path = url[url.find("/api/").unwrap()..].to_owned();
    let text = [("content-type", "text/plain")];
    let r = api
        .raw(
            Method::POST,
            &bot_path,
            None,
            &text,
            b"Someone is at the door".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let wrong = format!("/api/bot/{}/message", "0".repeat(64));
    let r = api
        .raw(Method::POST, &wrong, None, &text, b"hi".to_vec())
        .await;
    assert_eq!(r.status, 401);
    let r = api
        .raw(Method::POST, &bot_path, None, &text, Vec::new())
        .await;
    assert_eq!(r.status, 400);

    // ---- a full database answers 507 and stores nothing
    let app = srv.app().clone();
    app.db.set_size_limit(1).await.expect("size limit");
    let mut full = false;
    for i in 0..200 {
        let big = NewMessage {
            gid,
            uid: a,
            kind: Kind::Text,
            content: "x".repeat(16 * 1024),
            client_msg_id: format!("fill-{i}"),
            file: None,
            reply_to: None,
        };
        if let Err(e) = app.db.send_message(big).await {
            assert_eq!(e.code(), 507, "{e}");
            full = true;
            break;
        }
    }
    assert!(full, "the database never filled up");
    // The last page may still hold a small row or two.
    let big_group = json!({"group": {"name": "x".repeat(60), "avatar": "y".repeat(1000)}});
    let mut refused = false;
    for _ in 0..100 {
        let (status, _) = api.post("/api/group/create", ta, big_group.clone()).await;
        refused = status == 507;
        if refused {
            break;
        }
    }
    assert!(refused, "no 507 from a full database");
    // An upload into a full database: 507 too, and nothing of it is kept.
    let r = api
        .raw(
            Method::POST,
            "/api/file?name=big.bin",
            ta,
            &[],
            vec![7; 600_000],
        )
        .await;
    assert_eq!(r.status, 507, "{:?}", String::from_utf8_lossy(&r.body));
    app.db.set_size_limit(0).await.expect("size limit lifted");
    api.post_is(200, "/api/group/create", ta, group.clone())
        .await;

    // ---- a database that stopped taking writes answers 503
    app.db.close().await;
    api.post_is(503, "/api/group/create", ta, group).await;
    let r = api
        .raw(
            Method::POST,
            "/api/file?name=late.txt",
            ta,
            &[],
            b"late".to_vec(),
        )
        .await;
    assert_eq!(r.status, 503);
    api.post_is(503, "/api/user/logout", tb, json!({})).await;

    // Every operation was seen succeeding, and failing at least once.
    let checker = &api.checker;
    for op in documented(&checker.doc) {
        let statuses = checker
            .seen
            .get(&op)
            .unwrap_or_else(|| panic!("{op:?} was never exercised"));
        assert!(statuses.contains(&200), "{op:?}: no success checked");
        let exempt = op.1 == "/api/openapi.json" || op.1 == "/healthz";
        assert!(exempt || statuses.len() > 1, "{op:?}: no error checked");
        // Documented as needing a token: the server was seen refusing one without.
        let op_doc = &checker.doc["paths"][&op.1][op.0.to_lowercase()];
        if op_doc.get("security") != Some(&json!([])) {
            assert!(
                statuses.contains(&401),
                "{op:?}: never seen refusing a missing token"
            );
        }
    }
    let pairs: usize = checker.seen.values().map(BTreeSet::len).sum();
    eprintln!(
        "openapi: {} answers of {} operations checked, {} (operation, status) pairs",
        checker.checked,
        checker.seen.len(),
        pairs
    );
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths_answer_in_the_documented_wrapper() {
    let srv = TestServer::start().await;
    let doc = doc();
    let failure = validator(&doc, "/components/schemas/Failure");
    for (method, path, status) in [
        (Method::GET, "/api/user/login", 405),
        (Method::DELETE, "/api/group/get", 405),
        (Method::POST, "/api/openapi.json", 405),
        (Method::GET, "/api/nothing/here", 404),
    ] {
        let r = http(srv.addr, method.clone(), path, None, None).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.json);
        assert_eq!(r.json["code"], status);
        assert!(failure.is_valid(&r.json), "{method} {path}: {}", r.json);
        if status == 405 {
            let documented: Vec<String> = documented(&doc)
                .into_iter()
                .filter(|(_, p)| p == path)
                .map(|(m, _)| m)
                .collect();
            let allow = r
                .headers
                .get("allow")
                .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"));
            assert_eq!(
                allow.to_str().unwrap(),
                documented.join(", "),
                "{method} {path}"
            );
        }
    }
}
