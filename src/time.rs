//! Wall-clock time as Unix milliseconds, and the text forms rim prints:
//! `YYYY-MM-DD HH:MM:SS` on the wire, in the server's [`Zone`], and RFC 3339
//! (UTC) in logs.
//!
//! The wire form carries no offset: rim's clients read it as their own local
//! time, so a server whose family lives in UTC+8 must write UTC+8. The zone
//! is the `time_zone` setting, by default the system's own. Its rules (and
//! their daylight-saving changes) come from the IANA time zone database,
//! through `jiff`: the system's copy, or the one built into the binary where
//! the system has none. Every object with such a time also carries it as
//! Unix milliseconds, which need no zone.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The time zone wire times are written in.
#[derive(Debug, Clone)]
pub struct Zone(TimeZone);

impl Zone {
    pub fn utc() -> Zone {
        Zone(TimeZone::UTC)
    }

    /// The system's zone: `TZ` if set, else `/etc/localtime`; UTC when
    /// neither names a zone.
    pub fn system() -> Zone {
        match TimeZone::try_system() {
            Ok(tz) if !tz.is_unknown() => Zone(tz),
            _ => Zone::utc(),
        }
    }

    /// A zone by its IANA name (`Asia/Shanghai`, `Europe/Berlin`, `UTC`).
    pub fn named(name: &str) -> Result<Zone, String> {
        TimeZone::get(name)
            .map(Zone)
            .map_err(|e| format!("{name:?} is not a time zone like Asia/Shanghai: {e}"))
    }

    /// Its IANA name, or a description when it has none (a `TZ` rule).
    pub fn name(&self) -> String {
        match self.0.iana_name() {
            Some(name) => name.to_owned(),
            None => format!("{:?}", self.0),
        }
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name() == other.name()
    }
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The wire format of rim clients: `2026-11-25 18:40:08`, in `zone`.
pub fn format_wire(ms: i64, zone: &Zone) -> String {
    let t = zone.0.to_datetime(timestamp(ms));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-11-25T18:40:08.123Z`, for logs.
pub fn format_rfc3339(ms: i64) -> String {
    let t = TimeZone::UTC.to_datetime(timestamp(ms));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let utc = Zone::utc();
        assert_eq!(format_wire(0, &utc), "1970-01-01 00:00:00");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(format_wire(951_827_696_000, &utc), "2000-02-29 12:34:56");
        assert_eq!(
            format_rfc3339(1_795_632_008_123),
            "2026-11-25T18:40:08.123Z"
        );
        assert_eq!(format_wire(-1000, &utc), "1969-12-31 23:59:59");
    }

    #[test]
    fn wire_times_are_written_in_the_zone() {
        let shanghai = Zone::named("Asia/Shanghai").unwrap();
        assert_eq!(
            format_wire(1_795_632_008_123, &shanghai),
            "2026-11-26 02:40:08"
        );
        // Berlin: UTC+1 in winter, UTC+2 in summer (2026-07-01 12:00 UTC).
        let berlin = Zone::named("Europe/Berlin").unwrap();
        assert_eq!(
            format_wire(1_795_632_008_123, &berlin),
            "2026-11-25 19:40:08"
        );
        assert_eq!(
            format_wire(1_782_907_200_000, &berlin),
            "2026-07-01 14:00:00"
        );
        assert_eq!(shanghai.name(), "Asia/Shanghai");
        assert!(Zone::named("Mars/Olympus_Mons").is_err());
    }
}
