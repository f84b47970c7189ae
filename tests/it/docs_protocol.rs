//! PROTOCOL.md cannot drift from the server: its example sessions are run.
//!
//! Every fenced `rim-session` block of PROTOCOL.md is a transcript (the
//! notation is explained in the document itself, under "Example sessions"):
//! REST requests and their answers, WebSocket frames sent on named
//! connections and the frames each connection must receive next, and close
//! codes. This test plays them against a real server and compares every
//! answer structurally, binding `"$name"` placeholders to the values that vary
//! from run to run. It also checks that the examples cover every client event
//! and every push, that the other JSON snippets parse, and that the limits the
//! document quotes are the configuration's defaults.

use std::collections::{BTreeSet, HashMap, VecDeque};

use hyper::Method;
use serde_json::Value;

use crate::common::{TestServer, Ws, http};

const DOC: &str = include_str!("../../PROTOCOL.md");

/// One fenced `rim-session` block.
struct Block {
    /// 1-based line of the opening fence, for messages.
    line: usize,
    /// Runs on the previous block's server, connections and placeholders.
    continued: bool,
    /// `key=value` settings from the fence line, for a fresh server.
    settings: Vec<(String, String)>,
    lines: Vec<(usize, String)>,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        let n = i + 1;
        if let Some(block) = &mut current {
            if line.trim() == "```" {
                out.push(current.take().unwrap());
            } else {
                block.lines.push((n, line.to_owned()));
            }
        } else if let Some(rest) = line.strip_prefix("```rim-session") {
            let settings = rest
                .split_whitespace()
                .map(|kv| {
                    let (k, v) = kv
                        .split_once('=')
                        .unwrap_or_else(|| panic!("line {n}: bad setting {kv:?}"));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            current = Some(Block {
                line: n,
                continued: false,
                settings,
                lines: Vec::new(),
            });
        }
    }
    assert!(current.is_none(), "an unclosed rim-session block");
    for block in &mut out {
        block.continued = block
            .lines
            .iter()
            .find(|(_, l)| !l.trim().is_empty())
            .map(|(_, l)| l.trim())
            == Some("# continued");
        if block.continued {
            assert!(
                block.settings.is_empty(),
                "line {}: a continued block cannot change settings",
                block.line
            );
        }
    }
    out
}

/// The state a transcript builds up: the server, the open connections, the
/// placeholders bound so far and the last REST answer.
struct Session {
    srv: TestServer,
    conns: HashMap<String, Ws>,
    vars: HashMap<String, Value>,
    last_http: Option<(u16, Value)>,
    /// Per connection, the frames sent and not answered yet, oldest first:
    /// answers come in frame order, so the next answer is the first one's.
    unanswered: HashMap<String, VecDeque<Value>>,
    /// The connections logged in (their Login acked, no Logout since), with
    /// their token.
    logged_in: HashMap<String, String>,
}

impl Session {
    fn new(srv: TestServer) -> Session {
        Session {
            srv,
            conns: HashMap::new(),
            vars: HashMap::new(),
            last_http: None,
            unanswered: HashMap::new(),
            logged_in: HashMap::new(),
        }
    }

    /// Follows logins and logouts: `answer` answers the oldest unanswered
    /// frame of `conn`.
    fn on_answer(&mut self, conn: &str, answer: &Value) {
        let Some(frame) = self.unanswered.get_mut(conn).and_then(|q| q.pop_front()) else {
            return; // not an answer to a frame (the login timeout's)
        };
        if answer["kind"] != "Ack" {
            return;
        }
        match frame["event"].as_str() {
            Some("Login") => {
                let token = frame["body"]["content"].as_str().unwrap_or_default();
                self.logged_in.insert(conn.to_owned(), token.to_owned());
            }
            Some("Logout") => {
                self.logged_in.remove(conn);
            }
            _ => {}
        }
    }
}

/// What the examples exercised, to check they cover the protocol.
#[derive(Default)]
struct Coverage {
    sent_events: BTreeSet<String>,
    pushes: BTreeSet<String>,
    answers: BTreeSet<String>,
    closes: BTreeSet<u16>,
    lines: usize,
}

fn placeholder(s: &str) -> Option<&str> {
    s.strip_prefix('$').filter(|name| !name.is_empty())
}

/// Replaces `"$name"` strings by their bound values.
fn substitute(v: &Value, vars: &HashMap<String, Value>, at: usize) -> Value {
    match v {
        Value::String(s) => match placeholder(s) {
            Some(name) => vars
                .get(name)
                .unwrap_or_else(|| {
                    panic!(
                        "PROTOCOL.md line {at}: ${name} is used before an answer gave it a value"
                    )
                })
                .clone(),
            None => v.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| substitute(i, vars, at)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| (k.clone(), substitute(i, vars, at)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Compares `actual` with the documented `pattern`: same keys, same values,
/// except `"*"` (anything) and `"$name"` (binds, or must equal the binding).
fn matches(
    pattern: &Value,
    actual: &Value,
    vars: &mut HashMap<String, Value>,
    path: &str,
) -> Result<(), String> {
    match pattern {
        Value::String(s) if s == "*" => Ok(()),
        Value::String(s) if placeholder(s).is_some() => {
            let name = placeholder(s).unwrap();
            match vars.get(name) {
                Some(bound) if bound == actual => Ok(()),
                Some(bound) => Err(format!(
                    "{path}: ${name} is {bound}, the server said {actual}"
                )),
                None if actual.is_null() => Err(format!("{path}: ${name} would be null")),
                None => {
                    vars.insert(name.to_owned(), actual.clone());
                    Ok(())
                }
            }
        }
        Value::Object(p) => {
            let Value::Object(a) = actual else {
                return Err(format!(
                    "{path}: expected an object, the server said {actual}"
                ));
            };
            let pk: BTreeSet<_> = p.keys().collect();
            let ak: BTreeSet<_> = a.keys().collect();
            if pk != ak {
                return Err(format!(
                    "{path}: documented keys {pk:?}, the server sent {ak:?}"
                ));
            }
            for (k, pv) in p {
                matches(pv, &a[k], vars, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        Value::Array(p) => {
            let Value::Array(a) = actual else {
                return Err(format!(
                    "{path}: expected an array, the server said {actual}"
                ));
            };
            if p.len() != a.len() {
                return Err(format!(
                    "{path}: documented {} items, the server sent {}",
                    p.len(),
                    a.len()
                ));
            }
            for (i, (pv, av)) in p.iter().zip(a).enumerate() {
                matches(pv, av, vars, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if pattern == actual => Ok(()),
        _ => Err(format!(
            "{path}: documented {pattern}, the server said {actual}"
        )),
    }
}

fn parse_json(text: &str, at: usize) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("PROTOCOL.md line {at}: not JSON ({e}): {text}"))
}

async fn start(settings: &[(String, String)]) -> TestServer {
    let settings = settings.to_vec();
    TestServer::start_with(move |c| {
        for (k, v) in &settings {
            let n: u64 = v
                .parse()
                .unwrap_or_else(|_| panic!("setting {k}={v} is not a number"));
            match k.as_str() {
                "replay_limit" => c.replay_limit = n as usize,
                "login_timeout_secs" => c.login_timeout = std::time::Duration::from_secs(n),
                other => panic!("unknown rim-session setting {other:?}"),
            }
        }
    })
    .await
}

impl Session {
    async fn run(&mut self, at: usize, line: &str, cov: &mut Coverage) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        cov.lines += 1;
        let split = line
            .find(['>', '<'])
            .unwrap_or_else(|| panic!("PROTOCOL.md line {at}: no '>' or '<': {line}"));
        let (who, dir, rest) = (
            line[..split].trim(),
            &line[split..split + 1],
            line[split + 1..].trim(),
        );
        let mut who_words = who.split_whitespace();
        let name = who_words
            .next()
            .unwrap_or_else(|| panic!("PROTOCOL.md line {at}: no speaker"));
        let token_var = who_words.next();
        match (name, dir) {
            ("http", ">") => self.http(at, token_var, rest).await,
            ("http", _) => self.http_answer(at, rest),
            (conn, ">") => {
                let frame = substitute(&parse_json(rest, at), &self.vars, at);
                if let Some(event) = frame["event"].as_str() {
                    cov.sent_events.insert(event.to_owned());
                }
                let addr = self.srv.addr;
                if !self.conns.contains_key(conn) {
                    let mut ws = Ws::connect(addr).await;
                    // The transcripts document every push, Presence too.
                    ws.presence = true;
                    self.conns.insert(conn.to_owned(), ws);
                }
                self.conns.get_mut(conn).unwrap().send(frame.clone()).await;
                self.unanswered
                    .entry(conn.to_owned())
                    .or_default()
                    .push_back(frame);
            }
            (conn, _) => {
                let ws = self.conns.get_mut(conn).unwrap_or_else(|| {
                    panic!("PROTOCOL.md line {at}: connection {conn} never sent anything")
                });
                if let Some(code) = rest.strip_prefix("close ") {
                    let code: u16 = code.trim().parse().expect("close code");
                    assert_eq!(ws.expect_close().await, code, "PROTOCOL.md line {at}");
                    cov.closes.insert(code);
                    self.conns.remove(conn);
                    self.unanswered.remove(conn);
                    self.logged_in.remove(conn);
                    return;
                }
                let pattern = parse_json(rest, at);
                let got = ws.recv().await;
                if let Err(e) = matches(&pattern, &got, &mut self.vars, "frame") {
                    panic!("PROTOCOL.md line {at}: {e}\n  documented: {rest}\n  received:   {got}");
                }
                match got["event"].as_str() {
                    Some("Notify") => cov
                        .pushes
                        .insert(format!("Notify/{}", got["body"]["kind"].as_str().unwrap())),
                    Some(event) => cov.pushes.insert(event.to_owned()),
                    None => {
                        self.on_answer(conn, &got);
                        cov.answers.insert(format!(
                            "{}/{}",
                            got["kind"].as_str().unwrap(),
                            got["code"]
                        ))
                    }
                };
            }
        }
    }

    async fn http(&mut self, at: usize, token_var: Option<&str>, rest: &str) {
        let mut parts = rest.splitn(3, ' ');
        let method: Method = parts.next().unwrap().parse().expect("method");
        let path = parts
            .next()
            .unwrap_or_else(|| panic!("PROTOCOL.md line {at}: no path"));
        let body = parts
            .next()
            .map(|b| substitute(&parse_json(b, at), &self.vars, at).to_string());
        let token = token_var.map(|t| {
            let name = placeholder(t)
                .unwrap_or_else(|| panic!("PROTOCOL.md line {at}: {t} is not a $placeholder"));
            self.vars[name]
                .as_str()
                .expect("a token is a string")
                .to_owned()
        });
        let r = http(self.srv.addr, method, path, token.as_deref(), body).await;
        self.last_http = Some((r.status, r.json));
    }

    /// Every frame a connection received was documented: none is left unread.
    ///
    /// A Heart on every connection must be answered next: so no frame has an
    /// answer still to come, and a connection that is not logged in (which
    /// gets no pushes) got nothing. Every push the transcript caused is
    /// queued by now (they are queued before the answers and REST replies
    /// the transcript read), so a marker pushed now to the logged-in ones,
    /// a friend request, must be the next frame there.
    async fn expect_nothing_more(&mut self) {
        for ws in self.conns.values_mut() {
            ws.expect_heart_next().await;
        }
        let mut uids = BTreeSet::new();
        for token in self.logged_in.values() {
            let me = self.srv.get("/api/user/me", Some(token)).await;
            uids.insert(me.assert_ok()["id"].as_u64().expect("uid"));
        }
        let logged_in = &self.logged_in;
        let mut quiet: Vec<&mut Ws> = self
            .conns
            .iter_mut()
            .filter(|(name, _)| logged_in.contains_key(*name))
            .map(|(_, ws)| ws)
            .collect();
        let uids: Vec<u64> = uids.into_iter().collect();
        if quiet.is_empty() {
            return; // nobody who could get a push
        }
        self.srv
            .assert_nothing_before_friend_request(&uids, &mut quiet)
            .await;
    }

    fn http_answer(&mut self, at: usize, rest: &str) {
        let (status, json) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("PROTOCOL.md line {at}: STATUS JSON"));
        let (got_status, got) = self
            .last_http
            .take()
            .unwrap_or_else(|| panic!("PROTOCOL.md line {at}: no request"));
        assert_eq!(
            got_status.to_string(),
            status,
            "PROTOCOL.md line {at}: {got}"
        );
        if let Err(e) = matches(&parse_json(json, at), &got, &mut self.vars, "answer") {
            panic!("PROTOCOL.md line {at}: {e}\n  documented: {json}\n  received:   {got}");
        }
    }
}

#[tokio::test]
async fn the_example_sessions_run_as_documented() {
    let blocks = blocks(DOC);
    assert!(blocks.len() >= 5, "PROTOCOL.md lost its example sessions");
    assert!(
        !blocks[0].continued,
        "the first example cannot continue another"
    );
    let mut cov = Coverage::default();
    let mut session: Option<Session> = None;
    for block in &blocks {
        if !block.continued {
            if let Some(mut old) = session.take() {
                old.expect_nothing_more().await;
                old.srv.stop().await;
            }
            session = Some(Session::new(start(&block.settings).await));
        }
        let s = session.as_mut().unwrap();
        for (at, line) in &block.lines {
            s.run(*at, line, &mut cov).await;
        }
        assert!(
            s.last_http.is_none(),
            "block at line {}: a REST request without its answer",
            block.line
        );
    }
    session.unwrap().expect_nothing_more().await;

    let want = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let missing: Vec<_> = want(&[
        "Login", "Msg", "Edit", "Delete", "React", "Typing", "Ack", "Read", "Heart", "Logout",
    ])
    .difference(&cov.sent_events)
    .cloned()
    .collect();
    assert!(missing.is_empty(), "no example sends {missing:?}");
    let missing: Vec<_> = want(&[
        "Msg",
        "Edit",
        "Delete",
        "React",
        "Typing",
        "Presence",
        "Read",
        "Notify/FriendRequest",
        "Notify/FriendAccept",
        "Notify/ReplayTruncated",
    ])
    .difference(&cov.pushes)
    .cloned()
    .collect();
    assert!(missing.is_empty(), "no example shows the push {missing:?}");
    for answer in [
        "Ack/200",
        "Error/400",
        "Error/401",
        "Error/403",
        "Error/404",
    ] {
        assert!(
            cov.answers.contains(answer),
            "no example shows the answer {answer}"
        );
    }
    assert!(cov.closes.contains(&1008), "no example shows a close");
    eprintln!(
        "PROTOCOL.md: {} example blocks, {} transcript lines run",
        blocks.len(),
        cov.lines
    );
}

#[test]
fn the_other_json_snippets_parse() {
    let mut in_json = None;
    let mut count = 0;
    for (i, line) in DOC.lines().enumerate() {
        match (&mut in_json, line.trim()) {
            (None, "```json") => in_json = Some((i + 1, String::new())),
            (Some((at, text)), "```") => {
                serde_json::from_str::<Value>(text)
                    .unwrap_or_else(|e| panic!("PROTOCOL.md line {at}: {e}"));
                count += 1;
                in_json = None;
            }
            (Some((_, text)), l) => text.push_str(l),
            _ => {}
        }
    }
    assert!(count >= 5, "expected the JSON examples of the frames");
}

#[test]
fn the_quoted_limits_are_the_defaults() {
    let c = rim::Config::default();
    let rl = c.rate_limits;
    let rows = [
        ("`limits.max_frame_bytes`", c.max_frame_bytes.to_string()),
        (
            "`limits.max_message_bytes`",
            c.max_message_bytes.to_string(),
        ),
        (
            "`limits.outbound_queue`",
            format!("{} frames", c.outbound_queue),
        ),
        (
            "`limits.replay_limit`",
            format!("{} messages", c.replay_limit),
        ),
        ("`limits.max_connections`", c.max_connections.to_string()),
        (
            "frames in flight per connection (fixed)",
            format!("{} frames", rim::ws::MAX_IN_FLIGHT),
        ),
        (
            "`rate_limits.messages_per_second` / `message_burst`",
            format!("{} / {} per user", rl.messages_per_second, rl.message_burst),
        ),
        (
            "`timeouts.login_secs`",
            format!("{} s", c.login_timeout.as_secs()),
        ),
        (
            "`timeouts.ping_interval_secs`",
            format!("{} s", c.ping_interval.as_secs()),
        ),
        (
            "`timeouts.idle_secs`",
            format!("{} s", c.idle_timeout.as_secs()),
        ),
        (
            "`timeouts.write_secs`",
            format!("{} s", c.write_timeout.as_secs()),
        ),
        (
            "`auth.token_ttl_days`",
            format!("{} days", c.token_ttl.as_secs() / 86_400),
        ),
    ];
    for (key, value) in rows {
        let row = DOC
            .lines()
            .find(|l| l.starts_with('|') && l.split('|').any(|cell| cell.trim() == key))
            .unwrap_or_else(|| panic!("PROTOCOL.md has no table row for {key}"));
        let cells: Vec<_> = row.split('|').map(str::trim).collect();
        assert!(
            cells.contains(&value.as_str()),
            "PROTOCOL.md says {row:?}, the default is {value}"
        );
    }
}
