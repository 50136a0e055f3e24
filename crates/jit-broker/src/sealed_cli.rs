//! `jitbroker break-glass seal | list | revoke` (sealed.rs does the work): the printout of a
//! sealed batch, and the listing of what was issued, used and revoked.
use crate::args::BreakGlassCommand;
use crate::broker::{Actor, Broker};
use crate::error::CliError;
use crate::model::SealedGrant;
use crate::sealed::{self, SealRequest, Sealed};
use jit_grant::format_time;
use std::io::Write;
use std::path::Path;
use time::OffsetDateTime;

pub fn run(
    b: &Broker,
    actor: &Actor,
    cmd: BreakGlassCommand,
    now: OffsetDateTime,
) -> Result<i32, CliError> {
    match cmd {
        BreakGlassCommand::Seal {
            rule,
            user,
            uid,
            hosts,
            count,
            validity,
            reason,
            ticket,
            out,
        } => {
            let validity = jit_policy::parse_duration(&validity)
                .map_err(|e| CliError::Other(format!("--validity: {e}")))?;
            let request = SealRequest {
                rule: &rule,
                user: &user,
                uid,
                hosts: &hosts,
                count,
                validity,
                reason: &reason,
                ticket: ticket.as_deref(),
            };
            let (sealed, events) = sealed::seal(b, actor, &request, now)?;
            b.committed(events);
            print_batch(&sealed, out.as_deref())?;
            Ok(0)
        }
        BreakGlassCommand::List { batch, json } => {
            let grants = sealed::list(b, batch.as_deref())?;
            if json {
                let list: Vec<_> = grants.iter().map(SealedGrant::to_json).collect();
                println!("{}", serde_json::json!({ "sealed": list }));
            } else {
                print_list(&grants, now);
            }
            Ok(0)
        }
        BreakGlassCommand::Revoke { which, reason } => {
            let (revoked, events) = sealed::revoke(b, actor, &which, &reason, now)?;
            b.committed(events);
            if revoked.is_empty() {
                println!("nothing to revoke in {which}: every grant is revoked or expired already");
            } else {
                println!(
                    "revoked {} sealed grant(s): {}; hosts refuse them once they have the new revocation list",
                    revoked.len(),
                    revoked
                        .iter()
                        .map(|g| g.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(0)
        }
    }
}

/// One grant of a batch, as printed: what it is for, how to use it, the token, the QR code.
fn sheet(s: &Sealed, n: usize, of: usize) -> Result<String, CliError> {
    let g = &s.grant;
    let qr = sealed::qr_text(&s.token).map_err(CliError::Other)?;
    Ok(format!(
        "jitrun sealed break-glass grant {n} of {of} (batch {batch})\n\
         grant:  {id}\n\
         rule:   {rule}, for {user}, on {hosts}\n\
         valid:  {iat} until {exp}; once on each host; the command runs at most the rule's max_duration\n\
         reason: {reason}\n\
         use:    on the host, as {user}: jitrun --grant - -- COMMAND, then paste the token (or scan it)\n\
         \n{token}\n\n{qr}\n",
        batch = g.batch,
        id = g.id,
        rule = g.rule,
        user = g.user,
        hosts = g.hosts.join(", "),
        iat = format_time(g.iat),
        exp = format_time(g.exp),
        reason = g.reason,
        token = s.token,
    ))
}

fn print_batch(sealed: &[Sealed], out: Option<&Path>) -> Result<(), CliError> {
    let file_err = |p: &Path, e: std::io::Error| CliError::File {
        path: p.to_owned(),
        message: e.to_string(),
    };
    let mut stdout = std::io::stdout().lock();
    for (i, s) in sealed.iter().enumerate() {
        let text = sheet(s, i + 1, sealed.len())?;
        let _ = writeln!(stdout, "{text}");
        if let Some(dir) = out {
            std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
            let svg = sealed::qr_svg(&s.token).map_err(CliError::Other)?;
            for (ext, body) in [("svg", svg), ("txt", text)] {
                let p = dir.join(format!("{}.{ext}", s.grant.id));
                write_private(&p, body.as_bytes()).map_err(|e| file_err(&p, e))?;
            }
        }
    }
    let _ = stdout.flush();
    eprintln!(
        "sealed {} grant(s) in batch {}; the broker keeps no copy of the tokens: print them, store them offline, and revoke the batch (jitbroker break-glass revoke BATCH) when it is replaced",
        sealed.len(),
        sealed.first().map_or("", |s| s.grant.batch.as_str())
    );
    Ok(())
}

/// A new file only the broker's user can read: the tokens are credentials.
fn write_private(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn state(g: &SealedGrant, now: OffsetDateTime) -> String {
    match (&g.revoked_at, g.exp <= now) {
        (Some(at), _) => format!(
            "revoked {} by {}",
            format_time(*at),
            g.revoked_by.as_deref().unwrap_or("?")
        ),
        (None, true) => "expired".to_string(),
        (None, false) => "valid".to_string(),
    }
}

fn print_list(grants: &[SealedGrant], now: OffsetDateTime) {
    if grants.is_empty() {
        println!("no sealed grants; seal a batch with `jitbroker break-glass seal`");
        return;
    }
    let mut batch = "";
    for g in grants {
        if g.batch != batch {
            batch = &g.batch;
            println!(
                "batch {batch}: rule {} for {} on {}, sealed {} by {}, valid until {}: {}",
                g.rule,
                g.user,
                g.hosts.join(","),
                format_time(g.iat),
                g.sealed_by,
                format_time(g.exp),
                g.reason
            );
        }
        let uses = if g.uses.is_empty() {
            "unused".to_string()
        } else {
            format!(
                "used on {}",
                g.uses
                    .iter()
                    .map(|u| format!("{} at {}", u.host, format_time(u.at)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        println!("  {}  {}, {uses}", g.id, state(g, now));
    }
}
