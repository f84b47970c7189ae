//! `/api/user/*` of one's own account: the profile, the password, and the
//! logged-in devices. (The picture upload is `upload::avatar`.)

use super::ctx::Ctx;
use crate::error::Result;
use crate::protocol::{self, DeviceOut};
use crate::store::ProfileChange;
use crate::validate;

/// Changes the caller's name, avatar, email or last-seen setting; answers
/// the profile as it now is. Every field is checked before anything is
/// stored, so a bad one changes nothing.
pub async fn update(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::UserUpdate = ctx.json()?;
    let name = req
        .name
        .as_deref()
        .map(validate::new_display_name)
        .transpose()?;
    let avatar = req.avatar.map(|a| a.trim().to_owned());
    if let Some(avatar) = &avatar {
        validate::avatar(avatar)?;
    }
    let email = req.email.map(|e| e.trim().to_owned());
    if let Some(email) = &email {
        validate::email(email)?;
    }
    let change = ProfileChange {
        name,
        avatar,
        email,
        hide_last_seen: req.hide_last_seen,
    };
    ctx.app.db.update_profile(ctx.uid, change).await?;
    super::users::me(ctx).await
}

/// Changes the caller's password; answers how many other devices were
/// logged out.
pub async fn password(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::PasswordChange = ctx.json()?;
    let revoked = ctx
        .app
        .change_password(ctx.uid, ctx.session, req.old, req.new)
        .await?;
    crate::log_info!("password changed", uid = ctx.uid, revoked = revoked);
    Ok(protocol::success(&revoked))
}

/// The caller's logged-in devices, newest first, and which of them have a
/// WebSocket open now (a last use is written at most once a minute, and an
/// open socket makes no requests).
pub async fn sessions(ctx: Ctx) -> Result<Vec<u8>> {
    let devices = ctx.app.db.devices(ctx.uid).await?;
    let online = ctx.app.hub.sessions_online(ctx.uid);
    let zone = &ctx.app.config.time_zone;
    let out: Vec<DeviceOut> = devices
        .iter()
        .map(|d| DeviceOut::new(d, ctx.session, online.contains(&d.id), zone))
        .collect();
    Ok(protocol::success(&out))
}

/// Logs one of the caller's devices out (the calling one too, if named).
pub async fn revoke(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::SessionRevoke = ctx.json()?;
    ctx.app.revoke_session(ctx.uid, req.id).await?;
    Ok(protocol::success(&true))
}
