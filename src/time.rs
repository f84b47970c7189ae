//! Wall-clock time as Unix milliseconds, and the two text forms rim prints:
//! `YYYY-MM-DD HH:MM:SS` (UTC) on the wire, RFC 3339 in logs.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Splits Unix milliseconds into a UTC civil date and time.
fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Days since 1970-01-01 to a proleptic Gregorian date (the well-known
    // era-based conversion: 400-year eras of 146,097 days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        millis,
    )
}

/// The wire format of rim clients: `2026-11-25 18:40:08`, UTC.
pub fn format_wire(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

pub fn format_rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_wire(0), "1970-01-01 00:00:00");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(format_wire(951_827_696_000), "2000-02-29 12:34:56");
        assert_eq!(
            format_rfc3339(1_795_632_008_123),
            "2026-11-25T18:40:08.123Z"
        );
        assert_eq!(format_wire(-1000), "1969-12-31 23:59:59");
    }
}
