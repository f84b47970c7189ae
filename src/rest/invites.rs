//! `/api/invite/*`: invite codes, for servers with `registration = "invite"`.

use super::ctx::Ctx;
use crate::error::Result;
use crate::protocol::{self, InviteOut};

/// An admin creates an invite; everyone else gets 403.
pub async fn create(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::InviteCreate = ctx.json()?;
    let invite = ctx
        .app
        .create_invite(
            ctx.uid,
            req.uses.unwrap_or(1),
            req.expires_days.unwrap_or(7),
        )
        .await?;
    crate::log_info!("invite created", uid = ctx.uid);
    Ok(protocol::success(&InviteOut {
        code: &invite.code,
        link: invite.link.as_deref(),
    }))
}
