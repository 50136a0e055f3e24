//! Durations as people write them: `"90s"`, `"5m"`, `"1h30m"`, `"2d"`; units
//! d, h, m, s (and ms); no sign, no spaces inside; at least one unit.

use std::time::Duration;

/// Parse `"1h30m"` etc. Errors say what was expected (`expected a duration such as "90s", "5m" or "1h30m"`).
pub fn parse_duration(s: &str) -> Result<Duration, crate::PolicyError> { todo!() }

/// Human form, largest units first, no zero parts: 5400s -> "1h30m", 0 -> "0s", 59.5s -> "59s".
pub fn format_duration(d: Duration) -> String { todo!() }
