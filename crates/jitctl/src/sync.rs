//! `jitctl sync`: the caller's approved, unexpired, unrevoked grants from the broker into
//! `~/.local/state/jitrun/grants/<grant id>` (0600, the store jitrun reads; home from the
//! user database, as jitrun finds it), verified with this host's trusted keys when it has
//! any. Files this command wrote (named after the grant they hold) are removed once their
//! grant has expired or was revoked; other files in the store are left alone.

use crate::client::{check_id, home_dir, text, Broker};
use crate::error::{io_error, CliError, Result};
use jit_grant::{KeySet, PublicKey, TokenKind};
use serde_json::Value;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

pub const KEYS_DIR: &str = "/etc/jitrun/keys.d";
pub const STORE: &str = ".local/state/jitrun/grants";

/// The trusted broker keys of this host (`/etc/jitrun/keys.d/*.paserk`).
pub fn host_keys() -> Result<KeySet> {
    let mut keys = KeySet::new();
    let entries = match fs::read_dir(KEYS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => return Err(io_error("cannot read", Path::new(KEYS_DIR), &e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".paserk"))
        })
        .collect();
    paths.sort();
    for p in paths {
        let text = fs::read_to_string(&p).map_err(|e| io_error("cannot read", &p, &e))?;
        let key = PublicKey::from_paserk(text.trim())
            .map_err(|e| CliError(format!("{}: {e}", p.display())))?;
        keys.insert(key);
    }
    Ok(keys)
}

/// Write `bytes` to `dir/name` atomically (a new temp file with `mode`, then rename).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = dir.join(format!(".{name}.jitctl-{}.tmp", std::process::id()));
    let dest = dir.join(name);
    let written = (|| -> std::io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &dest)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("cannot write", &dest, &e)
    })
}

/// A grant file this command would have written: named after the grant it holds.
/// Returns the token's `exp` then.
fn own_file(path: &Path, name: &str) -> Option<OffsetDateTime> {
    let token = fs::read_to_string(path).ok()?;
    let u = jit_grant::decode_unverified(token.trim()).ok()?;
    let claims: Value = serde_json::from_str(&u.payload).ok()?;
    if text(&claims, "jti") != name {
        return None;
    }
    jit_grant::parse_time(text(&claims, "exp")).ok()
}

/// The token of grant `id` in the caller's grant store (as `sync` wrote it), if it is there.
pub fn stored_token(id: &str) -> Option<String> {
    check_id("grant", id).ok()?;
    let path = home_dir().ok()?.join(STORE).join(id);
    own_file(&path, id)?;
    Some(fs::read_to_string(&path).ok()?.trim().to_string())
}

pub fn sync(broker: &Broker, verbose: bool) -> Result<()> {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .ok_or_else(|| CliError("your uid has no entry in the user database".into()))?;
    let v = broker.call("GET", "/v1/grants?mine=true", None)?;
    let grants = v
        .get("grants")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let dir = home_dir()?.join(STORE);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_error("cannot create", &dir, &e))?;
    let fetch = Fetch {
        me: &me.name,
        keys: &host_keys()?,
        dir: &dir,
        now: OffsetDateTime::now_utc(),
    };
    let (mut stored, mut over, mut problems) = (Vec::new(), HashSet::new(), Vec::new());
    for g in &grants {
        match fetch.store(g)? {
            Fetched::Stored(line) => stored.push(line),
            Fetched::Over(id) => {
                over.insert(id);
            }
            Fetched::Skipped(problem) => problems.push(problem),
        }
    }
    let removed = remove_finished(&dir, &over, fetch.now);
    for p in &problems {
        eprintln!("jitctl: warning: {p}");
    }
    if verbose {
        report(&dir, &stored, removed);
    }
    Ok(())
}

/// What `sync` checks each grant the broker lists against.
struct Fetch<'a> {
    me: &'a str,
    keys: &'a KeySet,
    dir: &'a Path,
    now: OffsetDateTime,
}

/// What became of one grant the broker listed.
enum Fetched {
    /// Written to the store: `ID (RULE, until EXP)`.
    Stored(String),
    /// Revoked or expired: its file (if this command wrote one) goes.
    Over(String),
    /// Not stored, and why.
    Skipped(String),
}

impl Fetch<'_> {
    /// Store one grant: a valid id, a readable token that is still current, for this user,
    /// with this id, and (when the host has trusted keys) one that verifies with them.
    fn store(&self, g: &Value) -> Result<Fetched> {
        let id = text(g, "id");
        if check_id("grant", id).is_err() {
            return Ok(Fetched::Skipped(format!(
                "the broker sent a grant with the id {id:?}; skipped"
            )));
        }
        let token = text(g, "token").trim();
        let claims = jit_grant::decode_unverified(token)
            .ok()
            .and_then(|u| serde_json::from_str::<Value>(&u.payload).ok());
        let Some(claims) = claims else {
            return Ok(Fetched::Skipped(format!(
                "grant {id}: the broker sent no readable token; skipped"
            )));
        };
        let revoked = g.get("revoked").and_then(Value::as_bool) == Some(true);
        let exp = jit_grant::parse_time(text(&claims, "exp")).ok();
        if revoked || exp.is_none_or(|e| e <= self.now) {
            return Ok(Fetched::Over(id.to_string()));
        }
        if text(&claims, "jti") != id || text(&claims, "sub") != self.me {
            return Ok(Fetched::Skipped(format!(
                "grant {id}: the token is for {:?} with id {:?}, not for you; skipped",
                text(&claims, "sub"),
                text(&claims, "jti")
            )));
        }
        if !self.keys.is_empty() {
            if let Err(e) = jit_grant::verify(token, self.keys, TokenKind::Grant) {
                return Ok(Fetched::Skipped(format!(
                    "grant {id} does not verify with this host's keys in {KEYS_DIR} ({e}); not stored"
                )));
            }
        }
        write_atomic(self.dir, id, format!("{token}\n").as_bytes(), 0o600)?;
        Ok(Fetched::Stored(format!(
            "{id} ({}, until {})",
            text(&claims, "rule"),
            text(&claims, "exp")
        )))
    }
}

/// Remove the files this command wrote for grants that are over (expired, or `over` by the
/// broker's word); how many went.
fn remove_finished(dir: &Path, over: &HashSet<String>, now: OffsetDateTime) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.filter_map(|e| e.ok()) {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if check_id("grant", &name).is_err() {
            continue;
        }
        let path = e.path();
        let Some(exp) = own_file(&path, &name) else {
            continue;
        };
        if (exp <= now || over.contains(&name)) && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn report(dir: &Path, stored: &[String], removed: usize) {
    if stored.is_empty() {
        println!("no active grants to store; ask with: jitctl request RULE --reason \"why\"");
    } else {
        println!(
            "stored {} in {}: {}",
            if stored.len() == 1 {
                "1 grant".to_string()
            } else {
                format!("{} grants", stored.len())
            },
            dir.display(),
            stored.join(", ")
        );
        println!("run your command with: jitrun COMMAND");
    }
    if removed > 0 {
        println!("removed {removed} expired or revoked grant file(s)");
    }
}
