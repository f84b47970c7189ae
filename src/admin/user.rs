//! `rim user add | list | disable | enable | passwd`.

use anyhow::Context;

use super::{load_config, read_password, when};
use crate::cli::{AccountArgs, DbOnly, PasswdArgs, UserAddArgs, UserCommand};
use crate::store::NewUser;
use crate::store::admin;
use crate::time::now_ms;
use crate::validate;

pub fn run(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add(args) => add(args),
        UserCommand::List(args) => list(args),
        UserCommand::Disable(args) => set_disabled(args, true),
        UserCommand::Enable(args) => set_disabled(args, false),
        UserCommand::Passwd(args) => passwd(args),
    }
}

fn add(args: UserAddArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    validate::account(&args.account)?;
    let name = validate::display_name(args.name.as_deref().unwrap_or(""), &args.account)?;
    let password = read_password(args.password_stdin)?;
    validate::password(&password)?;
    let password_hash = crate::auth::hash_blocking(config.hash_cost, &password)?;
    // A missing file is created: the first admin may come before the first start.
    let mut conn = admin::open_for_change(&config.db, true, config.checkpoints)?;
    let user = NewUser {
        account: args.account.clone(),
        name,
        avatar: String::new(),
        email: String::new(),
        password_hash,
    };
    let (uid, is_admin) = admin::immediate(&mut conn, |c| {
        admin::register(c, &user, None, args.admin, now_ms())
    })?;
    println!(
        "created account {} (uid {uid}){}",
        args.account,
        if is_admin { ", an admin" } else { "" }
    );
    Ok(())
}

fn list(args: DbOnly) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let conn = admin::open_read_only(&config.db)?;
    let accounts = admin::accounts(&conn, now_ms())?;
    println!(
        "{:>6}  {:<20} {:<20} {:<6} {:<9} {:>8}  created",
        "uid", "account", "name", "admin", "status", "sessions"
    );
    for a in &accounts {
        println!(
            "{:>6}  {:<20} {:<20} {:<6} {:<9} {:>8}  {}",
            a.user.id,
            a.user.account,
            a.user.name,
            if a.is_admin { "yes" } else { "no" },
            if a.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            },
            a.sessions,
            when(Some(a.user.created_at)),
        );
    }
    println!("{} accounts", accounts.len());
    Ok(())
}

fn set_disabled(args: AccountArgs, disabled: bool) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let mut conn = admin::open_for_change(&config.db, false, config.checkpoints)?;
    let revoked = admin::immediate(&mut conn, |c| {
        admin::set_disabled(c, &args.account, disabled, now_ms())
    })
    .with_context(|| format!("cannot change account {:?}", args.account))?;
    if disabled {
        println!(
            "disabled {}: {revoked} session(s) revoked; a running server closes its connections within a second; its data is kept",
            args.account
        );
    } else {
        println!("enabled {}: it can log in again", args.account);
    }
    Ok(())
}

fn passwd(args: PasswdArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let mut conn = admin::open_for_change(&config.db, false, config.checkpoints)?;
    // Fail on a wrong account before asking for a password.
    admin::account_id(&conn, &args.account)?;
    let password = read_password(args.password_stdin)?;
    validate::password(&password)?;
    let password_hash = crate::auth::hash_blocking(config.hash_cost, &password)?;
    let revoked = admin::immediate(&mut conn, |c| {
        admin::set_password(c, &args.account, &password_hash, now_ms())
    })?;
    println!(
        "new password set for {}: {revoked} session(s) revoked, its devices must log in again",
        args.account
    );
    Ok(())
}
