//! `jitctl grant mint` and `jitctl grant show`.
use crate::cli::{MintArgs, ShowArgs};
use crate::error::{io_error, CliError, Result};
use jit_grant::{Claims, CmdClaim, KeySet, PublicKey, SecretKey, TokenKind, MAX_TOKEN_LEN};
use jit_policy::{CapSet, Capability, CommandPattern};
use std::io::Read;
use std::path::Path;
use time::OffsetDateTime;

/// Now, in whole seconds (we write whole seconds).
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| io_error(&format!("cannot read {what}"), path, &e))?;
    String::from_utf8(bytes)
        .map_err(|_| CliError(format!("{}: {what} is not text", path.display())))
}

/// `--not-before`: RFC 3339, "now", or a signed duration relative to now ("-10m", "+5m").
fn parse_start(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime> {
    let relative = |rest: &str| {
        let d =
            jit_policy::parse_duration(rest).map_err(|e| CliError(format!("--not-before: {e}")))?;
        time::Duration::try_from(d)
            .map_err(|_| CliError(format!("--not-before: {s:?} is too far away")))
    };
    let t = if s == "now" {
        now
    } else if let Some(rest) = s.strip_prefix('+') {
        now.checked_add(relative(rest)?)
            .ok_or_else(|| CliError(format!("--not-before: {s:?} is too far away")))?
    } else if let Some(rest) = s.strip_prefix('-') {
        now.checked_sub(relative(rest)?)
            .ok_or_else(|| CliError(format!("--not-before: {s:?} is too far away")))?
    } else {
        jit_grant::parse_time(s).map_err(|e| {
            CliError(format!(
                "--not-before: {e}, or a time relative to now such as \"-10m\" or \"+5m\""
            ))
        })?
    };
    Ok(t.replace_nanosecond(0).unwrap_or(t))
}

/// `--caps a,b`: each name canonical (`net_raw` → `CAP_NET_RAW`, `all` → `ALL`), duplicates dropped.
fn parse_caps(list: &str) -> Result<Vec<String>> {
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        return Err(CliError(format!(
            "--caps: entry {} is empty; give capability names separated by commas, e.g. \"net_raw,net_admin\"",
            i + 1
        )));
    }
    CapSet::parse_list(&names).map_err(|e| CliError(format!("--caps: {e}")))?;
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let canonical = if name.eq_ignore_ascii_case("all") {
            "ALL".to_string()
        } else {
            Capability::parse(name)
                .map_err(|e| CliError(format!("--caps: {e}")))?
                .name()
                .to_string()
        };
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

fn printable(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(CliError(format!(
            "{what}: {value:?} must be non-empty, without control characters"
        )));
    }
    Ok(())
}

fn default_issuer() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("jitctl@{host}")
}

pub fn mint(args: &MintArgs) -> Result<()> {
    let key_text = read_text(&args.key, "the secret key")?;
    let key = SecretKey::from_paserk(&key_text)
        .map_err(|e| CliError(format!("{}: {e}", args.key.display())))?;
    check_names(args)?;
    let ttl = ttl(args)?;
    let caps = args.caps.as_deref().map(parse_caps).transpose()?;
    check_narrowing(args)?;
    let (iat, nbf, exp) = mint_times(args, ttl)?;
    // A ULID, as the broker's grant ids: time-ordered, 80 random bits from the OS generator.
    let jti = ulid::Ulid::new().to_string();
    let claims = Claims {
        iss: args.issuer.clone().unwrap_or_else(default_issuer),
        sub: args.user.clone(),
        uid: args.uid,
        hosts: args.hosts.clone(),
        jti,
        iat,
        nbf,
        exp,
        rule: args.rule.clone(),
        caps,
        cmd: args.cmd.clone().map(CmdClaim::One),
        run_as: args.run_as.clone(),
        approvers: args.approvers.clone(),
        ticket: args.ticket.clone(),
        reason: args.reason.clone(),
        max_uses: args.max_uses,
        break_glass: args.break_glass,
    };
    // The same parse a host makes of the narrowing claims.
    claims.view()?;
    let token = jit_grant::sign(&key, TokenKind::Grant, &claims)?;
    println!("{token}");
    Ok(())
}

/// The names `mint` writes into the claims: printable, a rule name, one host name or pattern
/// per --host.
fn check_names(args: &MintArgs) -> Result<()> {
    printable("--user", &args.user)?;
    if !jit_policy::valid_rule_name(&args.rule) {
        return Err(CliError(format!(
            "--rule: {:?} is not a rule name (letters, digits, '.', '_', '-')",
            args.rule
        )));
    }
    for host in &args.hosts {
        printable("--host", host)?;
        if host.chars().any(char::is_whitespace) {
            return Err(CliError(format!(
                "--host: {host:?} contains whitespace; give one name or pattern per --host"
            )));
        }
    }
    for approver in &args.approvers {
        printable("--approver", approver)?;
    }
    if let Some(issuer) = &args.issuer {
        printable("--issuer", issuer)?;
    }
    Ok(())
}

/// The narrowing claims: a command pattern, a run_as a host would accept, --max-uses at
/// least 1.
fn check_narrowing(args: &MintArgs) -> Result<()> {
    if let Some(cmd) = &args.cmd {
        CommandPattern::parse_str(cmd).map_err(|e| CliError(format!("--cmd: {e}")))?;
    }
    if let Some(run_as) = &args.run_as {
        if !matches!(run_as.as_str(), "invoker" | "root") && !jit_grant::valid_user_name(run_as) {
            return Err(CliError(format!(
                "--run-as: {run_as:?} is not \"invoker\", \"root\" or a valid user name"
            )));
        }
    }
    if args.max_uses == Some(0) {
        return Err("--max-uses: must be at least 1".into());
    }
    Ok(())
}

/// --ttl in whole seconds, at least one.
fn ttl(args: &MintArgs) -> Result<std::time::Duration> {
    let ttl = jit_policy::parse_duration(&args.ttl).map_err(|e| CliError(format!("--ttl: {e}")))?;
    let ttl = std::time::Duration::from_secs(ttl.as_secs());
    if ttl.is_zero() {
        return Err(CliError(format!(
            "--ttl: {:?} is shorter than one second",
            args.ttl
        )));
    }
    Ok(ttl)
}

/// `iat` (now), `nbf` (--not-before, else now) and `exp` (nbf + ttl), which must lie after
/// `iat`.
fn mint_times(
    args: &MintArgs,
    ttl: std::time::Duration,
) -> Result<(OffsetDateTime, OffsetDateTime, OffsetDateTime)> {
    let iat = now();
    let nbf = match &args.not_before {
        Some(s) => parse_start(s, iat)?,
        None => iat,
    };
    let exp = nbf
        .checked_add(time::Duration::try_from(ttl).map_err(|_| CliError("--ttl: too long".into()))?)
        .ok_or_else(|| CliError("--ttl: too long".into()))?;
    if exp <= iat {
        return Err(CliError(format!(
            "the grant would end at {}, before it is issued ({}); use a later --not-before or a longer --ttl",
            jit_grant::format_time(exp),
            jit_grant::format_time(iat)
        )));
    }
    Ok((iat, nbf, exp))
}

/// TOKEN, "-" (standard input), or a file holding a token.
fn read_token(arg: &str) -> Result<String> {
    let limited = |reader: &mut dyn Read, what: &str| -> Result<String> {
        let mut bytes = Vec::new();
        reader
            .take(MAX_TOKEN_LEN as u64 + 64)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError(format!("cannot read {what}: {e}")))?;
        String::from_utf8(bytes).map_err(|_| CliError(format!("{what} is not a token (not text)")))
    };
    if arg == "-" {
        return limited(&mut std::io::stdin().lock(), "standard input");
    }
    let b = arg.as_bytes();
    if b.len() > 3 && b[0] == b'v' && b[1].is_ascii_digit() && b[2] == b'.' {
        return Ok(arg.to_string());
    }
    let path = Path::new(arg);
    if path.is_file() {
        let mut file = std::fs::File::open(path).map_err(|e| io_error("cannot read", path, &e))?;
        return limited(&mut file, &path.display().to_string());
    }
    Err(CliError(format!(
        "{arg:?} is neither a token (v4.public.…) nor a file; give the token, a file holding it, or - for standard input"
    )))
}

fn load_keys(paths: &[std::path::PathBuf]) -> Result<KeySet> {
    let mut keys = KeySet::new();
    for path in paths {
        let text = read_text(path, "the public key")?;
        let key = PublicKey::from_paserk(&text)
            .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
        keys.insert(key);
    }
    Ok(keys)
}

/// The claims as pretty JSON (sorted keys); the payload as is when it is not JSON.
fn pretty(payload: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| payload.to_string()),
        Err(_) => payload.to_string(),
    }
}

/// "valid from … until … (expires in 59m)", judged by this machine's clock.
fn validity(payload: &str) -> String {
    match Claims::from_json(payload) {
        Ok(c) => {
            let now = OffsetDateTime::now_utc();
            let span = |a: OffsetDateTime, b: OffsetDateTime| {
                jit_policy::format_duration(
                    std::time::Duration::try_from(a - b).unwrap_or_default(),
                )
            };
            let state = if now >= c.exp {
                format!("expired {} ago", span(now, c.exp))
            } else if now < c.nbf {
                format!("starts in {}", span(c.nbf, now))
            } else {
                format!("expires in {}", span(c.exp, now))
            };
            format!(
                "validity: {} to {} ({state})",
                jit_grant::format_time(c.nbf),
                jit_grant::format_time(c.exp)
            )
        }
        Err(e) => format!("claims: {e}"),
    }
}

pub fn show(args: &ShowArgs) -> Result<()> {
    let token = read_token(&args.token)?;
    if args.public.is_empty() {
        let u = jit_grant::decode_unverified(&token)?;
        println!("{}", pretty(&u.payload));
        match &u.kid {
            Some(kid) => println!("kid: {kid}"),
            None => println!("kid: (none; footer {:?})", u.footer),
        }
        println!("{}", validity(&u.payload));
        println!("signature: NOT verified (no --public key given)");
        return Ok(());
    }
    let keys = load_keys(&args.public)?;
    let v = jit_grant::verify_payload(&token, &keys, TokenKind::Grant).map_err(|e| match e {
        jit_grant::GrantError::UnknownKey { kid } => CliError(format!(
            "signature NOT verified: the token is signed by key {kid}, which is not among the --public keys given ({})",
            keys.kids().join(", ")
        )),
        e => CliError(format!("signature NOT verified: {e}")),
    })?;
    println!("{}", pretty(&v.payload));
    println!("kid: {}", v.kid);
    println!("{}", validity(&v.payload));
    println!("signature: verified with {}", v.kid);
    // Signed by a trusted key, but a host would still refuse claims it cannot read.
    Claims::from_json(&v.payload).map_err(|e| {
        CliError(format!(
            "the signature is good but this is not a valid grant: {e}"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        jit_grant::parse_time(s).unwrap()
    }

    #[test]
    fn start_times() {
        let now = t("2025-06-15T12:00:00Z");
        assert_eq!(parse_start("now", now).unwrap(), now);
        assert_eq!(
            parse_start("2025-06-15T14:00:00.9+02:00", now).unwrap(),
            now
        );
        assert_eq!(parse_start("-10m", now).unwrap(), t("2025-06-15T11:50:00Z"));
        assert_eq!(
            parse_start("+1h30m", now).unwrap(),
            t("2025-06-15T13:30:00Z")
        );
        assert!(parse_start("tomorrow", now).is_err());
        assert!(parse_start("-", now).is_err());
    }

    #[test]
    fn caps_are_canonicalized() {
        assert_eq!(
            parse_caps("net_raw, CAP_NET_ADMIN,cap_net_raw").unwrap(),
            ["CAP_NET_RAW", "CAP_NET_ADMIN"]
        );
        assert_eq!(parse_caps("all").unwrap(), ["ALL"]);
        assert!(parse_caps("net_raw,,net_admin").is_err());
        assert!(parse_caps("cap_fly")
            .unwrap_err()
            .to_string()
            .starts_with("--caps: "));
    }
}
