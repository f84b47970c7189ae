//! Scenario memory: what the server holds on a small machine, measured from
//! outside (`/proc/<pid>/status`: VmRSS now, VmHWM the peak) with the
//! shipped defaults, in three parts.
//!
//! 1. Hashing: a fresh server at the OWASP argon2 cost with three hashing
//!    threads (a 4-core Raspberry Pi's default); its peak at start, then one
//!    registration and 100 logins, three at a time, then a quiet spell: the
//!    memory a hash works in (7 MiB) must be given back.
//! 2. The WAL: direct messages as fast as the server takes them, then a
//!    quiet spell: what is left of `rim.db-wal` on disk.
//! 3. A crowd: N users connected to a server inside a memory cgroup (5,000
//!    in 64 MiB, 10,000 in 128 MiB), 100 of whom register and log in over
//!    REST at the OWASP cost in between, while the ones before them stay
//!    connected; held with heartbeats, then 1,000 messages fanned out to a
//!    100-member group: no OOM kill, every delivery arrives. The other
//!    accounts are made beforehand, by a server with a cheap hash (all of
//!    them at full cost would take half an hour of hashing here).
//!
//! The 1M-message database's memory after reads and a quiet spell is
//! measured by the `history` scenario, which builds that database.
//! Not in a default run (it takes minutes and root, for the cgroup): run it
//! with `--scenario memory`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cgroup::Cgroup;
use super::client::{self, Http};
use super::direct;
use super::hist::Histogram;
use super::load::{self, Client, FanoutTracker, FrameKind, Pace, Plan};
use super::sys::{self, Meter};
use super::target::{ServerSpec, Target};
use super::{Ctx, Report, Row, Scenario, mib};

/// Users registered (and connected) per wave of the crowd.
const WAVE: usize = 500;
/// Members of the crowd's group, and messages fanned out to it.
const GROUP: usize = 100;
/// Client read buffer of a crowd connection.
const READ_BUFFER: usize = 2048;

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let mut report = Report::new(Scenario::Memory);
    if ctx.opts.url.is_some() {
        anyhow::bail!("the memory scenario starts its own servers; run it without --url");
    }
    hashing(ctx, &mut report).await?;
    wal(ctx, &mut report).await?;
    for &(n, limit_mib) in &ctx.sizes.memory_crowds {
        crowd(ctx, &mut report, n, limit_mib).await?;
    }
    Ok(report)
}

/// Part 1: hashing memory taken per hash and given back.
async fn hashing(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let sizes = ctx.sizes;
    let spec = ServerSpec {
        hash_concurrency: Some(3),
        ..ServerSpec::owasp(1000)
    };
    let mut server = ctx.server("memory-hash", &spec).await?;
    let pid = server.pid.expect("a child server");
    let addr = server.addr;
    let start_rss = sys::rss_kib(pid).unwrap_or(0);
    let start_peak = sys::peak_rss_kib(pid).unwrap_or(0);

    let logins = sizes.memory_logins.max(1);
    ctx.progress(format_args!(
        "memory: 1 registration and {logins} logins at OWASP cost, 3 hashing threads"
    ));
    let meter = Meter::start(Some(pid));
    let user = client::users(addr, &ctx.accounts("m"), 1, 1)
        .await?
        .remove(0);
    // The registration logged in once; the rest three at a time, so that
    // every hashing thread hashes.
    let times: Vec<anyhow::Result<Histogram>> = futures_util::future::join_all((0..3).map(|w| {
        let account = user.account.clone();
        async move {
            let mut http = Http::new(addr);
            let mut h = Histogram::new();
            for _ in (w..logins - 1).step_by(3) {
                let t = Instant::now();
                client::login(&mut http, &account).await?;
                h.record(t.elapsed());
            }
            Ok(h)
        }
    }))
    .await;
    let mut hist = Histogram::new();
    for t in times {
        hist.merge(&t?);
    }
    report.rows.push(
        Row::new(
            format!("1 registration + {logins} logins, 3 at a time"),
            logins as u64,
            "logins/s",
            meter.finish(),
        )
        .latency("request", &hist),
    );
    let busy_rss = sys::rss_kib(pid).unwrap_or(0);
    ctx.progress(format_args!(
        "memory: {:.0} s quiet",
        sizes.memory_quiet_secs
    ));
    tokio::time::sleep(Duration::from_secs_f64(sizes.memory_quiet_secs)).await;
    let quiet_rss = sys::rss_kib(pid).unwrap_or(0);
    let peak = sys::peak_rss_kib(pid).unwrap_or(0);
    server.check_alive()?;
    server.stop().await?;

    report
        .figures
        .insert("hash_start_rss_kib", start_rss as f64);
    report
        .figures
        .insert("hash_start_peak_kib", start_peak as f64);
    report
        .figures
        .insert("hash_after_logins_rss_kib", busy_rss as f64);
    report
        .figures
        .insert("hash_quiet_rss_kib", quiet_rss as f64);
    report.figures.insert("hash_peak_kib", peak as f64);
    report.check(
        "no argon2 buffer at start: peak RSS of a fresh server < 15 MB",
        format!(
            "{:.1} MB peak at start ({:.1} MB now)",
            mb(start_peak),
            mb(start_rss)
        ),
        mb(start_peak) < 15.0,
    );
    report.check(
        format!(
            "RSS <= 12 MB {:.0} s after 1 registration and {logins} logins (OWASP, 3 threads)",
            sizes.memory_quiet_secs
        ),
        format!(
            "{:.1} MB ({:.1} MB right after the logins, peak {:.1} MB)",
            mb(quiet_rss),
            mb(busy_rss),
            mb(peak)
        ),
        mb(quiet_rss) <= 12.0,
    );
    Ok(())
}

/// Whether a server whose requests failed has exited (the kernel's OOM
/// kill and the failed request race; it is given two seconds).
async fn died(server: &mut Target) -> bool {
    for _ in 0..100 {
        if server.check_alive().is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn file_len(path: &std::path::Path, suffix: &str) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Part 2: the WAL after load and a quiet spell.
async fn wal(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let sizes = ctx.sizes;
    let pairs = sizes.memory_wal_pairs.max(1);
    let mut server = ctx
        .server("memory-wal", &ServerSpec::cheap(1000 + 2 * pairs))
        .await?;
    let pid = server.pid;
    let db = super::db_path(&server)?.to_owned();
    let clients = direct::pairs(ctx, server.addr, pairs, "w").await?;
    ctx.progress(format_args!(
        "memory: {pairs} pairs writing as fast as they can for {:.1} s",
        sizes.memory_wal_secs
    ));
    let plans = clients
        .into_iter()
        .map(|c| (c, direct::closed_plan(4)))
        .collect();
    let out = load::run_phase(plans, sizes.memory_wal_secs, 1, None, pid).await;
    report.rows.push(
        Row::new(
            format!("{pairs} pairs, 4 in flight each"),
            out.answered,
            "msgs/s",
            out.usage,
        )
        .latency("ack", &out.ack),
    );
    direct::problems(report, "WAL load", &out);
    let loaded_wal = file_len(&db, "-wal");
    let loaded_rss = pid.and_then(sys::rss_kib).unwrap_or(0);
    ctx.progress(format_args!(
        "memory: {:.0} s quiet",
        sizes.memory_quiet_secs
    ));
    tokio::time::sleep(Duration::from_secs_f64(sizes.memory_quiet_secs)).await;
    let quiet_wal = file_len(&db, "-wal");
    let quiet_rss = pid.and_then(sys::rss_kib).unwrap_or(0);
    server.check_alive()?;
    let db_bytes = file_len(&db, "");
    drop(out.clients);
    server.stop().await?;
    report
        .figures
        .insert("wal_after_load_bytes", loaded_wal as f64);
    report.figures.insert("wal_quiet_bytes", quiet_wal as f64);
    report.figures.insert("wal_db_bytes", db_bytes as f64);
    report.check(
        format!(
            "WAL <= 4 MB on disk {:.0} s after load stops",
            sizes.memory_quiet_secs
        ),
        format!(
            "{:.2} MB ({:.1} MB when the load stopped; RSS {} then, {} quiet)",
            quiet_wal as f64 / 1e6,
            loaded_wal as f64 / 1e6,
            mib(loaded_rss),
            mib(quiet_rss)
        ),
        quiet_wal <= 4_000_000,
    );
    report.notes.push(format!(
        "WAL load: {} messages stored in a {:.1} MB database ({:.0} B per message, users and \
         conversations included)",
        out.answered,
        db_bytes as f64 / 1e6,
        db_bytes as f64 / out.answered.max(1) as f64
    ));
    Ok(())
}

/// Part 3: `n` users registering, logging in and staying connected inside
/// `limit_mib` (0: no cgroup), then a fan-out.
async fn crowd(ctx: &Ctx<'_>, report: &mut Report, n: usize, limit_mib: u64) -> anyhow::Result<()> {
    let sizes = ctx.sizes;
    let name = format!("crowd {n}");
    let group = if limit_mib == 0 {
        None
    } else {
        match Cgroup::create(
            &format!("rim-bench-{}", std::process::id()),
            limit_mib << 20,
        ) {
            Ok(g) => Some(g),
            Err(e) => {
                report.notes.push(format!(
                    "{name}: no {limit_mib} MiB cgroup ({e:#}); measured without a limit"
                ));
                None
            }
        }
    };
    let limit = match &group {
        Some(g) => format!("in a {limit_mib} MiB cgroup ({})", g.version()),
        None => "without a memory limit".to_owned(),
    };
    let db = ctx.dir.join(format!("memory-crowd-{n}.db"));
    let late = sizes.memory_crowd_owasp_users.min(n.saturating_sub(2));
    let early = n - late;
    // Most accounts are made beforehand by a server with a cheap hash: at
    // the OWASP cost, 2 x 5,000 hashes on one hashing thread take half an
    // hour on a shared 2-core machine, and what the limit is about is the
    // server below holding everyone while hashes run. Their stored hashes
    // and tokens work the same on it.
    ctx.progress(format_args!(
        "memory: {early} accounts made beforehand (cheap hash), for {name}"
    ));
    let maker = Target::start(
        &ctx.opts.server_exe,
        &ctx.dir,
        &db,
        &ServerSpec::cheap(1000),
    )
    .await?;
    let made = client::users(maker.addr, &ctx.accounts(&format!("c{n}e")), early, 32).await?;
    let members: Vec<u64> = made.iter().take(GROUP).map(|u| u.uid).collect();
    // Only friends can be put in a group.
    let others: Vec<_> = made.iter().take(GROUP).skip(1).cloned().collect();
    client::befriend_all(maker.addr, &made[0], others, 32).await?;
    let gid = client::group(&mut Http::new(maker.addr), &made[0], "crowd", &members).await?;
    maker.stop().await?;

    let spec = ServerSpec::owasp(n + 1000);
    let mut server = Target::start_in(
        &ctx.opts.server_exe,
        &ctx.dir,
        &db,
        &spec,
        group.as_ref().map(|g| g.procs()).as_deref(),
    )
    .await?;
    let addr = server.addr;
    let pid = server.pid;

    ctx.progress(format_args!(
        "memory: {early} users connect {limit}, {WAVE} at a time, and between the waves \
         {late} more register and log in over REST at OWASP cost"
    ));
    let meter = Meter::start(pid);
    let mut sockets: Vec<client::Ws> = Vec::with_capacity(n);
    let mut oom_at = None;
    let waves = early.div_ceil(WAVE);
    for wave in 0..waves {
        let tokens = made
            .iter()
            .skip(wave * WAVE)
            .take(WAVE)
            .map(|u| u.token.clone())
            .collect();
        let connected = client::ws_logins(addr, tokens, READ_BUFFER, 256).await;
        // Then this wave's share of the accounts made now, at full cost,
        // while everyone before them stays connected.
        let share = late * (wave + 1) / waves - late * wave / waves;
        let registered = match connected {
            Ok(s) => {
                sockets.extend(s);
                client::users(addr, &ctx.accounts(&format!("c{n}o{wave}u")), share, 8).await
            }
            Err(e) => Err(e),
        };
        let connected = match registered {
            Ok(fresh) => {
                let tokens = fresh.iter().map(|u| u.token.clone()).collect();
                client::ws_logins(addr, tokens, READ_BUFFER, 256).await
            }
            Err(e) => Err(e),
        };
        match connected {
            Ok(s) => sockets.extend(s),
            Err(e) => {
                if !died(&mut server).await {
                    return Err(e);
                }
                oom_at = Some(sockets.len());
                report.problems.push(format!(
                    "{name}: the server died with {} connections open ({} OOM kills in its cgroup): {e:#}",
                    sockets.len(),
                    group.as_ref().and_then(Cgroup::oom_kills).unwrap_or(0)
                ));
                break;
            }
        }
    }
    let setup = meter.finish();
    report.rows.push(Row::new(
        format!("{name}: connect, {late} register + login (REST) among them, {limit}"),
        sockets.len() as u64,
        "users/s",
        setup,
    ));
    if let Some(at) = oom_at {
        report.check(
            format!("{name} {limit}: no OOM kill, every delivery arrives"),
            format!(
                "killed with {at} connections open (cgroup peak {})",
                group
                    .as_ref()
                    .and_then(Cgroup::peak_kib)
                    .map_or("-".into(), mib)
            ),
            false,
        );
        return Ok(());
    }
    let connected_rss = pid.and_then(sys::rss_kib).unwrap_or(0);

    let every = Duration::from_secs_f64(sizes.heartbeat_secs);
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
            (Client::new(ws, i, gid), plan)
        })
        .collect();
    ctx.progress(format_args!(
        "memory: holding {n} connections for {:.0} s",
        sizes.memory_hold_secs
    ));
    let held = load::run_phase(clients, sizes.memory_hold_secs, 0, None, pid).await;
    report.rows.push(
        Row::new(
            format!("{name}: held, Heart every {:.0} s", sizes.heartbeat_secs),
            held.answered,
            "hearts/s",
            held.usage,
        )
        .latency("ack", &held.ack),
    );
    if held.errors + held.lost > 0 {
        report.problems.push(format!(
            "{name}: {} heartbeats failed, {} connections closed",
            held.errors + held.lost,
            held.closed
        ));
    }
    server.check_alive()?;

    let mut all = held.clients;
    let rest = all.split_off(members.len());
    let members = all.len();
    let messages = sizes.memory_fanout_messages;
    let tracker = Arc::new(FanoutTracker::new(1, messages, members as u32 - 1));
    let plans: Vec<(Client, Plan)> = all
        .into_iter()
        .map(|c| {
            let sending = c.slot == 0;
            let plan = Plan {
                pace: if sending {
                    Pace::Closed { window: 1 }
                } else {
                    Pace::Silent
                },
                kind: FrameKind::Msg,
                echo: false,
                max_frames: if sending { messages } else { 0 },
                slow_read: None,
            };
            (c, plan)
        })
        .collect();
    ctx.progress(format_args!(
        "memory: {messages} messages to a {members}-member group"
    ));
    let fan = load::run_phase(plans, 60.0, members as u64 - 1, Some(tracker), pid).await;
    let expected = messages * (members as u64 - 1);
    report.rows.push(
        Row::new(
            format!("{name}: {messages} msgs to {members} members"),
            fan.delivered,
            "deliveries/s",
            fan.usage,
        )
        .latency("last delivery", &fan.last),
    );
    let alive = server.check_alive().is_ok();
    let rss = pid.and_then(sys::rss_kib).unwrap_or(0);
    let peak = pid.and_then(sys::peak_rss_kib).unwrap_or(0);
    let group_peak = group.as_ref().and_then(Cgroup::peak_kib);
    let kills = group.as_ref().and_then(Cgroup::oom_kills).unwrap_or(0);
    drop(fan.clients);
    drop(rest);
    if alive {
        server.stop().await?;
    } else {
        drop(server);
    }
    let limited = group.is_some();
    drop(group);

    report.figures.insert(
        if n >= 10_000 {
            "crowd_10k_peak_rss_kib"
        } else {
            "crowd_peak_rss_kib"
        },
        peak as f64,
    );
    let per_conn = connected_rss as f64 * 1024.0 / n as f64;
    report.notes.push(format!(
        "{name}: RSS {} with everyone connected ({:.1} KiB per user, all included), {} after \
         the fan-out, peak {}{}",
        mib(connected_rss),
        per_conn / 1024.0,
        mib(rss),
        mib(peak),
        group_peak.map_or(String::new(), |p| format!(
            "; cgroup peak {} (page cache and socket buffers included)",
            mib(p)
        ))
    ));
    report.check(
        format!(
            "{name} {limit}: no OOM kill, every delivery of {messages} msgs x {} arrives",
            members - 1
        ),
        format!(
            "{} of {expected} delivered, {kills} OOM kills, server {}",
            fan.delivered,
            if alive { "alive" } else { "gone" }
        ),
        alive && kills == 0 && fan.delivered == expected && limited == (limit_mib > 0),
    );
    Ok(())
}
