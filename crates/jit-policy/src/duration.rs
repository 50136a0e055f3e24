//! Durations as people write them: `"90s"`, `"5m"`, `"1h30m"`, `"2d"`; units
//! d, h, m, s (and ms); no sign, no spaces inside; at least one unit.
//!
//! Each unit may appear once, largest first (`"1h30m"`, not `"30m1h"`), so that a
//! typo such as `"1m1m"` is refused rather than guessed at.

use crate::error::PolicyError;
use std::time::Duration;

const HINT: &str =
    "expected a duration such as \"90s\", \"5m\" or \"1h30m\" (units d, h, m, s, ms)";

/// Units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

fn bad(s: &str, why: &str) -> PolicyError {
    PolicyError::Value(format!("{}: {why}; {HINT}", crate::text::quote(s)))
}

fn unexpected(c: u8) -> Option<&'static str> {
    match c {
        b'-' | b'+' => Some("no sign allowed"),
        b' ' | b'\t' | b'\n' | b'\r' => Some("no spaces allowed"),
        b'.' | b',' => Some("no fractions: write \"1h30m\" rather than \"1.5h\""),
        _ => None,
    }
}

/// Parse `"1h30m"` etc. Errors say what was expected (`expected a duration such as "90s", "5m" or "1h30m"`).
pub fn parse_duration(s: &str) -> Result<Duration, PolicyError> {
    if s.is_empty() {
        return Err(bad(s, "empty"));
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen; the next one must come later in the table.
    let mut last_unit: Option<usize> = None;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad(
                s,
                unexpected(b[i]).unwrap_or("a number must come first"),
            ));
        }
        let number: u64 = s[start..i]
            .parse()
            .map_err(|_| bad(s, "number too large"))?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        if unit.is_empty() {
            let why = match b.get(i) {
                None => "missing unit after the number",
                Some(&c) => unexpected(c).unwrap_or("unexpected character"),
            };
            return Err(bad(s, why));
        }
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad(
                s,
                &format!("unknown unit {}", crate::text::quote(unit)),
            ));
        };
        if let Some(prev) = last_unit {
            if idx <= prev {
                return Err(bad(s, "each unit at most once, largest first"));
            }
        }
        last_unit = Some(idx);
        let ms = number
            .checked_mul(UNITS[idx].1)
            .ok_or_else(|| bad(s, "too long"))?;
        total_ms = total_ms.checked_add(ms).ok_or_else(|| bad(s, "too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Human form, largest units first, no zero parts: 5400s -> "1h30m", 0 -> "0s", 59.5s -> "59s".
///
/// Fractions of a second are dropped, except that a non-zero duration below one
/// second is shown in milliseconds ("500ms"), so that it does not read as "0s".
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.subsec_millis();
        return if ms > 0 {
            format!("{ms}ms")
        } else {
            "0s".to_string()
        };
    }
    let mut rest = secs;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = rest / len;
        rest %= len;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_durations() {
        let cases = [
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("500ms", 500),
            ("1d2h3m4s5ms", 93_784_005),
            ("0s", 0),
            ("1h90m", 9_000_000),
            ("007s", 7_000),
            ("1h1s", 3_601_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations() {
        for text in [
            "",
            "90",
            "s",
            "5 m",
            " 5m",
            "5m ",
            "-5m",
            "+5m",
            "1.5h",
            "5M",
            "5min",
            "5w",
            "30m1h",
            "1m1m",
            "1h30",
            "ms5",
            "5m-",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            let e = parse_duration(text).expect_err(text);
            let msg = e.to_string();
            assert!(
                msg.contains("expected a duration such as \"90s\", \"5m\" or \"1h30m\""),
                "{text}: {msg}"
            );
            assert!(msg.starts_with(&format!("{text:?}")), "{text}: {msg}");
        }
        assert!(parse_duration("1.5h")
            .unwrap_err()
            .to_string()
            .contains("no fractions"));
        assert!(parse_duration("5w")
            .unwrap_err()
            .to_string()
            .contains("unknown unit \"w\""));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(59_500)), "59s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(
            format_duration(Duration::from_secs(2 * 86_400 + 3_601)),
            "2d1h1s"
        );
        // Round trip for whole seconds.
        for s in ["1d2h3m4s", "45m", "2d", "1h30m", "59s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
