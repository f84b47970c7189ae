//! Scenario 6, limits: what this machine can do at all, measured in the same
//! run, so rim's figures can be read as fractions of it.
//!
//! - The raw WebSocket echo ceiling: a separate process (this binary in a
//!   hidden mode, `rim-bench --echo-server`) on the same stack as rim (hyper
//!   HTTP/1 with upgrades, hyper-tungstenite, rim's WebSocket buffer sizes,
//!   TCP_NODELAY) that sends every text frame straight back: no JSON, no
//!   session, no storage. Driven by the same clients closed-loop with the
//!   frames rim's `Heart` uses, it is the ceiling of rim's no-persistence
//!   path (a `Heart` is parsed and answered without touching the database),
//!   measured next.
//! - The raw SQLite ceiling: batched inserts of the same message rows into a
//!   fresh file with rim's schema and pragmas (opened by rim's public
//!   `store::schema::open_writer`: WAL, `synchronous = FULL`), with the load
//!   generator's own INSERT (the row and the conversation index, nothing
//!   else rim does per message), one transaction (one fsync) per batch,
//!   batches as large as rim's writer can form in the direct scenario. The
//!   latency of a one-row commit of the same INSERT is the floor under any
//!   acknowledgement on this disk, and rows arriving at a fixed rate,
//!   group-committed, give the floor under an ack's p99 at that rate. (rim's
//!   own per-message statements on a raw connection are not measured: they
//!   are private to `store`, and the benchmark is a client of rim's public
//!   API. The writer below runs them.)
//! - rim's writer, in process: the same rows stored through `store::Db`
//!   (opened with the shipped settings) by closed-loop tasks of this
//!   process, twice a batch of them so that the writer can form batches as
//!   large: its queue, thread, group commit and statements, without the
//!   network. Measured against the raw insert ceiling, this is issue 4's
//!   "the SQLite writer" target; the direct scenario's end-to-end rate is
//!   reported beside it as a note.
//!
//! Everything SQLite here runs in the load generator's process: its CPU is
//! under `gen`.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rusqlite::{Connection, params};
use tokio::net::{TcpListener, TcpStream};

use super::client;
use super::direct;
use super::hist::Histogram;
use super::load::{self, Client, FrameKind, Pace, Plan};
use super::sys::{Meter, Usage};
use super::target::{ServerSpec, Spawned};
use super::{Ctx, Report, Row, Scenario, rate};
use rim::config::{Config, Synchronous};
use rim::store::{Db, Kind, NewMessage, Options};

/// The most rows one raw batch holds: rim's default `storage.writer_batch`.
const MAX_BATCH: usize = 1024;

fn heart_plans(sockets: Vec<client::Ws>, echo: bool) -> Vec<(Client, Plan)> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let plan = Plan {
                pace: Pace::Closed { window: 1 },
                kind: FrameKind::Heart,
                echo,
                max_frames: 10_000_000,
                slow_read: None,
            };
            (Client::new(ws, i, 0), plan)
        })
        .collect()
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let sizes = ctx.sizes;
    let c = sizes.limits_connections.max(1);
    let secs = sizes.limits_secs;
    let mut report = Report::new(Scenario::Limits);

    // 1. The raw echo ceiling.
    ctx.progress(format_args!(
        "limits: raw WebSocket echo, {c} connections, {secs:.1} s"
    ));
    let mut cmd = Command::new(&ctx.opts.echo_exe);
    cmd.arg("--echo-server").stdin(Stdio::piped());
    let (echo, echo_addr) = Spawned::start(cmd).await?;
    let mut sockets = Vec::with_capacity(c);
    for _ in 0..c {
        sockets.push(client::ws_connect(echo_addr, 8 * 1024, None).await?);
    }
    let out = load::run_phase(heart_plans(sockets, true), secs, 0, None, Some(echo.pid())).await;
    let echo_rate = out.answered_per_sec();
    report.rows.push(
        Row::new(
            format!("raw echo (hyper + tungstenite), {c} conns"),
            out.answered,
            "msgs/s",
            out.usage,
        )
        .latency("round trip", &out.ack),
    );
    direct::problems(&mut report, "echo", &out);
    drop(out.clients);
    drop(echo);

    // 2. rim's no-persistence path: Heart frames, same clients, same load.
    ctx.progress(format_args!(
        "limits: rim Heart frames, {c} connections, {secs:.1} s"
    ));
    let mut server = ctx.server("limits", &ServerSpec::cheap(c + 1000)).await?;
    let users = client::users(server.addr, &ctx.accounts("h"), c, 32).await?;
    let tokens = users.iter().map(|u| u.token.clone()).collect();
    let sockets = client::ws_logins(server.addr, tokens, 8 * 1024, 256).await?;
    let out = load::run_phase(heart_plans(sockets, false), secs, 0, None, server.pid).await;
    server.check_alive()?;
    let heart_rate = out.answered_per_sec();
    report.rows.push(
        Row::new(
            format!("rim Heart (no storage), {c} conns"),
            out.answered,
            "msgs/s",
            out.usage,
        )
        .latency("ack", &out.ack),
    );
    direct::problems(&mut report, "rim Heart", &out);
    drop(out.clients);
    report.figures.insert("echo_msgs_per_sec", echo_rate);
    report.figures.insert("rim_heart_msgs_per_sec", heart_rate);
    let ratio = heart_rate / echo_rate.max(1e-9);
    report.check(
        "rim's no-persistence path >= 1/2 of the raw echo ceiling",
        format!(
            "{} of {} msgs/s = {:.2}",
            rate(heart_rate),
            rate(echo_rate),
            ratio
        ),
        ratio >= 0.5,
    );

    // 3. rim's persisted rate: from the direct scenario of this run, or measured now.
    let (rim_rate, senders) = match ctx
        .earlier
        .iter()
        .find(|r| r.scenario == "direct")
        .and_then(|r| {
            Some((
                r.figure("closed_loop_msgs_per_sec")?,
                r.figure("closed_loop_senders")?,
            ))
        }) {
        Some((rate, senders)) => (rate, senders as usize),
        None => {
            ctx.progress(format_args!(
                "limits: rim direct closed loop, {} pairs, {secs:.1} s",
                sizes.direct_pairs
            ));
            drop(users);
            server.stop().await?;
            server = ctx
                .server(
                    "limits-direct",
                    &ServerSpec::cheap(2 * sizes.direct_pairs + 1000),
                )
                .await?;
            let clients = direct::pairs(ctx, server.addr, sizes.direct_pairs, "d").await?;
            let n = clients.len();
            let plans = clients
                .into_iter()
                .map(|c| (c, direct::closed_plan(1)))
                .collect();
            let out = load::run_phase(plans, secs, 1, None, server.pid).await;
            server.check_alive()?;
            report.rows.push(
                Row::new(
                    format!("rim direct closed loop, {n} senders"),
                    out.answered,
                    "msgs/s",
                    out.usage,
                )
                .latency("ack", &out.ack),
            );
            (out.answered_per_sec(), n)
        }
    };
    server.stop().await?;

    // 4. The raw SQLite ceilings, on the same disk as rim's databases; each
    // raw measurement gets half the scenario's window.
    let batch = senders.clamp(1, MAX_BATCH);
    let window = Duration::from_secs_f64(secs / 2.0);
    ctx.progress(format_args!(
        "limits: raw SQLite inserts, batches of {batch}, {secs:.1} s"
    ));
    let dir = ctx.dir.clone();
    let offered = sizes.direct_rates.iter().copied().max().unwrap_or(5000);
    let raw =
        tokio::task::spawn_blocking(move || raw_sqlite(&dir, batch, window, offered)).await??;

    // 5. rim's writer, in process: twice a batch of senders, so that one
    // batch can queue while the other commits.
    let writers = 2 * batch;
    ctx.progress(format_args!(
        "limits: rim's writer in process, {writers} senders, {:.1} s",
        window.as_secs_f64()
    ));
    let writer = rim_writer(&ctx.dir, writers, window).await?;
    for (phase, rows, usage, hist, of) in [
        (
            format!("raw SQLite insert, batches of {batch}"),
            raw.insert_rows,
            raw.insert_usage,
            None,
            "",
        ),
        (
            format!("rim's writer in process, {writers} senders"),
            writer.rows,
            writer.usage,
            Some(&writer.ack),
            "ack",
        ),
        (
            "raw SQLite one-row commit (fsync floor)".into(),
            raw.commit_hist.count(),
            raw.commit_usage,
            Some(&raw.commit_hist),
            "commit",
        ),
        (
            format!("raw SQLite insert, {offered} rows/s offered"),
            raw.paced_hist.count(),
            raw.paced_usage,
            Some(&raw.paced_hist),
            "arrival-commit",
        ),
    ] {
        let mut row = Row::new(phase, rows, "rows/s", usage);
        if let Some(h) = hist {
            row = row.latency(of, h);
        }
        report.rows.push(row);
    }
    let insert_rate = raw.insert_rows as f64 / raw.insert_usage.secs;
    let writer_rate = writer.rows as f64 / writer.usage.secs;
    report
        .figures
        .insert("raw_insert_rows_per_sec", insert_rate);
    report
        .figures
        .insert("rim_writer_rows_per_sec", writer_rate);
    report.figures.insert(
        "rim_writer_ack_p99_ms",
        writer.ack.quantile_ns(0.99) as f64 / 1e6,
    );
    report.figures.insert(
        "commit_p50_ms",
        raw.commit_hist.quantile_ns(0.5) as f64 / 1e6,
    );
    report.figures.insert(
        "paced_commit_p99_ms",
        raw.paced_hist.quantile_ns(0.99) as f64 / 1e6,
    );
    report.notes.push(format!(
        "the disk alone, at {offered} rows/s offered with group commit and no network: \
         p99 {:.2} ms from a row's arrival to its commit (the floor under rim's ack p99 there)",
        raw.paced_hist.quantile_ns(0.99) as f64 / 1e6
    ));
    report.notes.push(format!(
        "rim's writer in process: {writers} tasks of this process storing messages through \
         rim's `Db`, no network; its CPU (writer thread included) is under gen; batches of \
         {:.0} messages on average, {} at most",
        writer.jobs as f64 / writer.batches.max(1) as f64,
        writer.largest_batch
    ));
    let ratio = writer_rate / insert_rate.max(1e-9);
    report.check(
        "rim's writer >= 1/2 of the raw batched-insert ceiling",
        format!(
            "{} of {} rows/s = {:.2}, in process",
            rate(writer_rate),
            rate(insert_rate),
            ratio
        ),
        ratio >= 0.5,
    );
    report.notes.push(format!(
        "end to end, for reference: the direct closed loop ({senders} senders over WebSockets) \
         persisted {} msgs/s = {:.2} of the raw batched-insert ceiling",
        rate(rim_rate),
        rim_rate / insert_rate.max(1e-9)
    ));
    Ok(report)
}

struct Raw {
    insert_rows: u64,
    insert_usage: Usage,
    commit_hist: Histogram,
    commit_usage: Usage,
    /// From arrival to commit of rows arriving at a fixed rate.
    paced_hist: Histogram,
    paced_usage: Usage,
}

/// The raw SQLite measurements, each on a fresh file, on this thread.
fn raw_sqlite(dir: &Path, batch: usize, window: Duration, offered: u64) -> anyhow::Result<Raw> {
    let (insert_rows, insert_usage) = {
        let (mut conn, gids) = fresh(dir, "raw-insert.db")?;
        let meter = Meter::start(None);
        let until = Instant::now() + window;
        let mut n = 0u64;
        while Instant::now() < until && n < 100_000_000 {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(INSERT)?;
                for _ in 0..batch {
                    insert(&mut stmt, &gids, n)?;
                    n += 1;
                }
            }
            tx.commit()?;
        }
        (n, meter.finish())
    };
    let (commit_hist, commit_usage) = {
        let (mut conn, gids) = fresh(dir, "raw-commit.db")?;
        let meter = Meter::start(None);
        let until = Instant::now() + window;
        let mut hist = Histogram::new();
        let mut n = 0u64;
        while Instant::now() < until && n < 10_000 {
            let t = Instant::now();
            let tx = conn.transaction()?;
            insert(&mut *tx.prepare_cached(INSERT)?, &gids, n)?;
            tx.commit()?;
            hist.record(t.elapsed());
            n += 1;
        }
        (hist, meter.finish())
    };
    // Rows arrive at `offered` per second; the loop commits, in one
    // transaction, every row that has arrived (group commit as rim's writer
    // does it), and times each row from its arrival to its commit.
    let (paced_hist, paced_usage) = {
        let (mut conn, gids) = fresh(dir, "raw-paced.db")?;
        let meter = Meter::start(None);
        let start = Instant::now();
        let until = start + window;
        let every = Duration::from_secs_f64(1.0 / offered.max(1) as f64);
        let mut hist = Histogram::new();
        let mut next = 0u64; // the next row to commit
        while Instant::now() < until && next < 10_000_000 {
            let now = Instant::now();
            let arrived = (now.duration_since(start).as_secs_f64() * offered as f64) as u64 + 1;
            if arrived <= next {
                std::thread::sleep((start + every * next as u32).saturating_duration_since(now));
                continue;
            }
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(INSERT)?;
                for n in next..arrived {
                    insert(&mut stmt, &gids, n)?;
                }
            }
            tx.commit()?;
            let done = Instant::now();
            for n in next..arrived {
                hist.record(done.saturating_duration_since(start + every * n as u32));
            }
            next = arrived;
        }
        (hist, meter.finish())
    };
    for name in ["raw-insert.db", "raw-commit.db", "raw-paced.db"] {
        remove_db(dir, name);
    }
    Ok(Raw {
        insert_rows,
        insert_usage,
        commit_hist,
        commit_usage,
        paced_hist,
        paced_usage,
    })
}

/// A fresh database with rim's schema and pragmas, 100 two-member
/// conversations; returns it and the (gid, sender) pairs.
fn fresh(dir: &Path, name: &str) -> anyhow::Result<(Connection, Vec<(u64, u64)>)> {
    let path = dir.join(name);
    remove_db(dir, name);
    let mut conn = rim::store::schema::open_writer(&path, Synchronous::Full, 0)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // One transaction: one fsync, not one per row.
    let tx = conn.transaction()?;
    let pairs = conversations(&tx)?;
    tx.commit()?;
    Ok((conn, pairs))
}

/// The users, conversations and members of [`fresh`].
fn conversations(c: &Connection) -> anyhow::Result<Vec<(u64, u64)>> {
    let now = rim::time::now_ms();
    let mut pairs = Vec::new();
    for i in 0..100u64 {
        for uid in [2 * i + 1, 2 * i + 2] {
            c.execute(
                "INSERT INTO users (id, account, name, password_hash, created_at) VALUES (?1, ?2, ?2, 'x', ?3)",
                params![uid, format!("raw{uid}"), now],
            )?;
        }
        c.execute(
            "INSERT INTO groups (id, name, mode, creator_uid, created_at) VALUES (?1, '', 1, ?2, ?3)",
            params![i + 1, 2 * i + 1, now],
        )?;
        for uid in [2 * i + 1, 2 * i + 2] {
            c.execute(
                "INSERT INTO members (gid, uid, role, joined_at) VALUES (?1, ?2, 1, ?3)",
                params![i + 1, uid, now],
            )?;
        }
        pairs.push((i + 1, 2 * i + 1));
    }
    Ok(pairs)
}

/// Removes database `name` of `dir` with its companion files.
fn remove_db(dir: &Path, name: &str) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(dir.join(format!("{name}{suffix}")));
    }
}

/// Row `n` of every SQLite measurement: the conversations of [`fresh`] by
/// turns, the load generator's message content, and a clientMsgId of its
/// own, so that rim's duplicate check looks and finds nothing, as for any
/// new message.
fn message(gids: &[(u64, u64)], n: u64) -> NewMessage {
    let (gid, uid) = gids[(n as usize) % gids.len()];
    NewMessage {
        gid,
        uid,
        kind: Kind::Text,
        content: client::content(n, 0, n),
        client_msg_id: n.to_string(),
        file: None,
        reply_to: None,
    }
}

/// The raw insert: the message row and the conversation index of rim's
/// schema, with none of rim's per-message work (membership, resends, search
/// index, positions). The statement is the load generator's own, against
/// the schema `fresh` created: it is about SQLite and this disk, not rim.
const INSERT: &str =
    "INSERT INTO messages (gid, uid, kind, content, client_msg_id, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";

/// Inserts row `n` with [`INSERT`], inside the caller's transaction.
fn insert(stmt: &mut rusqlite::Statement<'_>, gids: &[(u64, u64)], n: u64) -> anyhow::Result<()> {
    let m = message(gids, n);
    stmt.execute(params![
        m.gid,
        m.uid,
        m.kind.as_u8(),
        m.content,
        m.client_msg_id,
        rim::time::now_ms()
    ])?;
    Ok(())
}

// ---- rim's writer, in process ------------------------------------------------------

/// The most messages one in-process sender stores: bounds the loop in count.
const MAX_PER_SENDER: u64 = 1_000_000;

/// The database of the in-process writer, in the scenario's directory.
const WRITER_DB: &str = "rim-writer.db";

/// What rim's writer did in process.
struct Writer {
    rows: u64,
    usage: Usage,
    /// From handing a message to `Db` to getting its committed result.
    ack: Histogram,
    jobs: u64,
    batches: u64,
    largest_batch: u64,
}

/// rim's storage writer on its own: the rows of [`message`] stored for
/// `window` through a `Db` on a fresh file by `senders` tasks on this
/// runtime, each sending its next message as soon as the previous one is
/// acknowledged. What this leaves out of rim's persisted path is the
/// network, the JSON and the sessions; what it keeps is the writer's queue,
/// thread, group commit and statements.
async fn rim_writer(dir: &Path, senders: usize, window: Duration) -> anyhow::Result<Writer> {
    let path = dir.to_owned();
    let (db, gids) = tokio::task::spawn_blocking(move || open_db(&path)).await??;
    let gids = Arc::new(gids);
    let meter = Meter::start(None);
    let until = Instant::now() + window;
    let tasks: Vec<_> = (0..senders)
        .map(|i| tokio::spawn(sender(db.clone(), gids.clone(), i, senders, until)))
        .collect();
    let mut ack = Histogram::new();
    let mut rows = 0;
    let mut failed = None;
    for task in tasks {
        match task.await? {
            Ok((n, hist)) => {
                rows += n;
                ack.merge(&hist);
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    let usage = meter.finish();
    let stats = db.writer_stats();
    db.close().await;
    remove_db(dir, WRITER_DB);
    if let Some(e) = failed {
        return Err(e).context("rim's writer refused a message");
    }
    Ok(Writer {
        rows,
        usage,
        ack,
        jobs: stats.jobs,
        batches: stats.batches,
        largest_batch: stats.largest_batch,
    })
}

/// A database of [`fresh`], opened by rim's `Db` with the shipped settings
/// (`synchronous = FULL`, writer batches of up to 1024). Blocking.
fn open_db(dir: &Path) -> anyhow::Result<(Db, Vec<(u64, u64)>)> {
    let (conn, gids) = fresh(dir, WRITER_DB)?;
    drop(conn);
    let config = Config {
        db: dir.join(WRITER_DB),
        ..Config::default()
    };
    Ok((Db::open(&Options::from_config(&config))?, gids))
}

/// One closed-loop sender: rows `first`, `first + step`, ... until `until`.
/// It goes through `queue_message`, the call rim's message path makes
/// (a message job without a savepoint), with nothing to push.
async fn sender(
    db: Db,
    gids: Arc<Vec<(u64, u64)>>,
    first: usize,
    step: usize,
    until: Instant,
) -> rim::error::Result<(u64, Histogram)> {
    let mut hist = Histogram::new();
    let mut sent = 0u64;
    let mut n = first as u64;
    while Instant::now() < until && sent < MAX_PER_SENDER {
        let t = Instant::now();
        db.queue_message(message(&gids, n), |_| {}).await?.await?;
        hist.record(t.elapsed());
        sent += 1;
        n += step as u64;
    }
    Ok((sent, hist))
}

// ---- the echo server -------------------------------------------------------------

/// `rim-bench --echo-server`: serves a raw WebSocket echo on 127.0.0.1, logs
/// `listening addr=...` like `rim serve`, and exits when its stdin closes
/// (that is, when the benchmark that started it is gone).
pub fn echo_server_main() -> anyhow::Result<()> {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        eprintln!("rim-echo listening addr={}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(echo_connection(stream));
        }
    })
}

async fn echo_connection(stream: TcpStream) {
    let service = service_fn(|mut req| async move {
        let config = rim::ws::websocket_config(64 * 1024);
        let (resp, websocket) = hyper_tungstenite::upgrade(&mut req, Some(config))?;
        tokio::spawn(async move {
            let Ok(mut ws) = websocket.await else { return };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        Ok::<_, hyper_tungstenite::tungstenite::error::ProtocolError>(resp.map(|b: Full<Bytes>| b))
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}
