//! The requester's and approver's commands: `request`, `requests`, `show`, `approve`,
//! `deny`, `cancel`, `grants`, `revoke` (docs/broker.md, HTTP API). Every message says
//! what happens next.

use crate::cli::{
    ApproveArgs, CancelArgs, DenyArgs, IdArgs, ListArgs, RequestArgs, RequestsArgs, RevokeArgs,
};
use crate::client::{check_id, text, Broker};
use crate::error::{CliError, Result};
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often `--wait` asks the broker.
pub const WAIT_POLL: Duration = Duration::from_secs(2);

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Approvals a request still needs: (remaining, of, groups).
pub fn still_needed(req: &Value) -> (u64, u64, Vec<String>) {
    let needed = req.get("needed").cloned().unwrap_or(Value::Null);
    let of = needed.get("approvals").and_then(Value::as_u64).unwrap_or(0);
    let have = req
        .get("approvals")
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as u64);
    (of.saturating_sub(have), of, strings(&needed["groups"]))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn groups_text(groups: &[String]) -> String {
    match groups.len() {
        0 => "the rule's approvers".to_string(),
        1 => format!("group {}", groups[0]),
        _ => format!("groups {}", groups.join(", ")),
    }
}

/// One line: the state of a request and what happens next.
pub fn next_step(req: &Value) -> String {
    let id = text(req, "id");
    match text(req, "state") {
        "pending" => {
            let (left, _, groups) = still_needed(req);
            format!(
                "waiting for {} from {}; run `jitctl show {id}` to follow it",
                plural(left.max(1), "approval", "approvals"),
                groups_text(&groups)
            )
        }
        "approved" => {
            let how = if req.get("break_glass").and_then(Value::as_bool) == Some(true) {
                " (break-glass: issued at once and audited at alert severity)"
            } else if req
                .get("approvals")
                .and_then(Value::as_array)
                .is_some_and(|a| a.is_empty())
            {
                " (auto-approved)"
            } else {
                ""
            };
            format!(
                "approved{how}; grant {} issued; `jitctl sync` fetches it, then run your command with jitrun",
                text(req, "grant_id")
            )
        }
        "denied" => format!(
            "denied by {}: {}",
            text(req, "denied_by"),
            text(req, "deny_reason")
        ),
        "cancelled" => "cancelled".to_string(),
        "expired" => format!(
            "expired without enough approvals; ask again: jitctl request {}",
            text(req, "rule")
        ),
        other => format!("state {other}"),
    }
}

fn print_request(req: &Value) {
    let mut out = std::io::stdout().lock();
    let approvals: Vec<String> = req
        .get("approvals")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| {
                    let c = text(x, "comment");
                    format!(
                        "{} on {} at {}{}",
                        text(x, "user"),
                        text(x, "host"),
                        text(x, "at"),
                        if c.is_empty() {
                            String::new()
                        } else {
                            format!(" ({c})")
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (_, of, groups) = still_needed(req);
    let lines = [
        ("request", text(req, "id").to_string()),
        ("state", text(req, "state").to_string()),
        ("rule", text(req, "rule").to_string()),
        (
            "user",
            format!("{} on {}", text(req, "user"), text(req, "host")),
        ),
        ("command", text(req, "cmd").to_string()),
        ("ttl", text(req, "ttl").to_string()),
        ("run as", text(req, "run_as").to_string()),
        ("reason", text(req, "reason").to_string()),
        ("ticket", text(req, "ticket").to_string()),
        ("created", text(req, "created").to_string()),
        ("expires", text(req, "expires").to_string()),
        (
            "needs",
            if of > 0 {
                format!(
                    "{} from {}",
                    plural(of, "approval", "approvals"),
                    groups_text(&groups)
                )
            } else {
                String::new()
            },
        ),
        ("approvals", approvals.join("; ")),
        ("grant", text(req, "grant_id").to_string()),
    ];
    for (k, v) in lines {
        if !v.is_empty() {
            let _ = writeln!(out, "{k:<10} {v}");
        }
    }
    let _ = writeln!(out, "next       {}", next_step(req));
}

pub fn request(broker: &Broker, args: &RequestArgs) -> Result<i32> {
    let mut body = Map::new();
    body.insert("rule".into(), json!(args.rule));
    body.insert("reason".into(), json!(args.reason));
    if let Some(c) = &args.cmd {
        body.insert("cmd".into(), json!(c));
    }
    if let Some(t) = &args.ttl {
        jit_policy::parse_duration(t).map_err(|e| CliError(format!("--ttl: {e}")))?;
        body.insert("ttl".into(), json!(t));
    }
    if let Some(t) = &args.ticket {
        body.insert("ticket".into(), json!(t));
    }
    if let Some(u) = &args.run_as {
        body.insert("run_as".into(), json!(u));
    }
    if !args.hosts.is_empty() {
        body.insert("hosts".into(), json!(args.hosts));
    }
    if args.break_glass {
        body.insert("break_glass".into(), json!(true));
    }
    let req = broker.call("POST", "/v1/requests", Some(&Value::Object(body)))?;
    let id = text(&req, "id").to_string();
    if args.json {
        print_json(&req);
    } else if text(&req, "state") == "approved" {
        // Synced right below: no "run jitctl sync" hint.
        let step = next_step(&req);
        let step = step.split("; `jitctl sync`").next().unwrap_or(&step);
        println!("request {id} for rule {}: {step}", text(&req, "rule"));
    } else {
        println!(
            "request {id} for rule {}: {}",
            text(&req, "rule"),
            next_step(&req)
        );
    }
    match text(&req, "state") {
        "approved" => {
            crate::sync::sync(broker, !args.json)?;
            Ok(0)
        }
        "pending" if args.wait => wait(broker, &id, args.json),
        "pending" => Ok(0),
        _ => Ok(1),
    }
}

/// Poll until the request is decided. 0 when approved (then sync), 1 otherwise.
fn wait(broker: &Broker, id: &str, json_out: bool) -> Result<i32> {
    let tty = std::io::stderr().is_terminal();
    let spinner = ['|', '/', '-', '\\'];
    let started = Instant::now();
    let mut last_line = String::new();
    let mut tick = 0usize;
    let path = format!("/v1/requests/{id}");
    loop {
        let req = broker.call("GET", &path, None)?;
        let state = text(&req, "state").to_string();
        let line = next_step(&req);
        let mut err = std::io::stderr().lock();
        if state != "pending" {
            if tty {
                let _ = write!(err, "\r\x1b[K");
            }
            drop(err);
            if json_out {
                print_json(&req);
            } else {
                let line = line.split("; `jitctl sync`").next().unwrap_or(&line);
                println!("request {id}: {line}");
            }
            if state == "approved" {
                crate::sync::sync(broker, !json_out)?;
                return Ok(0);
            }
            return Ok(1);
        }
        let (left, _, groups) = still_needed(&req);
        let progress = format!(
            "waiting for {} from {}",
            plural(left.max(1), "approval", "approvals"),
            groups_text(&groups)
        );
        if tty {
            let _ = write!(
                err,
                "\r\x1b[K{} {progress} ({}s; Ctrl-C stops waiting, the request stays)",
                spinner[tick % spinner.len()],
                started.elapsed().as_secs()
            );
            let _ = err.flush();
        } else if progress != last_line {
            let _ = writeln!(err, "jitctl: request {id}: {progress}");
        }
        last_line = progress;
        tick += 1;
        drop(err);
        std::thread::sleep(WAIT_POLL);
    }
}

pub fn requests(broker: &Broker, args: &RequestsArgs) -> Result<i32> {
    let query = if args.pending {
        "?pending=true"
    } else {
        "?mine=true"
    };
    let v = broker.call("GET", &format!("/v1/requests{query}"), None)?;
    if args.json {
        print_json(&v);
        return Ok(0);
    }
    let list = v
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!(
            "{}",
            if args.pending {
                "no requests wait for your approval"
            } else {
                "you have no requests; ask with: jitctl request RULE --reason \"why\""
            }
        );
        return Ok(0);
    }
    println!(
        "{:<26}  {:<9}  {:<16}  {:<12}  {:<9}  REASON",
        "ID", "STATE", "RULE", "USER", "APPROVALS"
    );
    for r in &list {
        let (_, of, _) = still_needed(r);
        let have = r
            .get("approvals")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len());
        println!(
            "{:<26}  {:<9}  {:<16}  {:<12}  {:<9}  {}",
            text(r, "id"),
            text(r, "state"),
            text(r, "rule"),
            text(r, "user"),
            format!("{have}/{of}"),
            text(r, "reason")
        );
    }
    if args.pending {
        println!("approve with: jitctl approve ID   (deny with: jitctl deny ID --reason \"why\")");
    }
    Ok(0)
}

pub fn show(broker: &Broker, args: &IdArgs) -> Result<i32> {
    check_id("request", &args.id)?;
    let req = broker.call("GET", &format!("/v1/requests/{}", args.id), None)?;
    if args.json {
        print_json(&req);
    } else {
        print_request(&req);
    }
    Ok(0)
}

pub fn approve(broker: &Broker, args: &ApproveArgs) -> Result<i32> {
    check_id("request", &args.id)?;
    let mut body = Map::new();
    if let Some(c) = &args.comment {
        body.insert("comment".into(), json!(c));
    }
    let req = broker.call(
        "POST",
        &format!("/v1/requests/{}/approve", args.id),
        Some(&Value::Object(body)),
    )?;
    match text(&req, "state") {
        "approved" => println!(
            "request {} approved: grant {} issued to {}; they fetch it with `jitctl sync`",
            args.id,
            text(&req, "grant_id"),
            text(&req, "user")
        ),
        _ => println!(
            "your approval of request {} is recorded; {}",
            args.id,
            next_step(&req)
        ),
    }
    Ok(0)
}

pub fn deny(broker: &Broker, args: &DenyArgs) -> Result<i32> {
    check_id("request", &args.id)?;
    let req = broker.call(
        "POST",
        &format!("/v1/requests/{}/deny", args.id),
        Some(&json!({ "reason": args.reason })),
    )?;
    println!(
        "request {} from {} denied; they see your reason",
        args.id,
        text(&req, "user")
    );
    Ok(0)
}

pub fn cancel(broker: &Broker, args: &CancelArgs) -> Result<i32> {
    check_id("request", &args.id)?;
    broker.call("POST", &format!("/v1/requests/{}/cancel", args.id), None)?;
    println!("request {} cancelled", args.id);
    Ok(0)
}

/// A grant's state for people: active, expired or revoked.
pub fn grant_state(g: &Value, now: time::OffsetDateTime) -> &'static str {
    if g.get("revoked").and_then(Value::as_bool) == Some(true) {
        return "revoked";
    }
    match jit_grant::parse_time(text(g, "exp")) {
        Ok(exp) if exp > now => "active",
        Ok(_) => "expired",
        Err(_) => "unknown",
    }
}

pub fn grants(broker: &Broker, args: &ListArgs) -> Result<i32> {
    let v = broker.call("GET", "/v1/grants?mine=true", None)?;
    if args.json {
        print_json(&v);
        return Ok(0);
    }
    let list = v
        .get("grants")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!("you hold no grants; ask with: jitctl request RULE --reason \"why\"");
        return Ok(0);
    }
    let now = time::OffsetDateTime::now_utc();
    println!(
        "{:<26}  {:<7}  {:<16}  {:<20}  {:<20}  HOSTS",
        "ID", "STATE", "RULE", "ISSUED", "EXPIRES"
    );
    for g in &list {
        println!(
            "{:<26}  {:<7}  {:<16}  {:<20}  {:<20}  {}",
            text(g, "id"),
            grant_state(g, now),
            text(g, "rule"),
            text(g, "iat"),
            text(g, "exp"),
            strings(&g["hosts"]).join(",")
        );
    }
    println!("`jitctl sync` stores the active ones where jitrun finds them");
    Ok(0)
}

/// Revoke a grant; `token` (from the caller's grant store) lets the broker revoke a grant it
/// has no record of.
pub fn revoke(broker: &Broker, args: &RevokeArgs, token: Option<String>) -> Result<i32> {
    check_id("grant", &args.id)?;
    let mut body = json!({ "reason": args.reason });
    if let Some(token) = token {
        body["token"] = Value::String(token);
    }
    let g = broker.call(
        "POST",
        &format!("/v1/grants/{}/revoke", args.id),
        Some(&body),
    )?;
    println!(
        "grant {} ({} for {}) revoked; hosts refuse it and end commands running on it once they have the new list (`jitctl revocations sync`, run as root by the jitrun-revocations-sync timer)",
        args.id,
        text(&g, "rule"),
        text(&g, "user")
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_steps_say_what_happens() {
        let pending = json!({"id":"01JX","state":"pending","rule":"db",
            "approvals":[{"user":"bob","host":"h","at":"t"}],
            "needed":{"approvals":2,"groups":["dba"]}});
        assert_eq!(
            next_step(&pending),
            "waiting for 1 approval from group dba; run `jitctl show 01JX` to follow it"
        );
        let approved = json!({"id":"01JX","state":"approved","grant_id":"01JG","approvals":[]});
        assert!(next_step(&approved).contains("auto-approved"));
        assert!(next_step(&approved).contains("grant 01JG"));
        let bg = json!({"state":"approved","break_glass":true,"approvals":[]});
        assert!(next_step(&bg).contains("break-glass"));
        let denied = json!({"state":"denied","denied_by":"carol","deny_reason":"no ticket"});
        assert_eq!(next_step(&denied), "denied by carol: no ticket");
    }

    #[test]
    fn grant_states() {
        let now = time::OffsetDateTime::now_utc();
        assert_eq!(
            grant_state(&json!({"exp":"2999-01-01T00:00:00Z"}), now),
            "active"
        );
        assert_eq!(
            grant_state(&json!({"exp":"2000-01-01T00:00:00Z"}), now),
            "expired"
        );
        assert_eq!(
            grant_state(&json!({"exp":"2999-01-01T00:00:00Z","revoked":true}), now),
            "revoked"
        );
    }
}
