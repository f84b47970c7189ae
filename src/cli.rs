//! The command line: `rim [serve] [--config PATH] [--listen ADDR] [--db PATH]`.
//!
//! Parsing only; `main` turns the result into a [`Config`](crate::Config) and
//! runs the chosen command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "rim", version, about = "A self-hosted chat server: one binary, one SQLite file", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options for `serve` when no subcommand is given.
    #[command(flatten)]
    pub serve: DbArgs,
    #[arg(long, global = false, value_name = "ADDR", help = "Address to listen on, e.g. 0.0.0.0:8000 (overrides `listen`)")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
}

/// The options every command that touches the database takes.
#[derive(Debug, Clone, Default, Args)]
pub struct DbArgs {
    /// Config file (default: ./rim.toml if it exists, else built-in defaults).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// SQLite database file (overrides `db` in the config).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on, e.g. 0.0.0.0:8000 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            db: self.db.db.clone(),
        }
    }
}

impl Cli {
    /// The command to run; a bare `rim` is `rim serve` with the top-level options.
    pub fn into_command(self) -> Command {
        match self.command {
            Some(cmd) => cmd,
            None => Command::Serve(ServeArgs {
                db: self.serve,
                listen: self.listen,
            }),
        }
    }
}
