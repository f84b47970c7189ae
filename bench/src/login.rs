//! Scenario 5, login: a register/login storm at the shipped argon2id cost
//! (7,168 KiB, 5 iterations, 1 lane: one of OWASP's settings), and what it does to everyone
//! else. Pairs of users exchange messages at a fixed rate, first alone, then
//! while dozens of clients log in (and now and then register) as fast as the
//! server lets them. Password hashing runs on the blocking pool behind a
//! semaphore sized to the cores; the question is whether the message
//! latency of the others stays within 2x.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use super::client::{self, Http, PASSWORD};
use super::direct;
use super::hist::Histogram;
use super::load::{self, FrameKind};
use super::sys::Meter;
use super::target::ServerSpec;
use super::{Ctx, Report, Row, Scenario, rate};

/// One storm request in this many registers a new account; the rest log in.
const REGISTER_EVERY: u64 = 4;
/// Requests one storm client makes at most (the time bound comes first).
const MAX_REQUESTS: u64 = 100_000;

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let sizes = ctx.sizes;
    let mut report = Report::new(Scenario::Login);
    let spec = ServerSpec::owasp(1000 + 2 * sizes.login_pairs + sizes.login_concurrency);
    let mut server = ctx.server("login", &spec).await?;
    let addr = server.addr;
    let pid = server.pid;

    ctx.progress(format_args!(
        "login: registering {} users at OWASP argon2 cost",
        sizes.login_users + 2 * sizes.login_pairs
    ));
    let meter = Meter::start(pid);
    let storm_users = client::users(addr, &ctx.accounts("s"), sizes.login_users.max(1), 8).await?;
    let clients = direct::pairs(ctx, addr, sizes.login_pairs.max(1), "l").await?;
    let registered = storm_users.len() + clients.len();
    report.rows.push(Row::new(
        format!("setup: {registered} registrations + logins, 2 hashes each"),
        2 * registered as u64,
        "hashes/s",
        meter.finish(),
    ));

    // One login at a time: what a hash costs on an idle server.
    let mut alone = Histogram::new();
    let meter = Meter::start(pid);
    let mut http = Http::new(addr);
    for i in 0..5 {
        let t = Instant::now();
        client::login(&mut http, &storm_users[i % storm_users.len()].account).await?;
        alone.record(t.elapsed());
    }
    report.rows.push(
        Row::new("one login at a time", 5, "logins/s", meter.finish()).latency("request", &alone),
    );

    ctx.progress(format_args!(
        "login: {} msgs/s without a storm, {:.1} s",
        sizes.login_rate, sizes.login_secs
    ));
    let plans = direct::open_plans(clients, sizes.login_rate, sizes.login_secs, FrameKind::Msg);
    let quiet = load::run_phase(plans, sizes.login_secs, 1, None, pid).await;
    report.rows.push(
        Row::new(
            format!("{} msgs/s, no storm", sizes.login_rate),
            quiet.answered,
            "msgs/s",
            quiet.usage,
        )
        .latency("ack", &quiet.ack),
    );
    direct::problems(&mut report, "no storm", &quiet);

    ctx.progress(format_args!(
        "login: the same with {} clients logging in, {:.1} s",
        sizes.login_concurrency, sizes.login_secs
    ));
    let until = Instant::now() + Duration::from_secs_f64(sizes.login_secs);
    let accounts = Arc::new(
        storm_users
            .iter()
            .map(|u| u.account.clone())
            .collect::<Vec<_>>(),
    );
    let storm: Vec<_> = (0..sizes.login_concurrency)
        .map(|w| {
            let accounts = accounts.clone();
            let prefix = ctx.accounts(&format!("r{w}x"));
            tokio::spawn(storm_client(addr, accounts, prefix, w, until))
        })
        .collect();
    let plans = direct::open_plans(
        quiet.clients,
        sizes.login_rate,
        sizes.login_secs,
        FrameKind::Msg,
    );
    let stormy = load::run_phase(plans, sizes.login_secs, 1, None, pid).await;
    let mut logins = Histogram::new();
    let mut registrations = Histogram::new();
    let mut failed = 0;
    for s in storm {
        let done = s.await??;
        logins.merge(&done.logins);
        registrations.merge(&done.registrations);
        failed += done.failed;
    }
    server.check_alive()?;
    report.rows.push(
        Row::new(
            format!("{} msgs/s during the storm", sizes.login_rate),
            stormy.answered,
            "msgs/s",
            stormy.usage,
        )
        .latency("ack", &stormy.ack),
    );
    direct::problems(&mut report, "storm", &stormy);
    report.rows.push(
        Row::new(
            format!("storm: logins, {} clients", sizes.login_concurrency),
            logins.count(),
            "logins/s",
            stormy.usage,
        )
        .latency("request", &logins),
    );
    report.rows.push(
        Row::new(
            "storm: registrations",
            registrations.count(),
            "regs/s",
            stormy.usage,
        )
        .latency("request", &registrations),
    );
    if failed > 0 {
        report
            .problems
            .push(format!("{failed} storm requests failed"));
    }
    let hashes = (logins.count() + registrations.count()) as f64 / stormy.usage.secs;
    let hash_ms = alone.quantile_ns(0.5) as f64 / 1e6;
    report.figures.insert("hashes_per_sec", hashes);
    report.notes.push(format!(
        "{} hashes/s in the storm; one login alone takes {hash_ms:.1} ms (hash, session \
         write, HTTP): at most {:.1} logins' worth of work at once on {} cores, so hashing \
         stayed bounded",
        rate(hashes),
        hashes * hash_ms / 1000.0,
        super::sys::cores()
    ));
    if let Some(peak) = stormy.usage.server_peak_rss_kib {
        report.figures.insert("storm_peak_rss_kib", peak as f64);
        report.notes.push(format!(
            "server peak RSS {} after {} hashes at the shipped cost",
            super::mib(peak),
            2 * registered as u64 + 5 + logins.count() + registrations.count()
        ));
    }
    let before = quiet.ack.quantile_ns(0.99) as f64 / 1e6;
    let during = stormy.ack.quantile_ns(0.99) as f64 / 1e6;
    report
        .figures
        .insert("others_p99_ratio", during / before.max(1e-9));
    report.check(
        "others' WebSocket p99 during a login storm <= 2x without it",
        format!(
            "ack p99 {during:.2} ms during, {before:.2} ms without ({:.1}x)",
            during / before.max(1e-9)
        ),
        during <= 2.0 * before,
    );
    drop(stormy.clients);
    server.stop().await?;
    Ok(report)
}

struct StormDone {
    logins: Histogram,
    registrations: Histogram,
    failed: u64,
}

/// One storm client on its own keep-alive connection: logs in to the storm
/// accounts in turn and every [`REGISTER_EVERY`]th request registers a new one.
async fn storm_client(
    addr: SocketAddr,
    accounts: Arc<Vec<String>>,
    prefix: String,
    worker: usize,
    until: Instant,
) -> anyhow::Result<StormDone> {
    let mut http = Http::new(addr);
    let mut done = StormDone {
        logins: Histogram::new(),
        registrations: Histogram::new(),
        failed: 0,
    };
    let mut k = 0u64;
    // Every client makes at least one request of each kind, however short
    // the storm (the smoke test's, on a busy machine): a registration
    // first, then logins.
    while (Instant::now() < until || k < 2) && k < MAX_REQUESTS {
        k += 1;
        let t = Instant::now();
        if (k - 1).is_multiple_of(REGISTER_EVERY) {
            let body = json!({"account": format!("{prefix}{k}"), "password": PASSWORD});
            match http
                .call(Method::POST, "/api/user/create", None, Some(body))
                .await
            {
                Ok(_) => done.registrations.record(t.elapsed()),
                Err(_) => done.failed += 1,
            }
        } else {
            let account = &accounts[(worker + k as usize) % accounts.len()];
            match client::login(&mut http, account).await {
                Ok(_) => done.logins.record(t.elapsed()),
                Err(_) => done.failed += 1,
            }
        }
    }
    Ok(done)
}
