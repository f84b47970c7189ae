//! `/api/user/*`: registration, login, logout and profiles.

use super::ctx::Ctx;
use crate::app::Registration;
use crate::error::{Error, Result};
use crate::protocol::{self, UserOut};
use crate::validate;

pub async fn create(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::CreateUser = ctx.json()?;
    let uid = ctx
        .app
        .register(
            Registration {
                account: req.account,
                password: req.password,
                name: req.name,
                avatar: req.avatar,
                email: req.email,
                invite: req.invite,
            },
            ctx.ip,
        )
        .await?;
    crate::log_info!("user registered", uid = uid);
    Ok(protocol::success(&uid))
}

pub async fn login(ctx: Ctx) -> Result<Vec<u8>> {
    let req: protocol::Login = ctx.json()?;
    // Not `to_str`, which gives up on any byte beyond visible ASCII.
    let user_agent = ctx
        .headers
        .get(hyper::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let (uid, token) = ctx
        .app
        .login(req.account, req.password, ctx.ip, &user_agent)
        .await?;
    crate::log_info!("login", uid = uid);
    Ok(protocol::success(&token))
}

pub async fn logout(ctx: Ctx) -> Result<Vec<u8>> {
    ctx.app.logout(&ctx.token).await?;
    Ok(protocol::success(&true))
}

/// The user owning the token in `?token=`; that token is the credential.
pub async fn by_token(ctx: Ctx) -> Result<Vec<u8>> {
    let session = ctx.app.authenticate(ctx.query("token")?).await?;
    let user = ctx
        .app
        .db
        .user(session.uid)
        .await?
        .ok_or_else(|| Error::Unauthorized("the token's account no longer exists".into()))?;
    Ok(protocol::success(&UserOut::new(&user, session.uid)))
}

pub async fn get(ctx: Ctx) -> Result<Vec<u8>> {
    let uid = ctx.query_u64("uid")?;
    let user = ctx
        .app
        .db
        .user(uid)
        .await?
        .ok_or_else(|| Error::not_found(format!("user {uid} not found")))?;
    let (online, seen) = ctx.app.presence(uid, ctx.uid).await?;
    Ok(protocol::success(&UserOut::with_presence(
        &user,
        ctx.uid,
        online,
        seen,
        &ctx.app.config.time_zone,
    )))
}

/// Public facts a client shows before login: whether it must ask for an invite.
pub async fn server_info(ctx: Ctx) -> Result<Vec<u8>> {
    use crate::config::RegistrationMode;
    let registration = match ctx.app.config.registration {
        RegistrationMode::Open => "open",
        RegistrationMode::Invite => "invite",
        RegistrationMode::Closed => "closed",
    };
    Ok(protocol::success(&protocol::ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        registration,
    }))
}

/// The caller, from the bearer token.
pub async fn me(ctx: Ctx) -> Result<Vec<u8>> {
    let user = ctx
        .app
        .db
        .user(ctx.uid)
        .await?
        .ok_or_else(|| Error::Unauthorized("the token's account no longer exists".into()))?;
    Ok(protocol::success(&UserOut::new(&user, ctx.uid)))
}

pub async fn search(ctx: Ctx) -> Result<Vec<u8>> {
    let account = validate::account_query(ctx.query("account")?)?;
    let user = ctx
        .app
        .db
        .user_by_account(account.clone())
        .await?
        .ok_or_else(|| Error::not_found(format!("no user with account {account:?}")))?;
    Ok(protocol::success(&UserOut::new(&user, ctx.uid)))
}
