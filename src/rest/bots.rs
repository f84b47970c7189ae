//! `POST /api/bot/<key>/message`: a script posts as its bot, in the bot's
//! conversation, with the key `rim bot add` printed. The body is the text
//! itself (`text/plain`) or `{"content": "..."}` (`application/json`).

use hyper::header;

use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::protocol;
use crate::store::{Kind, NewMessage};

pub async fn message(ctx: Ctx) -> Result<Vec<u8>> {
    // The route matches every path under /api/bot/; only `<key>/message` is one.
    let Some(key) = ctx
        .param
        .strip_suffix("/message")
        .filter(|k| !k.contains('/'))
    else {
        return Err(Error::not_found(
            "no such route: use POST /api/bot/<key>/message",
        ));
    };
    if key.is_empty() || key.len() > 128 {
        return Err(unknown_key());
    }
    let Some((uid, gid)) = ctx.app.db.bot_by_key(crate::auth::token_hash(key)).await? else {
        return Err(unknown_key());
    };
    let json = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let content = if json {
        ctx.json::<protocol::BotMessage>()?.content
    } else {
        String::from_utf8(ctx.body().to_vec())
            .map_err(|_| Error::bad_request("the message must be UTF-8 text"))?
    };
    let content = content.trim_end_matches(['\r', '\n']).to_owned();
    // Checked, rate limited (messages_per_second, per bot), stored, pushed
    // and notified like a person's message.
    let stored = ctx
        .app
        .send_message(
            NewMessage {
                gid,
                uid,
                kind: Kind::Text,
                content,
                client_msg_id: String::new(),
                file: None,
                reply_to: None,
            },
            None,
        )
        .await?;
    Ok(protocol::success(&stored.message.id))
}

fn unknown_key() -> Error {
    Error::Unauthorized("unknown bot key: check the URL `rim bot add` printed".into())
}
