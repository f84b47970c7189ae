//! `/api/message/*`: the conversation list, history, read marks and search.

use super::ctx::Ctx;
use crate::error::Result;
use crate::protocol::{self, ChatRowOut, SearchHitOut};
use crate::store::Cursor;
use crate::validate;

pub async fn chat_list(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::ChatListQuery = ctx.json()?;
    let (page, size) = validate::paging(req.page, req.size)?;
    let rows = ctx.app.db.chat_list(ctx.uid, page, size).await?;
    let out: Vec<ChatRowOut> = rows
        .iter()
        .map(|r| ChatRowOut::chat(r, ctx.uid, &ctx.app.config.time_zone))
        .collect();
    Ok(protocol::success(&out))
}

pub async fn history(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::HistoryQuery = ctx.json()?;
    let (page, size) = validate::paging(req.page, req.size)?;
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
        .map(|(m, u)| ChatRowOut::history(&h.group, m, u, ctx.uid, &ctx.app.config.time_zone))
        .collect();
    Ok(protocol::success(&out))
}

pub async fn group_read(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::GroupRead = ctx.json()?;
    ctx.app.mark_read(ctx.uid, req.gid, None, None).await?;
    Ok(protocol::success(&true))
}

/// `GET /api/message/search?q=...&gid=...&page=...&size=...`: messages of
/// the caller's conversations (or of `gid`) containing every word of `q`,
/// best match first.
pub async fn search(ctx: Ctx) -> Result<Vec<u8>> {
    let query = validate::search_query(ctx.query("q")?)?;
    ctx.app
        .limits
        .searches_per_user
        .check(&ctx.uid)
        .map_err(|wait| crate::limits::too_many("searches", wait))?;
    let gid = ctx.query_opt_u64("gid")?;
    let page = ctx
        .query_opt_u64("page")?
        .map(|p| p.min(i64::MAX as u64) as i64);
    let size = ctx
        .query_opt_u64("size")?
        .map(|s| s.min(i64::MAX as u64) as i64);
    let (page, size) = validate::paging(page, size)?;
    let hits = ctx.app.db.search(ctx.uid, gid, query, page, size).await?;
    let out: Vec<SearchHitOut> = hits
        .iter()
        .map(|h| SearchHitOut::new(h, ctx.uid, &ctx.app.config.time_zone))
        .collect();
    Ok(protocol::success(&out))
}
