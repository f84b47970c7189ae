//! Scenario 1, idle: N logged-in WebSocket connections that only send a
//! heartbeat now and then. Measures what a connection costs the server in
//! memory (RSS after minus RSS before, divided by N), what the server costs
//! at rest (RSS of a fresh server), and the CPU it burns keeping N
//! connections alive (timers, heartbeats).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hyper::Method;

use super::client::{self, Http};
use super::hist::Histogram;
use super::load::{self, Client, FrameKind, Pace, Plan};
use super::sys::{self, Meter};
use super::target::ServerSpec;
use super::{Ctx, Report, Row, Scenario, mib};

/// Client read buffer of an idle connection; pushes are rare and small.
const READ_BUFFER: usize = 2048;

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let n = ctx.sizes.idle_connections;
    let mut report = Report::new(Scenario::Idle);
    let mut server = ctx.server("idle", &ServerSpec::cheap(n + 1000)).await?;
    let pid = server.pid;
    // A moment for the fresh server to finish starting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_rss = pid.and_then(sys::rss_kib);

    ctx.progress(format_args!("idle: registering and logging in {n} users"));
    let meter = Meter::start(pid);
    let users = client::users(server.addr, &ctx.accounts("i"), n, 32).await?;
    report.rows.push(Row::new(
        "setup: register + login (REST)",
        2 * n as u64,
        "req/s",
        meter.finish(),
    ));
    server.check_alive()?;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_rss = pid.and_then(sys::rss_kib);
    ctx.progress(format_args!("idle: opening {n} WebSocket connections"));
    let meter = Meter::start(pid);
    let addr = server.addr;
    let timed: Vec<anyhow::Result<(client::Ws, Duration)>> =
        futures_util::stream::iter(users.iter().map(|u| u.token.clone()))
            .map(|token| async move {
                let t = Instant::now();
                let ws = client::ws_login(addr, &token, READ_BUFFER).await?;
                Ok((ws, t.elapsed()))
            })
            .buffer_unordered(256)
            .collect()
            .await;
    let connect_usage = meter.finish();
    let mut connect_hist = Histogram::new();
    let mut sockets = Vec::with_capacity(n);
    for r in timed {
        let (ws, took) = r?;
        connect_hist.record(took);
        sockets.push(ws);
    }
    report.rows.push(
        Row::new(
            "connect + Login (WebSocket)",
            n as u64,
            "conns/s",
            connect_usage,
        )
        .latency("connect+login", &connect_hist),
    );

    let mut http = Http::new(server.addr);
    let health = http.call(Method::GET, "/healthz", None, None).await?;
    let online = health["connections"].as_u64().unwrap_or(0);
    if online < n as u64 {
        anyhow::bail!("the server counts {online} logged-in connections, expected {n}");
    }
    drop(http);

    // Let allocator and kernel settle before reading memory.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_rss = pid.and_then(sys::rss_kib);

    let every = Duration::from_secs_f64(ctx.sizes.heartbeat_secs);
    let clients: Vec<(Client, Plan)> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let plan = Plan {
                pace: Pace::Open {
                    every,
                    offset: every.mul_f64(i as f64 / n as f64),
                },
                kind: FrameKind::Heart,
                echo: false,
                max_frames: u64::MAX,
                slow_read: None,
            };
            (Client::new(ws, i, 0), plan)
        })
        .collect();
    ctx.progress(format_args!(
        "idle: holding {n} connections for {:.1} s",
        ctx.sizes.idle_secs
    ));
    let held = load::run_phase(clients, ctx.sizes.idle_secs, 0, None, pid).await;
    let idle_usage = held.usage;
    report.rows.push(
        Row::new(
            format!(
                "{n} idle conns, Heart every {:.0} s",
                ctx.sizes.heartbeat_secs
            ),
            held.answered,
            "hearts/s",
            idle_usage,
        )
        .latency("ack", &held.ack),
    );
    if held.errors + held.lost > 0 {
        report.problems.push(format!(
            "{} heartbeats failed, {} connections closed",
            held.errors + held.lost,
            held.closed
        ));
    }
    let end_rss = pid.and_then(sys::rss_kib);
    drop(held.clients);
    server.check_alive()?;
    server.stop().await?;

    if let (Some(start), Some(before), Some(after)) = (start_rss, before_rss, after_rss) {
        let per_conn = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
        report.figures.insert("start_rss_kib", start as f64);
        report.figures.insert("rss_per_connection_bytes", per_conn);
        report
            .figures
            .insert("rss_with_connections_kib", after as f64);
        report.check(
            format!("RSS per logged-in connection at {n} connections <= 8 KiB"),
            format!(
                "{:.1} KiB ({} before the connections, {} with them)",
                per_conn / 1024.0,
                mib(before),
                mib(after)
            ),
            per_conn <= 8192.0,
        );
        report.check(
            "idle server RSS < 15 MB (fresh server, no connections)",
            format!("{:.1} MB", start as f64 * 1024.0 / 1e6),
            (start as f64 * 1024.0) < 15e6,
        );
        if let Some(end) = end_rss {
            report.figures.insert("rss_end_kib", end as f64);
        }
    } else {
        report
            .notes
            .push("server memory unknown (give --pid with --url)".into());
    }
    if let Some(cpu) = idle_usage.server_cpu_secs {
        let share = cpu / idle_usage.secs;
        report.figures.insert("idle_cpu_share", share);
        report.notes.push(format!(
            "idle CPU with {n} connections: {:.1} % of one core ({:.1} µs per connection per second)",
            share * 100.0,
            share * 1e6 / n as f64
        ));
    }
    Ok(report)
}
