//! `/api/message/*`: the conversation list, history and read marks.

use super::{Ctx, paging};
use crate::error::Result;
use crate::protocol::{self, ChatRowOut};
use crate::store::Cursor;

pub async fn chat_list(ctx: Ctx<'_>) -> Result<Vec<u8>> {
    let req: protocol::ChatListQuery = ctx.json()?;
    let (page, size) = paging(req.page, req.size)?;
    let rows = ctx.app.db.chat_list(ctx.uid, page, size).await?;
    let out: Vec<ChatRowOut> = rows.iter().map(|r| ChatRowOut::chat(r, ctx.uid)).collect();
    Ok(protocol::success(&out))
}

pub async fn history(ctx: Ctx<'_>) -> Result<Vec<u8>> {
    let req: protocol::HistoryQuery = ctx.json()?;
    let (page, size) = paging(req.page, req.size)?;
    let cursor = match (req.before_id, req.after_id) {
        (Some(_), Some(_)) => {
            return Err(crate::error::Error::bad_request(
                "use beforeId or afterId, not both",
            ));
        }
        (Some(id), None) => Cursor::Before(id),
        (None, Some(id)) => Cursor::After(id),
        (None, None) => Cursor::Page(page),
    };
    let h = ctx.app.db.history(ctx.uid, req.gid, size, cursor).await?;
    let out: Vec<ChatRowOut> = h
        .rows
        .iter()
        .map(|(m, u)| ChatRowOut::history(&h.group, m, u, ctx.uid))
        .collect();
    Ok(protocol::success(&out))
}

pub async fn group_read(ctx: Ctx<'_>) -> Result<Vec<u8>> {
    let req: protocol::GroupRead = ctx.json()?;
    ctx.app.mark_read(ctx.uid, req.gid, None, None).await?;
    Ok(protocol::success(&true))
}
