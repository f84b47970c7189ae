//! `/api/friend/*`: requests, answers and the friend list.

use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::protocol::{self, UserOut};
use crate::store::FriendList;

pub async fn add(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::FriendAdd = ctx.json()?;
    ctx.app.friend_request(ctx.uid, req.fid).await?;
    Ok(protocol::success(&true))
}

/// `status=0`: requests waiting for the caller's answer; `1`: friends;
/// `2`: the caller's own pending requests.
pub async fn list(ctx: Ctx) -> Result<Vec<u8>> {
    let which = match ctx.query_u64("status")? {
        0 => FriendList::Incoming,
        1 => FriendList::Friends,
        2 => FriendList::Outgoing,
        other => {
            return Err(Error::bad_request(format!(
                "status {other} is not valid: use 0 (requests to you), 1 (friends) or 2 (your requests)"
            )));
        }
    };
    let users = ctx.app.db.friends(ctx.uid, which).await?;
    let out: Vec<UserOut> = users.iter().map(|u| UserOut::new(u, ctx.uid)).collect();
    Ok(protocol::success(&out))
}

/// `status:1` accepts a request to the caller; `status:2` rejects one,
/// cancels the caller's own, or ends a friendship; `status:0` asks.
pub async fn modify(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::FriendModify = ctx.json()?;
    match req.status {
        0 => ctx.app.friend_request(ctx.uid, req.fid).await?,
        1 => ctx.app.friend_accept(ctx.uid, req.fid).await?,
        2 => ctx.app.db.friend_remove(ctx.uid, req.fid).await?,
        other => {
            return Err(Error::bad_request(format!(
                "status {other} is not valid: use 0 (ask), 1 (accept) or 2 (reject or remove)"
            )));
        }
    }
    Ok(protocol::success(&true))
}
