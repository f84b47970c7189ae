//! `rim push test ACCOUNT`: a test notification to every device of an
//! account, with what each push service answered.

use anyhow::Context;

use super::load_config;
use crate::cli::{AccountArgs, PushCommand};
use crate::metrics::PushResult;
use crate::push::Sender;
use crate::store::admin;
use crate::store::push as subscriptions;
use crate::time::now_ms;
use crate::webpush::Vapid;

pub fn run(cmd: PushCommand) -> anyhow::Result<()> {
    match cmd {
        PushCommand::Test(args) => test(args),
    }
}

fn test(args: AccountArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let mut conn = admin::open_for_change(&config.db, false, config.checkpoints)?;
    let uid = admin::account_id(&conn, &args.account)?;
    // The server makes the key at its first start; made here when the
    // server never ran, it is the one the server will use.
    let (private, public) = Vapid::generate();
    let key = admin::immediate(&mut conn, |c| {
        subscriptions::ensure_key(c, &private, &public, now_ms())
    })?;
    let vapid = Vapid::from_private(&key)
        .map_err(|_| anyhow::anyhow!("the stored VAPID key is not a P-256 private key"))?;
    let subs = subscriptions::of_user(&conn, uid)?;
    if subs.is_empty() {
        println!(
            "{} has no push subscription: turn notifications on in the web client first",
            args.account
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let sender = runtime.block_on(async { Sender::new(vapid, &config) })?;
    let payload =
        crate::protocol::push_payload(0, 0, "rim", "Test notification: push works on this device");
    let mut sent = 0;
    for sub in &subs {
        let outcome = runtime.block_on(sender.send(sub, payload.as_bytes(), "rim-test"));
        let status = outcome
            .status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        println!(
            "{}: {} ({status}) {}",
            sub.endpoint,
            outcome.result.label(),
            outcome.detail.trim()
        );
        match outcome.result {
            PushResult::Sent => sent += 1,
            PushResult::Gone => {
                admin::immediate(&mut conn, |c| subscriptions::remove(c, sub.id))?;
                println!("  removed: the push service says this subscription is gone");
            }
            _ => {}
        }
    }
    println!("sent: {sent} of {}", subs.len());
    Ok(())
}
