//! `rim invite create`: an invite code for `registration = "invite"`.

use anyhow::bail;

use super::{load_config, when};
use crate::cli::{InviteCommand, InviteCreateArgs};
use crate::store::admin::{self, NewInvite};

pub fn run(cmd: InviteCommand) -> anyhow::Result<()> {
    match cmd {
        InviteCommand::Create(args) => create(args),
    }
}

fn create(args: InviteCreateArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let valid_ms = parse_expiry(&args.expires)?;
    let mut conn = admin::open_for_change(&config.db, true, config.checkpoints)?;
    let code = crate::auth::new_invite_code();
    let expires_at = valid_ms.map(|ms| crate::time::now_ms() + ms);
    let invite = NewInvite {
        code_hash: crate::auth::invite_hash(&code),
        max_uses: args.uses,
        expires_at,
        created_by: None,
    };
    admin::immediate(&mut conn, |c| {
        admin::create_invite(c, &invite, crate::time::now_ms())
    })?;
    println!("code: {code}");
    if let Some(link) = config.invite_link(&code) {
        println!("link: {link}");
    }
    println!("uses: {}", args.uses);
    println!("expires: {}", when(expires_at));
    if config.registration != crate::config::RegistrationMode::Invite {
        eprintln!(
            "note: the configuration does not say registration = \"invite\", so the server does not ask for codes"
        );
    }
    Ok(())
}

/// `7d`, `12h` or `never`: how long a code stays valid, in milliseconds.
fn parse_expiry(text: &str) -> anyhow::Result<Option<i64>> {
    let text = text.trim().to_ascii_lowercase();
    if text == "never" {
        return Ok(None);
    }
    let (number, unit_ms) = if let Some(days) = text.strip_suffix('d') {
        (days, 86_400_000)
    } else if let Some(hours) = text.strip_suffix('h') {
        (hours, 3_600_000)
    } else {
        bail!("--expires {text:?}: use days like 7d, hours like 12h, or never");
    };
    match number.parse::<i64>() {
        Ok(n) if n >= 1 && n * unit_ms <= 3650 * 86_400_000 => Ok(Some(n * unit_ms)),
        _ => bail!("--expires {text:?}: use 1h to 3650d, or never"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_parses_days_hours_and_never() {
        assert_eq!(parse_expiry("7d").unwrap(), Some(7 * 86_400_000));
        assert_eq!(parse_expiry("12H").unwrap(), Some(12 * 3_600_000));
        assert_eq!(parse_expiry("never").unwrap(), None);
        for bad in ["", "7", "0d", "-1d", "7w", "99999d"] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }
}
