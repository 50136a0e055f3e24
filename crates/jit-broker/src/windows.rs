//! Auto-approve time windows, UTC: `"Mon-Fri 09:00-18:00"`, `"Sat,Sun 10:00-14:00"`,
//! `"22:00-06:00"` (every day; an end before the start runs past midnight, the day is the
//! start's day).
use time::OffsetDateTime;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday = 0.
    days: [bool; 7],
    start: u32,
    end: u32,
}

fn day(s: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time HH:MM (00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let err = |e: String| format!("window {text:?}: {e}");
        let mut parts = text.split_whitespace();
        let (days_part, times) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), None, None) => (None, t),
            (Some(d), Some(t), None) => (Some(d), t),
            _ => {
                return Err(err(
                    "expected \"[DAYS ]HH:MM-HH:MM\", e.g. \"Mon-Fri 09:00-18:00\"".into(),
                ))
            }
        };
        let mut days = [days_part.is_none(); 7];
        if let Some(spec) = days_part {
            for item in spec.split(',') {
                match item.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a).map_err(err)?, day(b).map_err(err)?);
                        let mut d = a;
                        loop {
                            days[d] = true;
                            if d == b {
                                break;
                            }
                            d = (d + 1) % 7;
                        }
                    }
                    None => days[day(item).map_err(err)?] = true,
                }
            }
        }
        let (a, b) = times
            .split_once('-')
            .ok_or_else(|| err(format!("{times:?} is not a range HH:MM-HH:MM")))?;
        let (start, end) = (minutes(a).map_err(err)?, minutes(b).map_err(err)?);
        if start == end {
            return Err(err("the window is empty (start = end)".into()));
        }
        Ok(Window { days, start, end })
    }

    /// Is `t` (converted to UTC) inside the window?
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        let t = t.to_offset(time::UtcOffset::UTC);
        let today = t.weekday().number_days_from_monday() as usize;
        let yesterday = (today + 6) % 7;
        let now = u32::from(t.hour()) * 60 + u32::from(t.minute());
        if self.start < self.end {
            self.days[today] && now >= self.start && now < self.end
        } else {
            (self.days[today] && now >= self.start) || (self.days[yesterday] && now < self.end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        jit_grant::parse_time(s).unwrap()
    }

    #[test]
    fn weekday_office_hours() {
        let w = Window::parse("Mon-Fri 09:00-18:00").unwrap();
        assert!(w.contains(at("2026-11-25T09:00:00Z"))); // Wednesday
        assert!(w.contains(at("2026-11-25T17:59:00Z")));
        assert!(!w.contains(at("2026-11-25T18:00:00Z")));
        assert!(!w.contains(at("2026-11-25T08:59:00Z")));
        assert!(!w.contains(at("2026-11-28T12:00:00Z"))); // Saturday
                                                          // Offsets are converted: 10:00+02:00 is 08:00 UTC.
        assert!(!w.contains(at("2026-11-25T10:00:00+02:00")));
    }

    #[test]
    fn overnight_and_lists() {
        let w = Window::parse("Fri-Mon 22:00-06:00").unwrap();
        assert!(w.contains(at("2026-11-27T23:00:00Z"))); // Fri night
        assert!(w.contains(at("2026-11-28T05:00:00Z"))); // Sat early (Fri's window)
        assert!(w.contains(at("2026-12-01T05:59:00Z"))); // Tue early (Mon's window)
        assert!(!w.contains(at("2026-12-01T22:00:00Z"))); // Tue night
        let all = Window::parse("00:00-24:00").unwrap();
        assert!(all.contains(at("2026-11-29T23:59:00Z")));
        let some = Window::parse("sat,Sun 10:00-14:00").unwrap();
        assert!(some.contains(at("2026-11-29T13:00:00Z")));
        assert!(!some.contains(at("2026-11-30T13:00:00Z")));
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "Mon-Fri",
            "Mon-Fry 09:00-10:00",
            "9:00-10:00",
            "09:00-09:00",
            "25:00-26:00",
            "a b c",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
