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
    #[arg(
        long,
        global = false,
        value_name = "ADDR",
        help = "Address to listen on, e.g. 0.0.0.0:8000 (overrides `listen`)"
    )]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Manage accounts: add, list, disable, enable, passwd.
    #[command(subcommand)]
    User(UserCommand),
    /// Create invite codes for `registration = "invite"`.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Copy the database consistently, also while the server runs, and check the copy.
    Backup(BackupArgs),
    /// Replace the database with a backup (the server must be stopped).
    Restore(RestoreArgs),
    /// Check the database's integrity and schema.
    Check(CheckArgs),
    /// Manage stored files: gc.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Bots that post into a group from scripts: add, list, remove.
    #[command(subcommand)]
    Bot(BotCommand),
    /// Web Push: send a test notification.
    #[command(subcommand)]
    Push(PushCommand),
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

impl DbArgs {
    /// The overrides of a command other than `serve` (no `--listen`).
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: None,
            db: self.db.clone(),
        }
    }
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

// ---- operations: accounts, invites, backups -------------------------------------

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (the first account ever is an admin).
    Add(UserAddArgs),
    /// List every account.
    List(DbOnly),
    /// Disable an account: it cannot log in, its tokens are revoked and its
    /// open connections closed (within a second, also while the server runs);
    /// its data stays.
    Disable(AccountArgs),
    /// Let a disabled account log in again.
    Enable(AccountArgs),
    /// Set a new password (revokes the account's tokens).
    Passwd(PasswdArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The login name: 3 to 32 letters, digits, '_', '.' or '-'.
    pub account: String,
    /// The display name (default: the account).
    #[arg(long)]
    pub name: Option<String>,
    /// Make the account an admin (may create invites over REST).
    #[arg(long)]
    pub admin: bool,
    /// Read the password from the first line of standard input instead of a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct AccountArgs {
    pub account: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    pub account: String,
    /// Read the password from the first line of standard input instead of a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct DbOnly {
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Print a new invite code (and its join link when `public_url` is set).
    Create(InviteCreateArgs),
}

#[derive(Debug, Args)]
pub struct InviteCreateArgs {
    /// How many accounts the code may create.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub uses: u32,
    /// How long the code stays valid: days (7d), hours (12h) or "never".
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub expires: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write; must not exist yet.
    pub dest: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (checked before anything is replaced).
    pub src: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Remove files that no message refers to and that were last uploaded
    /// longer ago than the grace period (also done hourly by the server).
    Gc(FilesGcArgs),
}

#[derive(Debug, Args)]
pub struct FilesGcArgs {
    /// How long an unsent file is kept after its last upload: seconds (90s),
    /// minutes (30m), hours (24h) or days (7d). Default: files.gc_grace_hours.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Send a test notification to every push subscription of an account
    /// and print each push service's answer (subscriptions the service says
    /// are gone are removed).
    Test(AccountArgs),
}

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Make a bot that posts into a group; prints its URL, with its secret
    /// key, once.
    Add(BotAddArgs),
    /// List the bots.
    List(DbOnly),
    /// Remove a bot: its key stops working and it leaves its group.
    Remove(BotRemoveArgs),
}

#[derive(Debug, Args)]
pub struct BotAddArgs {
    /// The name its messages show.
    pub name: String,
    /// The group (gid) it posts into.
    #[arg(long, value_name = "GID")]
    pub group: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct BotRemoveArgs {
    /// The bot's id, as `rim bot list` shows it.
    pub id: i64,
    #[command(flatten)]
    pub db: DbArgs,
}
