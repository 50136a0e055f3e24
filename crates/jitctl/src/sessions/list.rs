//! `jitctl sessions list [--user U] [--since T] [--json]`: every recording in the directory,
//! newest first, from each file's header and last lines.
use super::{human_duration, human_size, read_error, summarize, utc, valid_id, State, Summary};
use crate::cli::SessionsListArgs;
use crate::error::{CliError, Result};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn run(args: &SessionsListArgs) -> Result<()> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for entry in
        std::fs::read_dir(&args.dir).map_err(|e| read_error("cannot read", &args.dir, &e))?
    {
        let entry = entry.map_err(|e| read_error("cannot read", &args.dir, &e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".cast")) else {
            continue;
        };
        if !valid_id(id) {
            continue;
        }
        match summarize(&entry.path()) {
            Ok(s) => rows.push(s),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    rows.retain(|s| wanted(s, args.user.as_deref(), since));
    rows.sort_by_key(|s| std::cmp::Reverse((s.header.timestamp, s.path.clone())));
    if args.json {
        let out: Vec<_> = rows.iter().map(to_json).collect();
        println!("{}", serde_json::Value::Array(out));
    } else if rows.is_empty() {
        println!("no recordings in {}", args.dir.display());
    } else {
        print_table(&rows);
    }
    for e in &unreadable {
        eprintln!("jitctl: {e}");
    }
    Ok(())
}

fn wanted(s: &Summary, user: Option<&str>, since: Option<i64>) -> bool {
    let session = s.header.session.as_ref();
    let user_ok =
        user.is_none_or(|u| session.is_some_and(|j| j.user == u || j.uid.to_string() == u));
    let since_ok = since.is_none_or(|t| s.header.timestamp.is_some_and(|ts| ts >= t));
    user_ok && since_ok
}

/// RFC 3339, a date (midnight UTC), or a duration before now.
fn parse_since(s: &str) -> Result<i64> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Ok(t) = OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    match jit_policy::parse_duration(s) {
        Ok(d) => Ok(OffsetDateTime::now_utc().unix_timestamp() - d.as_secs() as i64),
        Err(_) => Err(CliError(format!(
            "--since {s:?}: expected a time (\"2026-11-25T17:00:00Z\"), a date (\"2026-11-25\") or how long ago (\"2h\", \"7d\")"
        ))),
    }
}

fn state_text(s: &Summary) -> String {
    let mut t = match &s.state {
        State::Ended(code) => format!("exit {code}"),
        State::Open => "no end yet".to_string(),
    };
    if s.truncated {
        t.push_str(", truncated");
    }
    t
}

fn print_table(rows: &[Summary]) {
    println!(
        "{:<32}  {:<19}  {:<12} {:<10} {:<16} {:>9} {:>10}  {:<18} COMMAND",
        "SESSION", "STARTED (UTC)", "USER", "AS", "RULE", "DURATION", "SIZE", "STATE"
    );
    for s in rows {
        let j = s.header.session.clone().unwrap_or_default();
        let id = s
            .path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{id:<32}  {:<19}  {:<12} {:<10} {:<16} {:>9} {:>10}  {:<18} {}",
            s.header.timestamp.map(utc).unwrap_or_else(|| "?".into()),
            j.user,
            j.run_as,
            j.rule,
            human_duration(s.duration),
            human_size(s.size),
            state_text(s),
            s.header.command.as_deref().unwrap_or("")
        );
    }
}

fn to_json(s: &Summary) -> serde_json::Value {
    let j = s.header.session.clone().unwrap_or_default();
    let modified = s
        .modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "session_id": j.id,
        "path": s.path.display().to_string(),
        "started": s.header.timestamp,
        "user": j.user,
        "uid": j.uid,
        "run_as": j.run_as,
        "rule": j.rule,
        "host": j.host,
        "input_recorded": j.input,
        "command": s.header.command,
        "width": s.header.width,
        "height": s.header.height,
        "duration_s": s.duration,
        "size": s.size,
        "last_written": modified,
        "ended": matches!(s.state, State::Ended(_)),
        "exit_status": match &s.state { State::Ended(c) => json!(c), State::Open => json!(null) },
        "truncated": s.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("2026-11-25T17:15:01Z").unwrap(), 1_795_626_901);
        assert_eq!(parse_since("2026-11-25").unwrap(), 1_795_564_800);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let two_h = parse_since("2h").unwrap();
        assert!((now - 7200 - two_h).abs() <= 2);
        assert!(parse_since("yesterday").unwrap_err().0.contains("--since"));
    }
}
