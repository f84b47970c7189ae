//! Scenario 2, direct: many 1:1 conversations, both partners online.
//!
//! First closed loops for the peak rate of persisted, acknowledged messages
//! (each committed with `synchronous = FULL` before its ack): every user
//! keeping one message in flight, then the same users keeping several in
//! flight, as a client sending a burst does (rim reads a connection's next
//! frames while the earlier ones wait for their commit). Then open loops at
//! fixed offered rates, for the latency a client sees at a load the server
//! can carry: from the moment a message was due to its ack, and to its
//! delivery to the partner's connection.

use std::sync::Arc;
use std::time::Duration;

use super::client;
use super::load::{self, Client, FrameKind, Outcome, Pace, Plan};
use super::sys::Meter;
use super::target::ServerSpec;
use super::{Ctx, Report, Row, Scenario, rate};

/// Client read buffer: pushes come one or two at a time.
const READ_BUFFER: usize = 8 * 1024;
/// Upper bound of messages per client per phase (the time bound comes first).
const MAX_PER_CLIENT: u64 = 1_000_000;

/// Sets up `pairs` direct conversations with both partners logged in over
/// WebSockets; client `2i` and `2i+1` are partners.
pub async fn pairs(
    ctx: &Ctx<'_>,
    addr: std::net::SocketAddr,
    pairs: usize,
    part: &str,
) -> anyhow::Result<Vec<Client>> {
    let users = client::users(addr, &ctx.accounts(part), 2 * pairs, 32).await?;
    let couples: Vec<_> = users
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    let gids = client::direct_chats(addr, Arc::new(couples), 32).await?;
    let tokens = users.iter().map(|u| u.token.clone()).collect();
    let sockets = client::ws_logins(addr, tokens, READ_BUFFER, 256).await?;
    Ok(sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| Client::new(ws, i, gids[i / 2]))
        .collect())
}

/// A closed loop keeping `window` messages in flight.
pub fn closed_plan(window: usize) -> Plan {
    Plan {
        pace: Pace::Closed { window },
        kind: FrameKind::Msg,
        echo: false,
        max_frames: MAX_PER_CLIENT,
        slow_read: None,
    }
}

/// Every client sends at `total_rate / clients` per second, the clients
/// evenly staggered, for `secs`.
pub fn open_plans(
    clients: Vec<Client>,
    total_rate: u64,
    secs: f64,
    kind: FrameKind,
) -> Vec<(Client, Plan)> {
    let n = clients.len().max(1);
    let every = Duration::from_secs_f64(n as f64 / total_rate.max(1) as f64);
    let max_frames = (secs / every.as_secs_f64()).ceil() as u64 + 1;
    clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let plan = Plan {
                pace: Pace::Open {
                    every,
                    offset: every.mul_f64(i as f64 / n as f64),
                },
                kind,
                echo: false,
                max_frames,
                slow_read: None,
            };
            (c, plan)
        })
        .collect()
}

/// A message phase's rows, acks and deliveries, and its problems.
fn message_rows(report: &mut Report, phase: &str, out: &Outcome) {
    report.rows.push(
        Row::new(phase.to_owned(), out.answered, "msgs/s", out.usage).latency("ack", &out.ack),
    );
    report.rows.push(
        Row::new(
            format!("{phase}: delivered"),
            out.delivered,
            "msgs/s",
            out.usage,
        )
        .latency("delivery", &out.delivery),
    );
    problems(report, phase, out);
}

/// Notes for anything that went wrong in a phase.
pub fn problems(report: &mut Report, phase: &str, out: &Outcome) {
    if out.errors + out.lost > 0 || out.closed > 0 {
        report.problems.push(format!(
            "{phase}: {} frames refused, {} unanswered, {} connections closed",
            out.errors, out.lost, out.closed
        ));
    }
    if out.incomplete {
        report.problems.push(format!(
            "{phase}: not everything arrived within the drain timeout ({} sent, {} answered, {} delivered)",
            out.sent_total, out.answered_total, out.delivered_total
        ));
    }
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let sizes = ctx.sizes;
    let n = 2 * sizes.direct_pairs;
    let mut report = Report::new(Scenario::Direct);
    let mut server = ctx.server("direct", &ServerSpec::cheap(n + 1000)).await?;
    let pid = server.pid;
    ctx.progress(format_args!(
        "direct: setting up {} conversations",
        sizes.direct_pairs
    ));
    let meter = Meter::start(pid);
    let mut clients = pairs(ctx, server.addr, sizes.direct_pairs, "d").await?;
    report.rows.push(Row::new(
        format!(
            "setup: {n} users, {} direct chats, {n} logins",
            sizes.direct_pairs
        ),
        n as u64,
        "users/s",
        meter.finish(),
    ));

    let mut single = 0.0;
    let mut peak = (0.0, 1);
    for window in std::iter::once(1).chain(sizes.direct_pipeline.iter().copied()) {
        ctx.progress(format_args!(
            "direct: closed loop, {n} senders, {window} in flight each, {:.1} s",
            sizes.direct_closed_secs
        ));
        let plans = clients
            .into_iter()
            .map(|c| (c, closed_plan(window)))
            .collect();
        let out = load::run_phase(plans, sizes.direct_closed_secs, 1, None, pid).await;
        server.check_alive()?;
        let phase = if window == 1 {
            format!("closed loop, {n} senders")
        } else {
            format!("closed loop, {n} senders x {window} in flight")
        };
        message_rows(&mut report, &phase, &out);
        let msgs = out.answered_per_sec();
        if window == 1 {
            single = msgs;
        }
        if msgs > peak.0 {
            peak = (msgs, window);
        }
        clients = out.clients;
    }
    // The same loop with edits and reactions mixed in: each is a write of
    // its own (the message's row, the search index or the reactions, and
    // an entry of the change log) and a push, like a message.
    ctx.progress(format_args!(
        "direct: closed loop, {n} senders, 1 in {} frames an edit or a reaction, {:.1} s",
        load::CHANGE_EVERY,
        sizes.direct_closed_secs
    ));
    let plans = clients
        .into_iter()
        .map(|c| {
            let mut plan = closed_plan(1);
            plan.kind = FrameKind::Mixed;
            (c, plan)
        })
        .collect();
    let out = load::run_phase(plans, sizes.direct_closed_secs, 1, None, pid).await;
    server.check_alive()?;
    let phase = format!(
        "closed loop, {n} senders, 1 in {} an edit or reaction",
        load::CHANGE_EVERY
    );
    report.rows.push(
        Row::new(phase.clone(), out.answered, "frames/s", out.usage).latency("ack", &out.ack),
    );
    problems(&mut report, &phase, &out);
    let mixed = out.answered_per_sec();
    report
        .figures
        .insert("closed_loop_mixed_frames_per_sec", mixed);
    // Not a target: the change log's cost is judged against a server
    // without it (BENCHMARKS.md, "The change log"). The mixed loop alone
    // cannot judge it, as a server that refuses these frames unread, doing
    // no work for them, reached only 73-80 % of its plain rate here.
    report.notes.push(format!(
        "closed loop with edits and reactions mixed in: {} frames/s, {:.0} % of the plain {} msgs/s (1 in flight)",
        rate(mixed),
        100.0 * mixed / single.max(1.0),
        rate(single)
    ));
    clients = out.clients;

    // One in flight: the figure the limits scenario compares with its ceilings.
    report.figures.insert("closed_loop_msgs_per_sec", single);
    report.figures.insert("closed_loop_senders", n as f64);
    report
        .figures
        .insert("closed_loop_peak_msgs_per_sec", peak.0);
    report
        .figures
        .insert("closed_loop_peak_in_flight", peak.1 as f64);
    let how = if peak.1 == 1 {
        format!("{} msgs/s with {n} senders, 1 in flight each", rate(peak.0))
    } else {
        format!(
            "{} msgs/s with {n} senders, {} in flight each ({} with 1 in flight)",
            rate(peak.0),
            peak.1,
            rate(single)
        )
    };
    report.check(
        "direct closed loop >= 50,000 persisted, acked msgs/s (synchronous = FULL)",
        how,
        peak.0 >= 50_000.0,
    );

    for &offered in &sizes.direct_rates {
        ctx.progress(format_args!(
            "direct: open loop at {offered} msgs/s, {:.1} s",
            sizes.direct_open_secs
        ));
        let plans = open_plans(clients, offered, sizes.direct_open_secs, FrameKind::Msg);
        let out = load::run_phase(plans, sizes.direct_open_secs, 1, None, pid).await;
        server.check_alive()?;
        let phase = format!("open loop, {offered} msgs/s offered");
        message_rows(&mut report, &phase, &out);
        let p99_ms = out.ack.quantile_ns(0.99) as f64 / 1e6;
        report.figures.insert(
            if offered == 5000 {
                "open_5000_ack_p99_ms"
            } else {
                "open_ack_p99_ms"
            },
            p99_ms,
        );
        if offered == 5000 {
            report.check(
                "direct p99 ack latency < 5 ms at 5,000 msgs/s offered",
                format!(
                    "p99 {p99_ms:.2} ms (p50 {:.2} ms, delivery p99 {:.2} ms)",
                    out.ack.quantile_ns(0.5) as f64 / 1e6,
                    out.delivery.quantile_ns(0.99) as f64 / 1e6
                ),
                p99_ms < 5.0,
            );
        }
        clients = out.clients;
    }
    // The same connections and the same offered rate with Heart frames,
    // which rim answers without the database: what the network, the frame
    // handling and the scheduling cost on their own, next to the disk floor
    // of the limits scenario. Tells where an ack's latency comes from.
    if sizes.direct_heart_diagnostic
        && let Some(&offered) = sizes.direct_rates.iter().max()
    {
        ctx.progress(format_args!(
            "direct: open loop of Heart frames at {offered}/s, {:.1} s",
            sizes.direct_open_secs
        ));
        let plans = open_plans(clients, offered, sizes.direct_open_secs, FrameKind::Heart);
        let out = load::run_phase(plans, sizes.direct_open_secs, 0, None, pid).await;
        server.check_alive()?;
        let phase = format!("diagnostic: {offered} Heart/s (no storage)");
        report.rows.push(
            Row::new(phase.clone(), out.answered, "frames/s", out.usage).latency("ack", &out.ack),
        );
        problems(&mut report, &phase, &out);
        report.figures.insert(
            "open_heart_ack_p99_ms",
            out.ack.quantile_ns(0.99) as f64 / 1e6,
        );
        clients = out.clients;
    }
    if clients.len() < n {
        report.problems.push(format!(
            "{} of {n} connections were lost",
            n - clients.len()
        ));
    }
    drop(clients);
    server.stop().await?;
    Ok(report)
}
