//! `/api/group/*`: creating groups and direct chats, members and roles.

use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::limits;
use crate::protocol::{self, GroupOut, MemberOut};
use crate::store::{MemberOp, NotifyLevel};
use crate::validate;

pub async fn create(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::GroupCreate = ctx.json()?;
    if req.group.mode == Some(1) {
        return Err(Error::bad_request(
            "group/create makes groups only; use /api/group/direct for a direct chat",
        ));
    }
    let name = validate::group_name(&req.group.name)?;
    validate::avatar(&req.group.avatar)?;
    let members = req
        .users
        .iter()
        .map(|m| Ok((m.uid, m.role()?)))
        .collect::<Result<Vec<_>>>()?;
    let limits = &ctx.app.limits;
    limits
        .groups_per_user
        .check(&ctx.uid)
        .map_err(|wait| limits::too_many("new groups", wait))?;
    let others = members.iter().filter(|(uid, _)| *uid != ctx.uid).count();
    limits
        .member_adds_per_user
        .check_n(&ctx.uid, others.min(u32::MAX as usize) as u32)
        .map_err(|wait| limits::too_many("members added to groups", wait))?;
    let gid = ctx
        .app
        .db
        .create_group(ctx.uid, name, req.group.avatar, members)
        .await?;
    Ok(protocol::success(&gid))
}

pub async fn update(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::GroupUpdate = ctx.json()?;
    let name = req.name.as_deref().map(validate::group_name).transpose()?;
    if let Some(avatar) = &req.avatar {
        validate::avatar(avatar)?;
    }
    ctx.app
        .update_group(ctx.uid, req.id, name, req.avatar)
        .await?;
    Ok(protocol::success(&true))
}

/// The caller's conversations. A `uid` in the query is ignored: nobody can
/// list another user's groups.
pub async fn list(ctx: Ctx) -> Result<Vec<u8>> {
    let groups = ctx.app.db.groups_of(ctx.uid).await?;
    let levels: std::collections::HashMap<u64, _> = ctx
        .app
        .db
        .notify_levels(ctx.uid)
        .await?
        .into_iter()
        .collect();
    let out: Vec<GroupOut> = groups
        .iter()
        .map(|g| {
            let level = levels
                .get(&g.id)
                .copied()
                .unwrap_or_else(|| NotifyLevel::default_for(g.mode));
            GroupOut::from(g).with_level(level)
        })
        .collect();
    Ok(protocol::success(&out))
}

pub async fn members(ctx: Ctx) -> Result<Vec<u8>> {
    let gid = ctx.query_u64("gid")?;
    let members = ctx.app.db.group_members(ctx.uid, gid).await?;
    let out: Vec<MemberOut> = members.iter().map(|m| MemberOut::new(m, ctx.uid)).collect();
    Ok(protocol::success(&out))
}

pub async fn change_members(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::MemberChange = ctx.json()?;
    let op = match req.op_type {
        1 => MemberOp::Add,
        2 => MemberOp::Remove,
        3 => MemberOp::Promote,
        4 => MemberOp::Demote,
        other => {
            return Err(Error::bad_request(format!(
                "opType {other} is not valid: use 1 (add), 2 (remove), 3 (make admin) or 4 (remove admin)"
            )));
        }
    };
    validate::member_uids(&req.uids, ctx.app.config.max_group_members)?;
    if op == MemberOp::Add {
        let others = req.uids.iter().filter(|uid| **uid != ctx.uid).count();
        ctx.app
            .limits
            .member_adds_per_user
            .check_n(&ctx.uid, others.min(u32::MAX as usize) as u32)
            .map_err(|wait| limits::too_many("members added to groups", wait))?;
    }
    ctx.app
        .change_members(ctx.uid, req.gid, req.uids, op)
        .await?;
    Ok(protocol::success(&true))
}

/// The caller leaves a group (a direct chat cannot be left: 400).
pub async fn leave(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::GroupLeave = ctx.json()?;
    ctx.app.leave_group(ctx.uid, req.gid).await?;
    Ok(protocol::success(&true))
}

pub async fn direct(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::Direct = ctx.json()?;
    let gid = ctx.app.db.direct_group(ctx.uid, req.uid).await?;
    Ok(protocol::success(&gid))
}
