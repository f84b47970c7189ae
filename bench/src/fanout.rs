//! Scenario 3, fanout: groups of 100 and 1,000 members, every member online,
//! 1 and 8 members sending closed-loop. Measures deliveries per second (one
//! delivery = one pushed message arriving at one member's connection) and
//! the latency from a message's send to its *last* recipient. The senders
//! keep one message in flight each; then the 100-member group's 8 senders
//! keep several, as senders of bursts do, for the peak the group takes.
//!
//! Then the same load with one deliberately slow reader: a second device of
//! one member, with a tiny socket receive buffer, reading one frame every
//! 100 ms. The server must not buffer for it without bound (its RSS during
//! the phase is sampled and compared with the phase without the slow
//! reader), must disconnect it once its queue overflows, and must not delay
//! everyone else (their last-delivery p99 is compared).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::client;
use super::load::{self, Client, FanoutTracker, FrameKind, Outcome, Pace, Plan};
use super::sys::{self, Meter};
use super::target::ServerSpec;
use super::{Ctx, Report, Row, Scenario, direct, mib, rate};

/// Client read buffer: pushes arrive in bursts of up to 64 frames.
const READ_BUFFER: usize = 16 * 1024;
/// Messages one sender may send in one phase (the time bound comes first).
const MAX_PER_SENDER: u64 = 200_000;
/// The slow reader's pace and kernel receive buffer.
const SLOW_EVERY: Duration = Duration::from_millis(100);
const SLOW_RCVBUF: u32 = 4096;

/// Samples the server's RSS every 20 ms until told to stop; returns the highest.
fn sample_rss(pid: Option<u32>) -> (watch::Sender<bool>, tokio::task::JoinHandle<Option<u64>>) {
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let pid = pid?;
        let mut peak = sys::rss_kib(pid)?;
        loop {
            tokio::select! {
                _ = rx.changed() => return Some(peak),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    if let Some(rss) = sys::rss_kib(pid) {
                        peak = peak.max(rss);
                    }
                }
            }
        }
    });
    (tx, task)
}

struct Phase {
    /// The member clients, handed back for the next phase.
    clients: Vec<Client>,
    members: usize,
    senders: usize,
    out: Outcome,
    rss_before: Option<u64>,
    rss_peak: Option<u64>,
}

/// Runs one fan-out phase on the first `members` clients (`gid` is their
/// group), the first `senders` of them sending with `window` messages in
/// flight each; `slow` is an extra slow device.
async fn phase(
    members: Vec<Client>,
    gid: u64,
    (senders, window): (usize, usize),
    slow: Option<Client>,
    secs: f64,
    pid: Option<u32>,
) -> Phase {
    let g = members.len();
    let need = (g - 1) as u32;
    let tracker = Arc::new(FanoutTracker::new(senders, MAX_PER_SENDER, need));
    let mut plans: Vec<(Client, Plan)> = members
        .into_iter()
        .map(|mut c| {
            let sending = c.slot < senders;
            c.gid = gid;
            let plan = Plan {
                pace: if sending {
                    Pace::Closed { window }
                } else {
                    Pace::Silent
                },
                kind: FrameKind::Msg,
                echo: false,
                max_frames: tracker.capacity(),
                slow_read: None,
            };
            (c, plan)
        })
        .collect();
    if let Some(slow) = slow {
        let plan = Plan {
            pace: Pace::Silent,
            kind: FrameKind::Msg,
            echo: false,
            max_frames: 0,
            slow_read: Some(SLOW_EVERY),
        };
        plans.push((slow, plan));
    }
    let rss_before = pid.and_then(sys::rss_kib);
    let (stop, sampler) = sample_rss(pid);
    let mut out = load::run_phase(plans, secs, u64::from(need), Some(tracker), pid).await;
    let _ = stop.send(true);
    let rss_peak = sampler.await.ok().flatten();
    Phase {
        clients: std::mem::take(&mut out.clients),
        members: g,
        senders,
        out,
        rss_before,
        rss_peak,
    }
}

fn rows(report: &mut Report, p: &Phase, label: &str) {
    let name = format!(
        "{} members, {} sender{}{label}",
        p.members,
        p.senders,
        if p.senders == 1 { "" } else { "s" }
    );
    report.rows.push(
        Row::new(name.clone(), p.out.delivered, "deliveries/s", p.out.usage)
            .latency("last delivery", &p.out.last),
    );
    report.rows.push(
        Row::new(
            format!("{name}: sent"),
            p.out.answered,
            "msgs/s",
            p.out.usage,
        )
        .latency("ack", &p.out.ack),
    );
    direct::problems(report, &name, &p.out);
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let sizes = ctx.sizes;
    let mut report = Report::new(Scenario::Fanout);
    let biggest = sizes
        .fanout_groups
        .iter()
        .copied()
        .max()
        .unwrap_or(2)
        .max(2);
    // The slow reader joins the busiest phase the target names (8 senders).
    let slow_senders = sizes
        .fanout_senders
        .iter()
        .copied()
        .filter(|&s| s <= 8)
        .max()
        .unwrap_or(1);
    let mut server = ctx
        .server("fanout", &ServerSpec::cheap(biggest + 1000))
        .await?;
    let pid = server.pid;
    let addr = server.addr;

    ctx.progress(format_args!(
        "fanout: {biggest} users and groups of {:?}",
        sizes.fanout_groups
    ));
    let meter = Meter::start(pid);
    let users = client::users(addr, &ctx.accounts("f"), biggest, 32).await?;
    client::befriend_all(addr, &users[0], users[1..].to_vec(), 32).await?;
    let mut http = client::Http::new(addr);
    let all: Vec<u64> = users.iter().map(|u| u.uid).collect();
    let mut gids = Vec::new();
    for &g in &sizes.fanout_groups {
        let g = g.max(2);
        gids.push(client::group(&mut http, &users[0], &format!("fanout {g}"), &all[..g]).await?);
    }
    let tokens = users.iter().map(|u| u.token.clone()).collect();
    let sockets = client::ws_logins(addr, tokens, READ_BUFFER, 256).await?;
    let mut clients: Vec<Client> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| Client::new(ws, i, 0))
        .collect();
    report.rows.push(Row::new(
        format!("setup: {biggest} users, groups, logins"),
        biggest as u64,
        "users/s",
        meter.finish(),
    ));

    let mut best_100: Option<f64> = None;
    let mut baseline: Option<Phase> = None;
    for (&g, &gid) in sizes.fanout_groups.iter().zip(&gids) {
        let g = g.max(2);
        for &s in &sizes.fanout_senders {
            let s = s.min(g);
            ctx.progress(format_args!(
                "fanout: {g} members, {s} senders, {:.1} s",
                sizes.fanout_secs
            ));
            let rest = clients.split_off(g);
            let mut p = phase(clients, gid, (s, 1), None, sizes.fanout_secs, pid).await;
            server.check_alive()?;
            rows(&mut report, &p, "");
            // The target names 1 and 8 senders; more are a diagnostic.
            if g == 100 && s <= 8 {
                let d = p.out.delivered_per_sec();
                best_100 = Some(best_100.map_or(d, |b: f64| b.max(d)));
            }
            clients = std::mem::take(&mut p.clients);
            clients.extend(rest);
            let first_group = g == sizes.fanout_groups[0].max(2);
            if first_group && s == slow_senders.min(g) {
                baseline = Some(p);
            }
            if clients.len() < biggest {
                anyhow::bail!(
                    "{} connections were lost during the phase",
                    biggest - clients.len()
                );
            }
        }
    }
    // The slow reader's senders again, several messages in flight each, as
    // senders of bursts have: the peak the group takes.
    let window = sizes.fanout_pipeline;
    let mut pipelined: Option<f64> = None;
    if window > 1
        && let Some(base) = &baseline
    {
        let (g, s) = (base.members, base.senders);
        ctx.progress(format_args!(
            "fanout: {g} members, {s} senders x {window} in flight, {:.1} s",
            sizes.fanout_secs
        ));
        let rest = clients.split_off(g);
        let mut p = phase(clients, gids[0], (s, window), None, sizes.fanout_secs, pid).await;
        server.check_alive()?;
        rows(&mut report, &p, &format!(" x {window} in flight"));
        if g == 100 {
            pipelined = Some(p.out.delivered_per_sec());
        }
        clients = std::mem::take(&mut p.clients);
        clients.extend(rest);
    }
    if let Some(best) = best_100 {
        report.figures.insert("fanout_100_deliveries_per_sec", best);
        let (peak, how) = match pipelined {
            Some(d) if d > best => (
                d,
                format!(
                    "{} deliveries/s with {slow_senders} senders, {window} in flight each \
                     ({} with 1 in flight, best of 1 and {slow_senders} senders)",
                    rate(d),
                    rate(best)
                ),
            ),
            _ => (
                best,
                format!("{} deliveries/s (best of 1 and 8 senders)", rate(best)),
            ),
        };
        report
            .figures
            .insert("fanout_100_peak_deliveries_per_sec", peak);
        report.check(
            "fanout >= 500,000 deliveries/s to a 100-member group",
            how,
            peak >= 500_000.0,
        );
    }

    // The same load as the baseline phase, plus one slow device.
    if let Some(base) = baseline {
        let g = base.members;
        let s = base.senders;
        let gid = gids[0];
        ctx.progress(format_args!(
            "fanout: {g} members, {s} senders and one slow reader, {:.1} s",
            sizes.slow_reader_secs
        ));
        let slow_ws = client::ws_connect(addr, 2048, Some(SLOW_RCVBUF)).await?;
        let mut slow_ws = slow_ws;
        client::login_on(&mut slow_ws, &users[g - 1].token).await?;
        let slow = Client::new(slow_ws, usize::MAX, gid);
        let rest = clients.split_off(g);
        let mut p = phase(
            clients,
            gid,
            (s, 1),
            Some(slow),
            sizes.slow_reader_secs,
            pid,
        )
        .await;
        server.check_alive()?;
        rows(&mut report, &p, " + 1 slow reader");
        let kicked = p.out.close_codes.iter().any(|&c| c == 1008 || c == 1006);
        let codes = p.out.close_codes.clone();
        let base_p99 = base.out.last.quantile_ns(0.99) as f64 / 1e6;
        let slow_p99 = p.out.last.quantile_ns(0.99) as f64 / 1e6;
        let grow = |ph: &Phase| match (ph.rss_before, ph.rss_peak) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let (grow_base, grow_slow) = (grow(&base), grow(&p));
        report.notes.push(format!(
            "slow reader: read {} frames, then the server {}",
            p.out.slow_received,
            if kicked {
                format!("closed it (close code {codes:?})")
            } else {
                "had not closed it by the end of the phase".into()
            }
        ));
        if let (Some(b), Some(sl)) = (grow_base, grow_slow) {
            report
                .figures
                .insert("slow_reader_rss_growth_kib", sl as f64);
            report.check(
                "a slow reader does not grow server memory past its queue bound (+4 MiB)",
                format!(
                    "peak RSS +{} during the phase with it, +{} without",
                    mib(sl),
                    mib(b),
                ),
                sl <= b + 4096,
            );
        }
        report.figures.insert("slow_reader_others_p99_ms", slow_p99);
        report.check(
            "the other members are not delayed by a slow reader (last-delivery p99 within 1.5x)",
            format!("p99 {slow_p99:.2} ms with it, {base_p99:.2} ms without"),
            slow_p99 <= base_p99 * 1.5,
        );
        clients = std::mem::take(&mut p.clients);
        clients.extend(rest);
    }
    drop(clients);
    server.stop().await?;
    Ok(report)
}
