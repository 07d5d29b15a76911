//! Time: the one place the console reads the clock, and the two ways it writes and reads times
//! (RFC 3339 in UTC for JSON and pages; a day or an RFC 3339 time for `since=` filters).

use std::time::{SystemTime, UNIX_EPOCH};

use hallpass_core::date::civil_from_days;

const MS_PER_DAY: i64 = 86_400_000;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2026-11-23T09:14:02Z`, as in the contract's JSON.
pub(crate) fn rfc3339(ms: i64) -> String {
    hallpass_store::fmt_utc(ms)
}

/// `2026-11-23 09:14:02 UTC`, for people.
pub(crate) fn human(ms: i64) -> String {
    let s = rfc3339(ms);
    format!("{} UTC", s.trim_end_matches('Z').replacen('T', " ", 1))
}

/// A `since=` value: `2026-11-23` (midnight UTC) or an RFC 3339 time
/// (`2026-11-23T09:14:02Z`, `2026-11-23T10:14:02+01:00`, fractions of a second allowed).
/// `None` when it is neither.
pub(crate) fn parse_since(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let days = days_from_civil(year, month, day)?;
    let midnight = days.checked_mul(MS_PER_DAY)?;
    if b.len() == 10 {
        return Some(midnight);
    }
    // Time of day: `T` (or `t`, or a space, as RFC 3339 allows) then hh:mm:ss[.frac] and a zone.
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, m, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    // 60 is a leap second: counted as the next second's start, which is what a filter needs.
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, &c) in frac[..n].iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        rest = &frac[n..];
    }
    let offset_ms = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let oh = digits(&[*hh1, *hh2])?;
            let om = digits(&[*mm1, *mm2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) * 60_000;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let local = midnight + ((h * 60 + m) * 60 + sec) * 1000 + millis;
    Some(local - offset_ms)
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` for a date that does not exist.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    // Howard Hinnant's algorithm, the inverse of `civil_from_days`.
    let y_adj = if m <= 2 { y - 1 } else { y };
    let era = y_adj.div_euclid(400);
    let yoe = y_adj - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // 2026-02-30 would come out as 2026-03-02: refuse it rather than guess.
    let back = civil_from_days(days);
    (i64::from(back.0) == y && i64::from(back.1) == m && i64::from(back.2) == d).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_means_midnight_utc() {
        assert_eq!(parse_since("2026-11-23"), Some(1_795_392_000_000));
        assert_eq!(parse_since("1970-01-01"), Some(0));
        assert_eq!(parse_since("2000-02-29"), Some(951_782_400_000));
    }

    #[test]
    fn rfc3339_times_with_zones_and_fractions() {
        assert_eq!(parse_since("2026-11-23T09:14:02Z"), Some(1_795_425_242_000));
        assert_eq!(
            parse_since("2026-11-23T10:14:02+01:00"),
            Some(1_795_425_242_000)
        );
        assert_eq!(
            parse_since("2026-11-23T08:44:02-00:30"),
            Some(1_795_425_242_000)
        );
        assert_eq!(
            parse_since("2026-11-23T09:14:02.5Z"),
            Some(1_795_425_242_500)
        );
        assert_eq!(
            parse_since("2026-11-23t09:14:02.123456z"),
            Some(1_795_425_242_123)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for s in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-23T25:00:00Z",
            "2026-11-23T09:14:02",
            "2026-11-23T09:14:02+0100",
            "2026-11-23T09:14Z",
            "2026-11-23T09:14:02.Z",
            "26-11-23",
            "2026-1-23",
        ] {
            assert_eq!(parse_since(s), None, "{s:?}");
        }
    }

    #[test]
    fn times_round_trip_through_the_contract_format() {
        let ms = 1_795_425_242_000;
        assert_eq!(rfc3339(ms), "2026-11-23T09:14:02Z");
        assert_eq!(parse_since(&rfc3339(ms)), Some(ms));
        assert_eq!(human(ms), "2026-11-23 09:14:02 UTC");
    }
}
