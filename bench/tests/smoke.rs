//! `rim-bench` at tiny sizes: every scenario runs its real logic against real
//! `rim serve` child processes (and the echo server), so the harness cannot
//! rot. Seconds, not minutes. The figures are not held to the performance
//! targets here (a debug build on a shared machine); what must hold is that
//! the load itself went right: every frame answered, every message
//! delivered, every page full, every row measured something.
//!
//! The servers are the `rim` binary cargo built beside `rim-bench` (another
//! package's binary has no `CARGO_BIN_EXE_` variable). A `cargo test` at the
//! workspace root builds it, since both packages are default members; a
//! `cargo test -p rim-bench` alone needs a `cargo build` first.

use std::path::Path;

use rim_bench::{Options, Scenario, Sizes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_at_tiny_sizes() {
    // The raw SQLite ceilings open files through rim's store, which logs.
    if std::env::var_os("RIM_LOG").is_none() {
        rim::log::set_level(rim::log::Level::Warn);
    }
    let echo_exe = Path::new(env!("CARGO_BIN_EXE_rim-bench"));
    let server_exe = rim_bench::rim_next_to(echo_exe);
    assert!(
        server_exe.is_file(),
        "no rim binary at {}: run `cargo test` at the workspace root, which builds it, \
         or `cargo build` first",
        server_exe.display()
    );
    let opts = Options {
        server_exe,
        echo_exe: echo_exe.to_owned(),
        url: None,
        pid: None,
        dir: None,
        sizes: Sizes::smoke(),
        scenarios: Scenario::ALL.to_vec(),
        progress: false,
    };
    let mut printed = String::new();
    let reports = rim_bench::run(&opts, |r| printed.push_str(&rim_bench::table(r)))
        .await
        .expect("the benchmark runs");
    let names: Vec<&str> = reports.iter().map(|r| r.scenario).collect();
    assert_eq!(
        names,
        ["idle", "direct", "fanout", "history", "login", "limits"]
    );
    for r in &reports {
        assert!(
            r.problems.is_empty(),
            "{}: {:?}\n{printed}",
            r.scenario,
            r.problems
        );
        assert!(
            !r.rows.is_empty() && !r.checks.is_empty(),
            "{}: no rows or checks",
            r.scenario
        );
        for row in &r.rows {
            assert!(
                row.count > 0,
                "{}: `{}` counted nothing\n{printed}",
                r.scenario,
                row.phase
            );
            assert!(
                row.usage.server_cpu_secs.is_some() || r.scenario == "limits",
                "{}: no server CPU",
                r.scenario
            );
        }
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["scenario"], r.scenario);
    }
    let figure = |scenario: &str, name: &str| {
        reports
            .iter()
            .find(|r| r.scenario == scenario)
            .and_then(|r| r.figure(name))
            .unwrap_or_else(|| panic!("{scenario} has no figure {name}\n{printed}"))
    };
    assert!(figure("idle", "start_rss_kib") > 0.0);
    assert!(figure("direct", "closed_loop_msgs_per_sec") > 0.0);
    // The pipelined closed loop ran too (two in flight at this size).
    assert!(figure("direct", "closed_loop_peak_msgs_per_sec") > 0.0);
    assert!(printed.contains("x 2 in flight"), "{printed}");
    assert!(figure("fanout", "slow_reader_others_p99_ms") > 0.0);
    // The pipelined fan-out phase ran (the target's figure needs 100 members).
    assert!(
        printed.contains("10 members, 2 senders x 2 in flight"),
        "{printed}"
    );
    assert!(figure("history", "latest_p99_ms") > 0.0);
    assert!(figure("history", "search_wide_zero_p99_ms") > 0.0);
    assert!(figure("login", "hashes_per_sec") > 0.0);
    assert!(figure("limits", "echo_msgs_per_sec") > 0.0);
    assert!(figure("limits", "raw_insert_rows_per_sec") > 0.0);
    // The fan-out rows saw every member's delivery: the last-recipient
    // latency exists only when a message reached all of them.
    let fanout = reports.iter().find(|r| r.scenario == "fanout").unwrap();
    assert!(fanout.rows.iter().any(|row| {
        row.latency
            .as_ref()
            .is_some_and(|l| l.of == "last delivery")
    }));
    assert!(printed.contains("closed loop"), "{printed}");
}

/// The memory scenario is not part of a default run (it takes minutes); at
/// tiny sizes, without a cgroup, its load must still go right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_scenario_runs_at_tiny_sizes() {
    let echo_exe = Path::new(env!("CARGO_BIN_EXE_rim-bench"));
    let opts = Options {
        server_exe: rim_bench::rim_next_to(echo_exe),
        echo_exe: echo_exe.to_owned(),
        url: None,
        pid: None,
        dir: None,
        sizes: Sizes::smoke(),
        scenarios: vec![Scenario::Memory],
        progress: false,
    };
    let mut printed = String::new();
    let reports = rim_bench::run(&opts, |r| printed.push_str(&rim_bench::table(r)))
        .await
        .expect("the benchmark runs");
    let r = &reports[0];
    assert_eq!(r.scenario, "memory");
    assert!(r.problems.is_empty(), "{:?}\n{printed}", r.problems);
    assert_eq!(r.checks.len(), 4, "{printed}");
    for row in &r.rows {
        assert!(row.count > 0, "`{}` counted nothing\n{printed}", row.phase);
    }
    // Every delivery of the fan-out arrived (the check's figure, not its
    // memory bound, which a tiny run does not try).
    let fanout = r.checks.last().unwrap();
    assert!(fanout.met, "{fanout:?}\n{printed}");
}
