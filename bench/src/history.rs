//! Scenario 4, history: a database of 1,000,000 messages over 1,000
//! conversations, and the latency of `POST /api/message/history` on it:
//! the latest page of 50, and a `beforeId` page at a random depth, while
//! other members keep writing. Then full-text search, by the reader (a
//! member of every conversation) and by a member of every fifth one (200 of
//! 1,000), whose searches must keep to theirs: words of theirs, and a word
//! that only the other 800 conversations hold (zero hits).
//!
//! Users and conversations are created through the API. The messages are
//! bulk-loaded straight into the SQLite file while the server is stopped
//! (through the API that would take minutes), into the schema the server
//! itself created, interleaved across conversations as real traffic is; the
//! server is then started on that file (it indexes the messages for search)
//! and started again, as after a restart, for the figures. Against a `--url` server the
//! messages go through WebSockets instead, fewer of them, and `beforeId`
//! pages one page back from the latest.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use super::client::{self, Http, User};
use super::direct;
use super::hist::Histogram;
use super::load::{self, Client, FrameKind};
use super::sys::Meter;
use super::target::{ServerSpec, Target};
use super::{Ctx, Report, Row, Scenario, rate};

const PAGE: u64 = 50;
/// Messages written through WebSockets against a `--url` server.
const URL_FILL: u64 = 20_000;
/// Requests one reader makes at most (the time bound comes first).
const MAX_REQUESTS: u64 = 1_000_000;
/// The wide searcher is in every this-many-th conversation (200 of 1,000);
/// the others' messages carry the word [`ELSEWHERE`], theirs do not.
const WIDE_EVERY: usize = 5;
const ELSEWHERE: &str = "elsewhere";

/// Where the bulk-loaded messages are: message `k` (from 0) has id
/// `first_id + k` and belongs to conversation `gids[k % gids.len()]`.
#[derive(Clone)]
struct Layout {
    first_id: u64,
    messages: u64,
    gids: Arc<Vec<u64>>,
}

impl Layout {
    /// A message id of conversation `j` from its oldest `fraction` (0..1).
    fn id_at(&self, j: usize, fraction: f64) -> u64 {
        let g = self.gids.len() as u64;
        let per_group = self.messages / g;
        let k = ((per_group as f64 * fraction) as u64).min(per_group.saturating_sub(1));
        self.first_id + j as u64 + k * g
    }
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let sizes = ctx.sizes;
    let mut report = Report::new(Scenario::History);
    let g = sizes.history_groups.max(1);
    let u = sizes.history_users.max(3);
    let spec = ServerSpec::cheap(u + 1000);
    let mut server = ctx.server("history", &spec).await?;
    let addr = server.addr;

    ctx.progress(format_args!("history: {u} users and {g} conversations"));
    let meter = Meter::start(server.pid);
    let users = Arc::new(client::users(addr, &ctx.accounts("h"), u, 32).await?);
    let reader = users[0].clone();
    client::befriend_all(addr, &reader, users[1..].to_vec(), 32).await?;
    // The wide searcher: a member of every WIDE_EVERY-th conversation.
    let wide = client::users(addr, &ctx.accounts("hw"), 1, 1)
        .await?
        .remove(0);
    client::befriend_all(addr, &reader, vec![wide.clone()], 1).await?;
    let wide_uid = wide.uid;
    // Conversation j: the reader plus writers w(j) and w(j+1).
    let writer_of = move |j: usize| 1 + j % (u - 1);
    let group_users = users.clone();
    let gids = client::each(addr, g, 16, move |mut http, j| {
        let users = group_users.clone();
        async move {
            let mut members = vec![
                users[0].uid,
                users[writer_of(j)].uid,
                users[writer_of(j + 1)].uid,
            ];
            if j.is_multiple_of(WIDE_EVERY) {
                members.push(wide_uid);
            }
            let gid =
                client::group(&mut http, &users[0], &format!("history {j}"), &members).await?;
            Ok((http, gid))
        }
    })
    .await?;
    report.rows.push(Row::new(
        format!("setup: {u} users, their friendships, {g} conversations"),
        (u + 2 * (u - 1) + g) as u64,
        "calls/s",
        meter.finish(),
    ));

    let layout = if server.is_child() {
        let n = sizes.history_messages;
        ctx.progress(format_args!(
            "history: stopping the server and bulk-loading {n} messages"
        ));
        let db = super::db_path(&server)?.to_owned();
        let db_again = db.clone();
        server.stop().await?;
        let t = Instant::now();
        let gids2 = gids.clone();
        let uids: Vec<[u64; 2]> = (0..g)
            .map(|j| [users[writer_of(j)].uid, users[writer_of(j + 1)].uid])
            .collect();
        let (first_id, analyzed) =
            tokio::task::spawn_blocking(move || bulk_load(&db, &gids2, &uids, n)).await??;
        let took = t.elapsed().as_secs_f64();
        report.notes.push(format!(
            "bulk load: {n} messages in {took:.1} s ({} rows/s), server stopped; \
             then PRAGMA optimize as at a server shutdown: messages {}",
            rate(n as f64 / took),
            if analyzed { "analyzed" } else { "not analyzed" }
        ));
        // The first start indexes the bulk-loaded messages for search
        // (`store::search::catch_up`), which a server does once for messages
        // written behind its back and never for its own. That work's
        // allocations are no part of what a server on such a database holds,
        // so the figures come from a second start, on the indexed file, as
        // after a restart or an upgrade.
        let t = Instant::now();
        server = Target::start(&ctx.opts.server_exe, &ctx.dir, &db_again, &spec).await?;
        let indexing = t.elapsed().as_secs_f64();
        let indexing_rss = server.pid.and_then(super::sys::rss_kib);
        server.stop().await?;
        server = Target::start(&ctx.opts.server_exe, &ctx.dir, &db_again, &spec).await?;
        report.notes.push(format!(
            "first start on the bulk-loaded file, indexing its {n} messages for search before \
             it listens: {indexing:.1} s ({} RSS then); the figures are from a second start",
            indexing_rss.map_or("?".into(), super::mib)
        ));
        Some(Layout {
            first_id,
            messages: n,
            gids: Arc::new(gids.clone()),
        })
    } else {
        ctx.progress(format_args!(
            "history: writing {URL_FILL} messages through WebSockets"
        ));
        let tokens = users[1..].iter().map(|u| u.token.clone()).collect();
        let sockets = client::ws_logins(addr, tokens, 8 * 1024, 64).await?;
        let plans = sockets
            .into_iter()
            .enumerate()
            .map(|(i, ws)| {
                let mut plan = direct::closed_plan(1);
                plan.max_frames = URL_FILL / (u as u64 - 1) + 1;
                (Client::new(ws, i, gids[i % g]), plan)
            })
            .collect();
        let _ = load::run_phase(plans, 60.0, 0, None, None).await;
        None
    };
    let addr = server.addr;
    let pid = server.pid;
    let server_db = server.db.clone();

    // Writers: every writer sends into its own conversation, open loop.
    let tokens = users[1..].iter().map(|u| u.token.clone()).collect();
    let sockets = client::ws_logins(addr, tokens, 8 * 1024, 64).await?;
    let mut writers: Vec<Client> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let mut c = Client::new(ws, i, gids[i % g]);
            // New clientMsgIds: a fill through WebSockets used the low ones.
            c.seq = 1_000_000_000;
            c
        })
        .collect();

    let total = layout.as_ref().map_or(URL_FILL, |l| l.messages);
    let per = total / g as u64;
    // One reader measures what a person opening a conversation waits; more
    // readers than cores measure the queue as much as the query, and are
    // reported for throughput.
    // Then one reader searching, on its own, so that the history figures
    // and the search figures do not weigh on each other.
    // Then the wide searcher, in 200 of the 1,000 conversations.
    let mut phases = vec![
        (1, false, false),
        (sizes.history_readers.max(1), false, false),
    ];
    phases.dedup();
    phases.push((1, true, false));
    phases.push((1, true, true));
    for (readers, search_phase, wide_phase) in phases {
        ctx.progress(format_args!(
            "history: {readers} {}(s) for {:.1} s while writing {} msgs/s",
            match (search_phase, wide_phase) {
                (_, true) => "wide searcher",
                (true, _) => "searcher",
                _ => "reader",
            },
            sizes.history_secs,
            sizes.history_write_rate
        ));
        let plans = direct::open_plans(
            writers,
            sizes.history_write_rate,
            sizes.history_secs,
            FrameKind::Msg,
        );
        let until = Instant::now() + Duration::from_secs_f64(sizes.history_secs);
        let meter = Meter::start(pid);
        let tasks: Vec<_> = (0..readers)
            .map(|r| {
                let reader = if wide_phase {
                    wide.clone()
                } else {
                    reader.clone()
                };
                let layout = layout.clone();
                let gids = gids.clone();
                tokio::spawn(read_loop(
                    addr,
                    reader,
                    gids,
                    layout,
                    until,
                    r as u64,
                    match (search_phase, wide_phase) {
                        (_, true) => Mode::WideSearch,
                        (true, _) => Mode::Search,
                        _ => Mode::Read,
                    },
                ))
            })
            .collect();
        let writing = tokio::spawn(load::run_phase(plans, sizes.history_secs, 0, None, pid));
        let mut latest = Histogram::new();
        let mut before = Histogram::new();
        let mut search = Histogram::new();
        let mut zero = Histogram::new();
        let mut bad = 0;
        for t in tasks {
            let done = t.await??;
            latest.merge(&done.latest);
            before.merge(&done.before);
            search.merge(&done.search);
            zero.merge(&done.zero);
            bad += done.bad;
        }
        let usage = meter.finish();
        let written = writing.await?;
        server.check_alive()?;
        let who = match (readers, search_phase, wide_phase) {
            (_, _, true) => format!(
                "1 searcher in {} conversations",
                gids.len().div_ceil(WIDE_EVERY)
            ),
            (_, true, _) => "1 searcher".to_owned(),
            (1, false, _) => "1 reader".to_owned(),
            _ => format!("{readers} readers"),
        };
        if wide_phase {
            report.rows.push(
                Row::new(
                    format!("{who}: search, some hits"),
                    search.count(),
                    "req/s",
                    usage,
                )
                .latency("request", &search),
            );
            report.rows.push(
                Row::new(
                    format!("{who}: search, zero hits ({ELSEWHERE})"),
                    zero.count(),
                    "req/s",
                    usage,
                )
                .latency("request", &zero),
            );
        } else if search_phase {
            report.rows.push(
                Row::new(
                    format!("{who}: search, mixed queries"),
                    search.count(),
                    "req/s",
                    usage,
                )
                .latency("request", &search),
            );
        } else {
            report.rows.push(
                Row::new(
                    format!("{who}: latest {PAGE} of ~{per} ({total} in all)"),
                    latest.count(),
                    "req/s",
                    usage,
                )
                .latency("request", &latest),
            );
            report.rows.push(
                Row::new(
                    if layout.is_some() {
                        format!("{who}: beforeId page, random depth")
                    } else {
                        format!("{who}: beforeId page, one page back")
                    },
                    before.count(),
                    "req/s",
                    usage,
                )
                .latency("request", &before),
            );
        }
        report.rows.push(
            Row::new(
                format!(
                    "{who}: writes ({} msgs/s offered)",
                    sizes.history_write_rate
                ),
                written.answered,
                "msgs/s",
                written.usage,
            )
            .latency("ack", &written.ack),
        );
        direct::problems(&mut report, &format!("writes with {who}"), &written);
        if bad > 0 {
            report.problems.push(format!(
                "{bad} history answers had fewer than {PAGE} messages, or history or search answers failed"
            ));
        }
        let p99 = latest.quantile_ns(0.99) as f64 / 1e6;
        if wide_phase {
            let some_p99 = search.quantile_ns(0.99) as f64 / 1e6;
            let zero_p99 = zero.quantile_ns(0.99) as f64 / 1e6;
            report.figures.insert("search_wide_p99_ms", some_p99);
            report.figures.insert("search_wide_zero_p99_ms", zero_p99);
            report.check(
                format!("search p99 < 20 ms for a member of many conversations on the {total}-message database"),
                format!(
                    "some hits p99 {some_p99:.2} ms (p50 {:.2} ms), zero hits p99 {zero_p99:.2} ms (p50 {:.2} ms), {who}, writes going on",
                    search.quantile_ns(0.5) as f64 / 1e6,
                    zero.quantile_ns(0.5) as f64 / 1e6,
                ),
                some_p99 < 20.0 && zero_p99 < 20.0 && layout.is_some(),
            );
        } else if search_phase {
            let search_p99 = search.quantile_ns(0.99) as f64 / 1e6;
            report.figures.insert("search_p99_ms", search_p99);
            report.check(
                format!("search p99 < 20 ms on the {total}-message database"),
                format!(
                    "p99 {search_p99:.2} ms (p50 {:.2} ms), one searcher, writes going on",
                    search.quantile_ns(0.5) as f64 / 1e6,
                ),
                search_p99 < 20.0 && layout.is_some(),
            );
        } else if readers == 1 {
            report.figures.insert("latest_p99_ms", p99);
            report
                .figures
                .insert("before_p99_ms", before.quantile_ns(0.99) as f64 / 1e6);
            report.check(
                format!("history latest {PAGE} p99 < 2 ms on the {total}-message database"),
                format!(
                    "p99 {p99:.2} ms (p50 {:.2} ms; beforeId p99 {:.2} ms), one reader, writes going on",
                    latest.quantile_ns(0.5) as f64 / 1e6,
                    before.quantile_ns(0.99) as f64 / 1e6,
                ),
                p99 < 2.0 && layout.is_some(),
            );
        } else {
            report.figures.insert("latest_p99_ms_many_readers", p99);
        }
        writers = written.clients;
    }
    // Then nobody reads or writes: what the server keeps of the reads.
    let busy_rss = pid.and_then(super::sys::rss_kib);
    ctx.progress(format_args!(
        "history: {:.0} s quiet",
        sizes.memory_quiet_secs
    ));
    tokio::time::sleep(Duration::from_secs_f64(sizes.memory_quiet_secs)).await;
    if let (Some(busy), Some(quiet), Some(peak)) = (
        busy_rss,
        pid.and_then(super::sys::rss_kib),
        pid.and_then(super::sys::peak_rss_kib),
    ) {
        report.figures.insert("quiet_rss_kib", quiet as f64);
        let quiet_mb = quiet as f64 * 1024.0 / 1e6;
        report.check(
            format!(
                "RSS <= 24 MB {:.0} s after the reads and searches on the {total}-message database",
                sizes.memory_quiet_secs
            ),
            format!(
                "{quiet_mb:.1} MB ({} when the reads stopped, peak {})",
                super::mib(busy),
                super::mib(peak)
            ),
            quiet_mb <= 24.0 && layout.is_some(),
        );
    }
    server.check_alive()?;
    drop(writers);
    server.stop().await?;
    // The stopped server left everything in the database file itself.
    if let (Some(l), Some(db)) = (&layout, &server_db)
        && let Ok(meta) = std::fs::metadata(db)
    {
        let bytes = meta.len() as f64;
        report
            .figures
            .insert("db_bytes_per_message", bytes / l.messages as f64);
        report.notes.push(format!(
            "database file after the run: {:.1} MB, {:.0} B per message (search index, \
             users and conversations included)",
            bytes / 1e6,
            bytes / l.messages as f64
        ));
    }
    Ok(report)
}

struct ReadDone {
    latest: Histogram,
    before: Histogram,
    search: Histogram,
    /// Searches that find nothing (the wide searcher's).
    zero: Histogram,
    bad: u64,
}

/// What a reader task does.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// History pages.
    Read,
    /// Searches over all of its (1,000) conversations.
    Search,
    /// Searches of the member of every [`WIDE_EVERY`]-th conversation.
    WideSearch,
}

/// One reader: alternates a latest page and a `beforeId` page of a random
/// conversation, on one keep-alive connection, until `until`.
async fn read_loop(
    addr: std::net::SocketAddr,
    reader: User,
    gids: Vec<u64>,
    layout: Option<Layout>,
    until: Instant,
    seed: u64,
    mode: Mode,
) -> anyhow::Result<ReadDone> {
    let mut http = Http::new(addr);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut done = ReadDone {
        latest: Histogram::new(),
        before: Histogram::new(),
        search: Histogram::new(),
        zero: Histogram::new(),
        bad: 0,
    };
    let mut n = 0;
    while Instant::now() < until && n < MAX_REQUESTS {
        n += 1;
        let j = rng.below(gids.len() as u64) as usize;
        let gid = gids[j];
        if mode == Mode::WideSearch {
            // In turn: a word only other people's conversations hold (800
            // of every 1,000 messages, none of theirs), a phrase naming one
            // of theirs, a word in every message (a fifth of them theirs),
            // and a message number (one hit, theirs or not).
            let total = layout.as_ref().map_or(1, |l| l.messages.max(1));
            let mine = j - j % WIDE_EVERY;
            let path = match n % 4 {
                0 => format!("/api/message/search?q={ELSEWHERE}"),
                1 => format!("/api/message/search?q=conversation%20{mine}"),
                2 => "/api/message/search?q=history".to_owned(),
                _ => format!("/api/message/search?q={}", rng.below(total)),
            };
            let t = Instant::now();
            let body = http
                .call_raw(Method::GET, &path, Some(&reader.token), None)
                .await?;
            if n % 4 == 0 {
                done.zero.record(t.elapsed());
                // Found nothing, as it must: none of theirs holds the word.
                if !body.starts_with(br#"{"ok":true"#) || !body.ends_with(br#""data":[]}"#) {
                    done.bad += 1;
                }
            } else {
                done.search.record(t.elapsed());
                if !body.starts_with(br#"{"ok":true"#) {
                    done.bad += 1;
                }
            }
            continue;
        }
        if mode == Mode::Search {
            // Full-text search over all of the reader's conversations, in
            // turn: a message number (one hit), a phrase naming one
            // conversation, a word that is in every message, and that word
            // within one conversation (the worst case: every message there
            // matches).
            let total = layout.as_ref().map_or(1, |l| l.messages.max(1));
            let path = match n % 4 {
                0 => format!("/api/message/search?q={}", rng.below(total)),
                1 => format!("/api/message/search?q=conversation%20{j}"),
                2 => "/api/message/search?q=history".to_owned(),
                _ => format!("/api/message/search?q=history&gid={gid}"),
            };
            let t = Instant::now();
            let body = http
                .call_raw(Method::GET, &path, Some(&reader.token), None)
                .await?;
            done.search.record(t.elapsed());
            if !body.starts_with(br#"{"ok":true"#) {
                done.bad += 1;
            }
            continue;
        }
        let t = Instant::now();
        let body = http
            .call_raw(
                Method::POST,
                "/api/message/history",
                Some(&reader.token),
                Some(json!({"gid": gid, "size": PAGE})),
            )
            .await?;
        done.latest.record(t.elapsed());
        let (rows, oldest) = page_facts(&body);
        if rows < PAGE as usize {
            done.bad += 1;
        }
        let before_id = match &layout {
            Some(l) => l.id_at(j, rng.unit()),
            None => oldest.unwrap_or(1),
        };
        let t = Instant::now();
        let body = http
            .call_raw(
                Method::POST,
                "/api/message/history",
                Some(&reader.token),
                Some(json!({"gid": gid, "size": PAGE, "beforeId": before_id})),
            )
            .await?;
        done.before.record(t.elapsed());
        if !body.starts_with(br#"{"ok":true"#) {
            done.bad += 1;
        }
    }
    Ok(done)
}

/// How many messages a history answer holds, and the oldest one's id.
fn page_facts(body: &[u8]) -> (usize, Option<u64>) {
    let text = std::str::from_utf8(body).unwrap_or("");
    if !text.starts_with(r#"{"ok":true"#) {
        return (0, None);
    }
    const KEY: &str = r#""msg":{"id":"#;
    let rows = text.matches(KEY).count();
    let oldest = text.find(KEY).and_then(|at| {
        let digits: String = text[at + KEY.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    (rows, oldest)
}

/// xorshift64: enough randomness to pick pages, and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `n` messages into the stopped server's database in one
/// transaction, round-robin over the conversations, alternating between each
/// conversation's two writers; marks everything delivered and read so that
/// logins do not replay the bulk. Returns the id of the first message and
/// whether `PRAGMA optimize` gathered statistics on the messages.
fn bulk_load(db: &Path, gids: &[u64], writers: &[[u64; 2]], n: u64) -> anyhow::Result<(u64, bool)> {
    let conn = rusqlite::Connection::open(db)?;
    // A bulk load needs no fsync per row: one at the end (the checkpoint).
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;")?;
    let tx = conn.unchecked_transaction()?;
    let g = gids.len() as u64;
    let now = rim::time::now_ms();
    let mut first_id = 0;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO messages (gid, uid, kind, content, client_msg_id, created_at, updated_at)
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?5)",
        )?;
        let mut content = String::with_capacity(client::CONTENT_LEN);
        let mut cmid = String::with_capacity(16);
        for k in 0..n {
            use std::fmt::Write as _;
            let j = (k % g) as usize;
            let uid = writers[j][((k / g) % 2) as usize];
            content.clear();
            let _ = write!(content, "history message {k} in conversation {j}:");
            if !j.is_multiple_of(WIDE_EVERY) {
                let _ = write!(content, " {ELSEWHERE}");
            }
            while content.len() < client::CONTENT_LEN {
                content.push('.');
            }
            cmid.clear();
            let _ = write!(cmid, "h{k}");
            let at = now - (n - k) as i64;
            stmt.execute(rusqlite::params![gids[j], uid, content, cmid, at])?;
            if k == 0 {
                first_id = tx.last_insert_rowid() as u64;
            }
        }
    }
    tx.execute_batch(
        "UPDATE groups SET last_msg_id = (SELECT max(id) FROM messages m WHERE m.gid = groups.id);
         UPDATE members SET delivered_id = coalesce((SELECT last_msg_id FROM groups g WHERE g.id = members.gid), 0),
                            read_id = coalesce((SELECT last_msg_id FROM groups g WHERE g.id = members.gid), 0);",
    )?;
    tx.commit()?;
    // What the server's writer runs at every clean shutdown: a long-running
    // server has statistics on its tables, and they change query plans.
    conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);")?;
    let analyzed: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
            [],
            |r| r.get(0),
        )
        .and_then(|n: i64| {
            if n == 0 {
                return Ok(0);
            }
            conn.query_row(
                "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'messages'",
                [],
                |r| r.get(0),
            )
        })?;
    Ok((first_id, analyzed > 0))
}
