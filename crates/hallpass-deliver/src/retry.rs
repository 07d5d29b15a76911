//! The back-off schedule between delivery attempts after a transient failure.

use std::time::Duration;

/// How long to wait before attempt number `attempt + 1`, after attempt number `attempt`
/// (counting from 1) failed transiently: `min`, then doubling, never more than `max`
/// (Postfix's defaults are 300 s and 4000 s: 300, 600, 1200, 2400, 4000, 4000, …).
///
/// Attempt 0 is taken as 1. When `min` is larger than `max`, `max` wins.
pub fn retry_delay(attempt: u32, min: Duration, max: Duration) -> Duration {
    let mut delay = min;
    // Doubling stops as soon as `max` is reached (or `min` is zero), so this loop is short
    // whatever the attempt number.
    for _ in 1..attempt {
        if delay >= max || delay.is_zero() {
            break;
        }
        delay = delay.saturating_mul(2);
    }
    delay.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn doubles_from_min_up_to_max() {
        let delays: Vec<u64> = (1..=7)
            .map(|attempt| retry_delay(attempt, secs(300), secs(4000)).as_secs())
            .collect();
        assert_eq!(delays, [300, 600, 1200, 2400, 4000, 4000, 4000]);
    }

    #[test]
    fn attempt_zero_counts_as_the_first() {
        assert_eq!(retry_delay(0, secs(300), secs(4000)), secs(300));
    }

    #[test]
    fn huge_attempt_numbers_stay_at_max() {
        assert_eq!(retry_delay(u32::MAX, secs(300), secs(4000)), secs(4000));
        assert_eq!(retry_delay(40, secs(1), Duration::MAX), secs(1 << 39));
        assert_eq!(retry_delay(u32::MAX, secs(1), Duration::MAX), Duration::MAX);
    }

    #[test]
    fn zero_min_stays_zero() {
        assert_eq!(
            retry_delay(u32::MAX, Duration::ZERO, secs(4000)),
            Duration::ZERO
        );
    }

    #[test]
    fn min_above_max_gives_max() {
        assert_eq!(retry_delay(1, secs(500), secs(60)), secs(60));
    }
}
