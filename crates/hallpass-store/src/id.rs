//! ULIDs: 26 characters of Crockford base32, a 48-bit millisecond time then 80 random bits, so
//! they sort by time; within one process they also sort in the order they were made.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use crate::time::now_ms;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RANDOM_BITS: u32 = 80;

/// The last id made in this process: (milliseconds, random part).
static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

/// A new ULID (26 chars Crockford base32, millisecond time + randomness, sortable, monotonic
/// within a process). Used for message and copy ids (`"01J..."`).
pub fn new_id() -> String {
    let now = u64::try_from(now_ms()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    let (ms, random) = if now > last.0 {
        (now, random80())
    } else {
        // Same millisecond, or the clock stepped back: count up from the last id, so ids made
        // later in this process still sort later.
        let next = last.1 + 1;
        if next >> RANDOM_BITS == 0 {
            (last.0, next)
        } else {
            (last.0 + 1, random80())
        }
    };
    *last = (ms, random);
    encode((u128::from(ms) << RANDOM_BITS) | random)
}

/// 80 random bits, leaving room to count up within a millisecond.
fn random80() -> u128 {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes[6..]).is_err() {
        // The OS random source failed (practically never). Ids need to be unique, not secret:
        // fall back to std's per-process random hashing keys.
        let hi = RandomState::new().hash_one(now_ms());
        let lo = RandomState::new().hash_one(hi);
        bytes[6..14].copy_from_slice(&hi.to_be_bytes());
        bytes[14..].copy_from_slice(&lo.to_be_bytes()[..2]);
    }
    // Top bit clear: 2^79 increments before the millisecond has to move on.
    u128::from_be_bytes(bytes) & ((1u128 << (RANDOM_BITS - 1)) - 1)
}

fn encode(v: u128) -> String {
    (0..26)
        .map(|i| char::from(CROCKFORD[((v >> (5 * (25 - i))) & 31) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_26_crockford_chars_starting_with_the_time() {
        let id = new_id();
        assert_eq!(id.len(), 26);
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
        // Ids made in the 2020s to 2030s start with "01".
        assert!(id.starts_with("01"), "{id}");
    }

    #[test]
    fn ids_made_in_a_burst_are_unique_and_increasing() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn encodes_known_values() {
        assert_eq!(encode(0), "00000000000000000000000000");
        assert_eq!(encode(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(encode(31), "0000000000000000000000000Z");
    }
}
