//! The values of sudoers command options (`TIMEOUT=`, `NOTBEFORE=`, `NOTAFTER=`, `CWD=`,
//! `CHROOT=`), checked as `visudo -c` checks them, with its messages.

/// sudo's timeout syntax: a number of seconds, or amounts with units `d`, `h`, `m`, `s`
/// (either case) from the largest down (`1d2h`, `90m`, `5s5s`); at most `i32::MAX` seconds.
pub fn timeout_seconds(v: &str) -> Result<u64, &'static str> {
    if v.is_empty() {
        return Err("invalid timeout value");
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= i32::MAX as u64)
            .ok_or("timeout value too large");
    }
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err("invalid timeout value");
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "timeout value too large")?;
        let unit = rest[digits..]
            .chars()
            .next()
            .ok_or("invalid timeout value")?;
        let (rank, secs) = match unit.to_ascii_lowercase() {
            'd' => (3, 86_400),
            'h' => (2, 3_600),
            'm' => (1, 60),
            's' => (0, 1),
            _ => return Err("invalid timeout value"),
        };
        if rank > last_rank {
            return Err("invalid timeout value");
        }
        last_rank = rank;
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .filter(|t| *t <= i32::MAX as u64)
            .ok_or("timeout value too large")?;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

/// sudo's generalized time: `YYYYMMDDHH[MM[SS]][.frac][Z|+hh[mm]|-hh[mm]]`, not before 1970.
pub fn gentime_valid(v: &str) -> bool {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    if !matches!(digits, 10 | 12 | 14) {
        return false;
    }
    if v[..4].parse::<u32>().map_or(true, |y| y < 1970) {
        return false;
    }
    let mut rest = &v[digits..];
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes().first() {
        None | Some(b'Z') if rest.len() <= 1 => true,
        Some(b'+') | Some(b'-') => {
            let tz = &rest[1..];
            matches!(tz.len(), 2 | 4) && tz.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Check one option's value as visudo does; the message is visudo's.
pub fn check(option: &str, value: &str) -> Result<(), String> {
    match option {
        "TIMEOUT" => timeout_seconds(value).map(|_| ()).map_err(str::to_string),
        "NOTBEFORE" | "NOTAFTER" if !gentime_valid(value) => {
            Err(format!("invalid {} value", option.to_ascii_lowercase()))
        }
        "CWD" | "CHROOT" if !value.starts_with(['/', '~', '*']) => Err(format!(
            "values for \"{option}\" must start with a '/', '~', or '*'"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        for ok in [
            "5",
            "0",
            "00",
            "1d",
            "1D",
            "2h30m",
            "1d1d",
            "0s",
            "10S",
            "1h30m",
            "5s5s",
            "7d4h10m30s",
        ] {
            assert!(timeout_seconds(ok).is_ok(), "{ok}");
        }
        assert_eq!(timeout_seconds("2h30m"), Ok(9000));
        for bad in ["", "5x", "30m1h", "1.5", "7dd4h10m30s", "h", "1d2"] {
            assert_eq!(timeout_seconds(bad), Err("invalid timeout value"), "{bad}");
        }
        assert_eq!(
            timeout_seconds("99999999999"),
            Err("timeout value too large")
        );
    }

    #[test]
    fn generalized_times() {
        for ok in [
            "20170214083000Z",
            "2017021408Z",
            "201702140830",
            "20170214083000",
            "20170214083000.5Z",
            "20170214083000+0100",
            "20170214083000-05",
            "2017021408",
        ] {
            assert!(gentime_valid(ok), "{ok}");
        }
        for bad in [
            "2017",
            "20170214",
            "2017021408300",
            "19691231235959Z",
            "20170214083000ZZ",
            "20170214083000+1",
            "20170214083000.",
        ] {
            assert!(!gentime_valid(bad), "{bad}");
        }
        assert_eq!(
            check("NOTAFTER", "2017"),
            Err("invalid notafter value".into())
        );
        assert!(check("CWD", "tmp")
            .unwrap_err()
            .contains("must start with a '/', '~', or '*'"));
        assert!(check("CHROOT", "*").is_ok() && check("ROLE", "anything").is_ok());
    }
}
