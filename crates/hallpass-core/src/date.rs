//! Calendar arithmetic for callers that read the clock and pass today in, and
//! for spreadsheet date serials.

/// The calendar date of a count of days since 1970-01-01 (proleptic
/// Gregorian), for callers that read the clock and pass today in.
pub fn civil_from_days(days: i64) -> (u16, u8, u8) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as u16, m as u8, d as u8)
}
