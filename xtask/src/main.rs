//! `cargo run -p xtask -- man [DIR]`: writes the man pages of `rim` and of
//! each of its subcommands (`rim.1`, `rim-serve.1`, `rim-user-add.1`, ...)
//! to DIR (default `target/man`), from the same clap definitions that parse
//! rim's command line (`rim::cli::Cli`), so the manual and `--help` cannot
//! disagree. The Debian package (`cargo deb`) installs them.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::CommandFactory;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("man") => {
            let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/man".into()));
            man(&dir)
        }
        _ => bail!("usage: cargo run -p xtask -- man [DIR]"),
    }
}

fn man(dir: &PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Every page names the version of the binary it describes (rim's is the
    // workspace version, which xtask shares), the subcommands' pages too.
    let cmd = rim::cli::Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true);
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(".1"))
        .collect();
    pages.sort();
    println!(
        "{} man pages in {}: {}",
        pages.len(),
        dir.display(),
        pages.join(" ")
    );
    Ok(())
}
