//! Every rule a client's input must follow before anything is stored: the
//! one place to read (and change) what an account, a name, a message or a
//! file name may be. A leaf: each rule is a plain function over the value,
//! answering the 400 (or 413) that says what to fix.
//!
//! REST handlers, the WebSocket handler, `app` and the operator's commands
//! all call these; none of them states a length or a character rule itself.

use crate::error::{Error, Result};
use crate::search::{MAX_TERMS, Query};

/// Longest display name, group name or bot name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest avatar reference (a URL or a file reference), in characters.
pub const MAX_AVATAR_CHARS: usize = 1024;
/// Longest email address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest `clientMsgId`, in bytes.
pub const MAX_CLIENT_MSG_ID: usize = 128;
/// Longest file name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Largest picture `POST /api/user/avatar` takes, in bytes.
pub const MAX_AVATAR_BYTES: u64 = 2 << 20;
/// Longest `User-Agent` remembered with a session, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 256;
/// Longest account searched for (longer than any account, to answer 404
/// rather than 400 for near misses).
pub const MAX_ACCOUNT_QUERY: usize = 64;

/// A login name: 3 to 32 letters, digits, '_', '.' or '-'.
pub fn account(account: &str) -> Result<()> {
    let ok_len = (3..=32).contains(&account.len());
    let ok_chars = account
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_len || !ok_chars {
        return Err(Error::bad_request(
            "account must be 3 to 32 characters of letters, digits, '_', '.' or '-'",
        ));
    }
    Ok(())
}

/// An account to look up: trimmed, 1 to [`MAX_ACCOUNT_QUERY`] bytes.
pub fn account_query(raw: &str) -> Result<String> {
    let account = raw.trim();
    if account.is_empty() || account.len() > MAX_ACCOUNT_QUERY {
        return Err(Error::bad_request(format!(
            "account must be 1 to {MAX_ACCOUNT_QUERY} characters"
        )));
    }
    Ok(account.to_owned())
}

/// A password: 8 to 1024 characters.
pub fn password(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < 8 || password.len() > 1024 {
        return Err(Error::bad_request(
            "password must be 8 to 1024 characters long",
        ));
    }
    Ok(())
}

/// The invisible characters that reorder text around them (Unicode's
/// bidirectional embeddings, overrides, isolates and marks). In a name they
/// make it show as something else ("alice\u{202e}gpj.exe"), so names
/// refuse them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Bounded length, and no control or bidirectional control characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.chars().count() > max_chars {
        return Err(Error::bad_request(format!(
            "{field} is longer than {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "{field} contains control characters"
        )));
    }
    if value.chars().any(is_bidi_control) {
        return Err(Error::bad_request(format!(
            "{field} contains characters that reorder text (bidirectional controls)"
        )));
    }
    Ok(())
}

/// A new display name of one's own, trimmed; never empty.
pub fn new_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::bad_request("name is empty: say what to be called"));
    }
    text("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_owned())
}

/// A `User-Agent` as a login sent it, made fit to list: control
/// characters dropped, at most [`MAX_USER_AGENT_CHARS`]. Never refused: it
/// is only shown back to the account's owner.
pub fn user_agent(raw: &str) -> String {
    raw.chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .take(MAX_USER_AGENT_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A person's display name, trimmed; the account when it is empty.
pub fn display_name(name: &str, account: &str) -> Result<String> {
    let name = match name.trim() {
        "" => account,
        name => name,
    };
    text("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_owned())
}

/// `name` without bidirectional controls, then trimmed: for names that come
/// from elsewhere (a file's), which are kept rather than refused.
fn without_bidi(name: &str) -> String {
    name.chars()
        .filter(|c| !is_bidi_control(*c))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A group's name, trimmed; never empty.
pub fn group_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::bad_request("a group needs a name"));
    }
    text("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_owned())
}

/// An avatar reference of a person or a group.
pub fn avatar(avatar: &str) -> Result<()> {
    text("avatar", avatar, MAX_AVATAR_CHARS)
}

/// An email address, or nothing.
pub fn email(email: &str) -> Result<()> {
    if email.is_empty() {
        return Ok(());
    }
    text("email", email, MAX_EMAIL_CHARS)?;
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !email.contains(' ') =>
        {
            Ok(())
        }
        _ => Err(Error::bad_request(
            "email is not an address like name@example.org",
        )),
    }
}

/// A message's content: not empty, at most `max_bytes` (413 beyond).
pub fn message_content(content: &str, max_bytes: usize) -> Result<()> {
    if content.is_empty() {
        return Err(Error::bad_request("a message needs content"));
    }
    if content.len() > max_bytes {
        return Err(Error::TooLarge(format!(
            "the message is longer than {max_bytes} bytes"
        )));
    }
    Ok(())
}

/// Longest reaction, in bytes (a family emoji with skin tones is 25-35).
pub const MAX_REACTION_BYTES: usize = 32;
/// At most this many `@account`s of a message are looked up.
pub const MAX_MENTIONS: usize = 20;

/// A reaction: one emoji (one grapheme of pictographs, with its variation
/// selectors, skin tones, tags and zero-width joins; a flag; a keycap), at
/// most [`MAX_REACTION_BYTES`] bytes.
pub fn reaction(content: &str) -> Result<()> {
    let refuse = || {
        Error::bad_request(format!(
            "a reaction is one emoji of at most {MAX_REACTION_BYTES} bytes"
        ))
    };
    if content.is_empty() || content.len() > MAX_REACTION_BYTES {
        return Err(refuse());
    }
    let chars: Vec<char> = content.chars().collect();
    let regional = |c: char| ('\u{1F1E6}'..='\u{1F1FF}').contains(&c);
    // A flag: two regional indicators.
    if chars.len() == 2 && chars.iter().all(|&c| regional(c)) {
        return Ok(());
    }
    // A keycap: 0-9, # or *, an optional VS16, U+20E3.
    if let [base, rest @ ..] = chars.as_slice()
        && (base.is_ascii_digit() || matches!(base, '#' | '*'))
    {
        return match rest {
            ['\u{20E3}'] | ['\u{FE0F}', '\u{20E3}'] => Ok(()),
            _ => Err(refuse()),
        };
    }
    // Pictographs joined by ZWJ, each followed by its modifiers.
    let mut expect_base = true;
    for &c in &chars {
        if expect_base {
            if !pictograph(c) || regional(c) {
                return Err(refuse());
            }
            expect_base = false;
        } else if c == '\u{200D}' {
            expect_base = true;
        } else if !emoji_modifier(c) {
            return Err(refuse());
        }
    }
    if expect_base {
        return Err(refuse());
    }
    Ok(())
}

/// Code points that are emoji on their own (Unicode's Extended_Pictographic,
/// in the ranges where emoji live).
fn pictograph(c: char) -> bool {
    matches!(c as u32,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA
        | 0x231A..=0x23FF | 0x24C2 | 0x25AA..=0x25FE | 0x2600..=0x27BF
        | 0x2934 | 0x2935 | 0x2B05..=0x2B55 | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x1F000..=0x1FAFF)
}

/// What may follow a pictograph inside one emoji: variation selectors, skin
/// tones, tag characters (subdivision flags), the combining enclosing keycap.
fn emoji_modifier(c: char) -> bool {
    matches!(c as u32, 0xFE0E | 0xFE0F | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F | 0x20E3)
}

/// The accounts a text names as `@account` (at most [`MAX_MENTIONS`],
/// each once): an `@` at the start or after a character that is not part of
/// an account (so an email address names nobody), then 3 to 32 account
/// characters.
pub fn mentioned_accounts(text: &str) -> Vec<&str> {
    let account_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut found: Vec<&str> = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && !prev.is_some_and(account_char) {
            let rest = &text[i + 1..];
            let end = rest.find(|c: char| !account_char(c)).unwrap_or(rest.len());
            // A sentence may end right after the name.
            let name = rest[..end].trim_end_matches(['.', '-']);
            if (3..=32).contains(&name.len()) && !found.iter().any(|f| f.eq_ignore_ascii_case(name))
            {
                found.push(name);
                if found.len() == MAX_MENTIONS {
                    break;
                }
            }
        }
        prev = Some(c);
    }
    found
}

/// A client's id for a frame, which it may resend with.
pub fn client_msg_id(id: &str) -> Result<()> {
    if id.len() > MAX_CLIENT_MSG_ID {
        return Err(Error::bad_request(format!(
            "clientMsgId is longer than {MAX_CLIENT_MSG_ID} characters"
        )));
    }
    Ok(())
}

/// The uids of one member change: at least one, at most `max`.
pub fn member_uids(uids: &[u64], max: usize) -> Result<()> {
    if uids.is_empty() {
        return Err(Error::bad_request("uids is empty"));
    }
    if uids.len() > max {
        return Err(Error::bad_request("too many uids in one request"));
    }
    Ok(())
}

/// A file name as a client gave it: its last path segment (so `../x`
/// cannot name a path), trimmed, at most [`MAX_FILE_NAME_CHARS`]
/// characters and without control characters (bidirectional controls are
/// dropped). May be empty: the server then names the file after its type.
pub fn file_name(raw: &str) -> Result<String> {
    let base = without_bidi(raw.rsplit(['/', '\\']).next().unwrap_or(""));
    let base = base.as_str();
    if base.chars().count() > MAX_FILE_NAME_CHARS {
        return Err(Error::bad_request(format!(
            "the file name is longer than {MAX_FILE_NAME_CHARS} characters"
        )));
    }
    if base.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "the file name contains control characters",
        ));
    }
    Ok(base.to_owned())
}

/// A search query: not empty, at most [`MAX_QUERY_CHARS`] characters and
/// [`MAX_TERMS`] words.
pub fn search_query(raw: &str) -> Result<Query> {
    let q = raw.trim();
    if q.is_empty() {
        return Err(Error::bad_request("q is empty: say what to search for"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::bad_request(format!(
            "q is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    Query::parse(q).map_err(|_| {
        Error::bad_request(format!(
            "q has more than {MAX_TERMS} words: search for fewer"
        ))
    })
}

/// Page and size for listing routes: page from 1, size 1 to 100.
pub fn paging(page: Option<i64>, size: Option<i64>) -> Result<(u32, u32)> {
    let page = page.unwrap_or(1);
    let size = size.unwrap_or(20);
    if !(1..=1_000_000).contains(&page) {
        return Err(Error::bad_request(format!(
            "page {page} is out of range: pages start at 1"
        )));
    }
    if !(1..=100).contains(&size) {
        return Err(Error::bad_request(format!(
            "size {size} is out of range: use 1 to 100"
        )));
    }
    Ok((page as u32, size as u32))
}

/// Longest push endpoint URL, in bytes (browsers' are a few hundred).
pub const MAX_PUSH_ENDPOINT: usize = 2048;

/// A push subscription's endpoint: an `https://` URL (or `http://` when
/// `push.allow_insecure_http` is on) whose host is one of `allowed_hosts`
/// (`*.example.com` allows every name under example.com), without user
/// information, on the default port unless plain http is allowed. Anything
/// else is refused: the server would otherwise send requests wherever a
/// client tells it to, into its own network too.
pub fn push_endpoint(endpoint: &str, allowed_hosts: &[String], allow_http: bool) -> Result<()> {
    let refuse = |why: &str| Err(Error::bad_request(format!("push endpoint refused: {why}")));
    if endpoint.len() > MAX_PUSH_ENDPOINT
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return refuse("not a URL of at most 2048 characters without spaces");
    }
    let rest = if let Some(rest) = endpoint.strip_prefix("https://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("http://").filter(|_| allow_http) {
        rest
    } else {
        return refuse("it must be an https:// URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') || authority.contains('[') {
        return refuse("it must name a push service's host");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = match port {
        None => true,
        Some(port) if allow_http => port.parse::<u16>().is_ok(),
        Some(port) => port == "443",
    };
    if !port_ok {
        return refuse("it must use the default https port");
    }
    let host = host.to_ascii_lowercase();
    let listed = allowed_hosts
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == *pattern,
        });
    if host.is_empty() || !listed {
        return refuse(&format!(
            "{host:?} is not a push service this server sends to (push.allowed_hosts)"
        ));
    }
    Ok(())
}

/// A subscription's `keys.p256dh` and `keys.auth` (base64url): a P-256
/// public key, uncompressed and on the curve, and a 16-byte secret.
/// Returns them decoded.
pub fn push_keys(p256dh: &str, auth: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = |what: &str| Error::bad_request(format!("keys.{what}"));
    let public =
        crate::webpush::decode_base64url(p256dh).ok_or_else(|| bad("p256dh must be base64url"))?;
    let secret =
        crate::webpush::decode_base64url(auth).ok_or_else(|| bad("auth must be base64url"))?;
    match crate::webpush::Receiver::new(&public, &secret) {
        Ok(_) => Ok((public, secret)),
        Err(crate::webpush::KeyError::BadAuthSecret) => Err(bad("auth must be 16 bytes")),
        Err(_) => Err(bad(
            "p256dh must be an uncompressed P-256 public key (65 bytes)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji() {
        for ok in [
            "👍",
            "❤️",
            "👍🏽",
            "👨‍👩‍👧",
            "🇫🇷",
            "1️⃣",
            "#⃣",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "☕",
        ] {
            assert!(reaction(ok).is_ok(), "{ok:?} is one emoji");
        }
        for bad in [
            "",
            "a",
            "ok",
            "👍👍",
            "👍 ",
            "🇫",
            "🇫🇷🇩🇪",
            "\u{200D}",
            "👍\u{200D}",
            "1",
            "é",
            "👨‍👩‍👧‍👦👨‍👩‍👧‍👦",
        ] {
            assert!(reaction(bad).is_err(), "{bad:?} is not one emoji");
        }
    }

    #[test]
    fn mentions_are_accounts_after_an_at_sign() {
        assert_eq!(
            mentioned_accounts("@bob and @Carol.x, see @bob. mail me at a@example.org @ab"),
            vec!["bob", "Carol.x"]
        );
        assert_eq!(mentioned_accounts("(@dave_1)"), vec!["dave_1"]);
        assert!(mentioned_accounts("no one here").is_empty());
    }

    #[test]
    fn push_endpoints_must_be_https_on_a_listed_host() {
        let hosts = [
            "fcm.googleapis.com".to_owned(),
            "*.push.apple.com".to_owned(),
        ];
        let ok = |e: &str| push_endpoint(e, &hosts, false).is_ok();
        assert!(ok("https://fcm.googleapis.com/fcm/send/x"));
        assert!(ok("https://FCM.googleapis.com:443/x"));
        assert!(ok("https://web.push.apple.com/x"));
        assert!(
            !ok("https://push.apple.com/x"),
            "the wildcard needs a name under it"
        );
        assert!(!ok("https://evilpush.apple.com.example/x"));
        assert!(!ok("https://xpush.apple.com/x"));
        assert!(!ok("http://fcm.googleapis.com/x"));
        assert!(!ok("https://fcm.googleapis.com:8443/x"));
        assert!(!ok("https://user@fcm.googleapis.com/x"));
        assert!(!ok("https://fcm.googleapis.com.evil.example/x"));
        assert!(!ok("https://[::1]/x"));
        assert!(!ok("https://fcm.googleapis.com/a b"));
        let local = ["127.0.0.1".to_owned()];
        assert!(push_endpoint("http://127.0.0.1:4000/x", &local, true).is_ok());
        assert!(push_endpoint("http://127.0.0.1:4000/x", &local, false).is_err());
    }

    #[test]
    fn file_names_lose_their_paths_and_keep_their_limits() {
        assert_eq!(file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(file_name("C:\\Users\\me\\cat.jpg").unwrap(), "cat.jpg");
        assert!(file_name("a\nb").is_err());
        assert!(file_name(&"x".repeat(300)).is_err());
    }

    #[test]
    fn file_names_lose_their_bidi_controls() {
        assert_eq!(file_name("photo\u{202E}gnp.exe").unwrap(), "photognp.exe");
        assert_eq!(file_name("\u{2067}a.txt\u{2069}").unwrap(), "a.txt");
        assert_eq!(
            file_name("שלום.txt").unwrap(),
            "שלום.txt",
            "RTL text itself stays"
        );
    }

    #[test]
    fn paging_is_bounded() {
        assert_eq!(paging(None, None).unwrap(), (1, 20));
        assert!(paging(Some(0), None).is_err());
        assert!(paging(Some(-1), None).is_err());
        assert!(paging(None, Some(101)).is_err());
        assert!(paging(None, Some(0)).is_err());
    }

    #[test]
    fn names_refuse_text_reordering_and_agents_lose_it() {
        assert!(display_name("alice\u{202e}gpj.exe", "alice").is_err());
        assert!(new_display_name("\u{2067}x").is_err());
        assert!(new_display_name("   ").is_err());
        assert_eq!(new_display_name(" Ali ").unwrap(), "Ali");
        assert_eq!(user_agent("Fire\u{202e}fox\n/1"), "Firefox/1");
        assert_eq!(user_agent(&"x".repeat(300)).len(), MAX_USER_AGENT_CHARS);
    }

    #[test]
    fn names_are_trimmed_and_defaulted() {
        assert_eq!(display_name("  Alice ", "alice").unwrap(), "Alice");
        assert_eq!(display_name("   ", "alice").unwrap(), "alice");
        assert_eq!(group_name(" team ").unwrap(), "team");
        assert!(group_name("  ").is_err());
        assert!(group_name(&"x".repeat(65)).is_err());
    }
}
