//! The wall clock, read only here in the binary: the library crates take time
//! as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Today's date (UTC) as (year, month, day).
pub fn today() -> (u16, u8, u8) {
    hallpass_engine::civil_from_days(now_ms().div_euclid(86_400_000))
}

/// `2026-11-23T09:14:02Z` for a time in milliseconds (the store's format).
pub fn rfc3339(ms: i64) -> String {
    hallpass_store::fmt_utc(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(rfc3339(1_795_425_242_000), "2026-11-23T09:14:02Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
