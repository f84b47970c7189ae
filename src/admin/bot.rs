//! `rim bot add | list | remove`: accounts that post into one group from
//! scripts and home automation, through `POST /api/bot/<key>/message`.

use super::{load_config, when};
use crate::cli::{BotAddArgs, BotCommand, BotRemoveArgs, DbOnly};
use crate::store::{admin, bots};
use crate::time::now_ms;
use crate::validate;

pub fn run(cmd: BotCommand) -> anyhow::Result<()> {
    match cmd {
        BotCommand::Add(args) => add(args),
        BotCommand::List(args) => list(args),
        BotCommand::Remove(args) => remove(args),
    }
}

fn add(args: BotAddArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let name = validate::display_name(&args.name, "bot")?;
    let mut conn = admin::open_for_change(&config.db, false, config.checkpoints)?;
    // 256 random bits, like a login token; only the hash is stored.
    let key = crate::auth::new_token();
    let suffix = &crate::auth::new_token()[..12];
    let id = admin::immediate(&mut conn, |c| {
        bots::add(
            c,
            &name,
            suffix,
            args.group,
            &crate::auth::token_hash(&key),
            now_ms(),
        )
    })?;
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    println!("bot: {id}");
    println!("name: {name}");
    println!("group: {}", args.group);
    println!("url: {base}/api/bot/{key}/message");
    eprintln!("note: the URL holds the bot's secret key and is shown only now");
    Ok(())
}

fn list(args: DbOnly) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let conn = admin::open_read_only(&config.db)?;
    println!(
        "{:>4}  {:<24} {:>6}  {:<24} created",
        "id", "name", "gid", "group"
    );
    for b in bots::list(&conn)? {
        println!(
            "{:>4}  {:<24} {:>6}  {:<24} {}",
            b.id,
            b.name,
            b.gid,
            b.group,
            when(Some(b.created_at))
        );
    }
    Ok(())
}

fn remove(args: BotRemoveArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let mut conn = admin::open_for_change(&config.db, false, config.checkpoints)?;
    admin::immediate(&mut conn, |c| bots::remove(c, args.id))?;
    println!("removed bot {}: its key no longer works", args.id);
    Ok(())
}
