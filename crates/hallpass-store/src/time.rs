//! Milliseconds since the Unix epoch: the clock, and a readable form for messages.

use std::time::{SystemTime, UNIX_EPOCH};

use hallpass_core::date::civil_from_days;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2026-11-23T09:14:02Z` for a time in milliseconds since the Unix epoch.
pub fn fmt_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::fmt_utc;

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(fmt_utc(0), "1970-01-01T00:00:00Z");
        // 2026-11-23T09:14:02Z, as in the contract's example
        assert_eq!(fmt_utc(1_795_425_242_999), "2026-11-23T09:14:02Z");
    }
}
