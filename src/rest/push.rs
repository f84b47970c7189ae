//! `/api/push/*` and `/api/group/notify`: Web Push subscriptions, tied to the
//! caller's session (device), and each member's notification level.

use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::protocol::{self, PushKeyOut};
use crate::store::NewSubscription;
use crate::validate;

/// The server's VAPID public key, the browser's `applicationServerKey`.
pub async fn key(ctx: Ctx) -> Result<Vec<u8>> {
    Ok(protocol::success(&PushKeyOut::new(
        ctx.app.push.public_key(),
    )))
}

pub async fn subscribe(ctx: Ctx) -> Result<Vec<u8>> {
    if !ctx.app.push.enabled() {
        return Err(Error::forbidden(
            "push notifications are off on this server",
        ));
    }
    let req: protocol::PushSubscribe = ctx.json()?;
    let push = &ctx.app.config.push;
    validate::push_endpoint(&req.endpoint, &push.allowed_hosts, push.allow_insecure_http)?;
    let (p256dh, auth) = validate::push_keys(&req.keys.p256dh, &req.keys.auth)?;
    ctx.app
        .db
        .subscribe_push(
            ctx.uid,
            ctx.session,
            NewSubscription {
                endpoint: req.endpoint,
                p256dh,
                auth,
            },
        )
        .await?;
    Ok(protocol::success(&true))
}

/// Removes the caller's subscription at an endpoint; `data` says whether
/// there was one.
pub async fn unsubscribe(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::PushUnsubscribe = ctx.json()?;
    let removed = ctx.app.db.unsubscribe_push(ctx.uid, req.endpoint).await?;
    Ok(protocol::success(&removed))
}

pub async fn notify_level(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::GroupNotify = ctx.json()?;
    let level = protocol::parse_level(&req.level)?;
    ctx.app.db.set_notify_level(ctx.uid, req.gid, level).await?;
    Ok(protocol::success(&true))
}
