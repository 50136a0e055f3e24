//! ULIDs for grant ids: 48-bit Unix time in milliseconds, then 80 random bits, as 26
//! characters of Crockford base32 (https://github.com/ulid/spec).
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh ULID for the current time, with randomness from /dev/urandom.
pub fn generate() -> std::io::Result<String> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut random = [0u8; 10];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    Ok(encode(ms as u64, random))
}

/// Encode a time (ms; only its low 48 bits are used) and 80 random bits.
pub fn encode(ms: u64, random: [u8; 10]) -> String {
    let mut value: u128 = u128::from(ms & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (72 - 8 * i);
    }
    (0..26)
        .map(|i| CROCKFORD[((value >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_time_part() {
        // The ULID spec's example: 1469918176385 ms encodes as 01ARYZ6S41.
        assert_eq!(&encode(1_469_918_176_385, [0; 10])[..10], "01ARYZ6S41");
    }

    #[test]
    fn layout() {
        assert_eq!(encode(0, [0; 10]), "00000000000000000000000000");
        assert_eq!(encode(u64::MAX, [0xFF; 10]), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(
            encode(0, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            "00000000000000000000000001"
        );
        assert_eq!(encode(1, [0; 10]), "00000000010000000000000000");
    }

    #[test]
    fn fresh_ids_differ_and_sort_by_time() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| CROCKFORD.contains(&c)));
        assert!(encode(1_000, [0xFF; 10]) < encode(1_001, [0; 10]));
    }
}
