//! `rim`: parse the command line, load the configuration, run the command.

use anyhow::Context;
use clap::Parser;
use rim::cli::{Cli, Command, ServeArgs};
use rim::config::Config;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.into_command() {
        Command::Serve(args) => serve(args),
        Command::User(cmd) => rim::admin::user::run(cmd),
        Command::Invite(cmd) => rim::admin::invite::run(cmd),
        Command::Backup(args) => rim::admin::backup::backup(args),
        Command::Restore(args) => rim::admin::backup::restore(args),
        Command::Check(args) => rim::admin::backup::check(args),
        Command::Files(cmd) => rim::admin::files::run(cmd),
        Command::Bot(cmd) => rim::admin::bot::run(cmd),
        Command::Push(cmd) => rim::admin::push::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.db.config.as_deref(), &args.overrides())?;
    rim::log::set_level(config.log_level);
    // Before any thread is started: see `malloc::limit_arenas`.
    rim::malloc::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        // Listen only once the database is open, migrated and indexed: until
        // then a connection would wait on a server that cannot answer it.
        let app = rim::server::open(config).await?;
        let listener =
            rim::server::listen(listen).with_context(|| format!("cannot listen on {listen}"))?;
        rim::server::run(listener, app, shutdown_signal()).await
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
