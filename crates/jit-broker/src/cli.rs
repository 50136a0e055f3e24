//! The command line: `init`, `serve`, the local admin commands on the store, `pubkey`
//! (parsed by clap as `args.rs` defines it).
use crate::args::{AuditCommand, Cli, Command, HostCommand, SessionCommand};
use crate::audit_chain;
use crate::broker::{replica_name, Actor, Broker};
use crate::config::StoreLocation;
use crate::config::{default_config_text, Config};
use crate::error::CliError;
use crate::hosts;
use crate::metrics::Metrics;
use crate::store::{PgStore, SqliteStore};
use crate::syslog::Syslog;
use jit_grant::{format_time, PublicKey, SecretKey};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use time::OffsetDateTime;

fn file_err(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Load the signing key; refuse one readable by group or others.
pub fn load_key(path: &Path) -> Result<SecretKey, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        file_err(
            path,
            format!("cannot read the signing key: {e}; run `jitbroker init`"),
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(file_err(
            path,
            format!(
                "the signing key is readable by others (mode {:o}); chmod 600 it",
                meta.permissions().mode() & 0o777
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    SecretKey::from_paserk(&text).map_err(|e| file_err(path, e))
}

pub fn open_broker(config: Config) -> Result<Broker, CliError> {
    let key = load_key(&config.signing_key)?;
    let store = crate::store::open(&config, &replica_name(&config))?;
    Ok(Broker {
        kid: key.public_key().kid(),
        key,
        syslog: Syslog::new(&config),
        metrics: Metrics::default(),
        outbox: tokio::sync::Notify::new(),
        readiness: std::sync::Mutex::new(None),
        // Sized by `serve` from the connection limit; the admin commands hold none.
        watches: std::sync::Arc::new(crate::watch::Watches::new(1, 1)),
        store,
        config,
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| file_err(path, e))?;
    f.sync_all().map_err(|e| file_err(path, e))
}

fn ensure_dir(dir: &Path, mode: u32) -> Result<(), CliError> {
    if !dir.as_os_str().is_empty() && !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| file_err(dir, e))?;
    }
    Ok(())
}

fn init(config_path: &Path) -> Result<(), CliError> {
    if !config_path.exists() {
        if let Some(dir) = config_path.parent() {
            ensure_dir(dir, 0o755)?;
        }
        let id = format!("jitbroker@{}", crate::config::hostname());
        write_new(config_path, &default_config_text(&id), 0o644)?;
        println!(
            "wrote {} (broker id {id}); add [[workflow]] sections",
            config_path.display()
        );
    }
    let config = Config::load(config_path)?;
    if let Some(dir) = config.signing_key.parent() {
        ensure_dir(dir, 0o700)?;
    }
    if config.signing_key.exists() {
        load_key(&config.signing_key)?;
        println!(
            "keeping the existing signing key {}",
            config.signing_key.display()
        );
    } else {
        let key = write_key_pair(&config.signing_key)?;
        println!(
            "signing key {} (0600), public key {} (kid {})",
            config.signing_key.display(),
            config.public_key_path().display(),
            key.public_key().kid()
        );
    }
    if let StoreLocation::Sqlite(path) = &config.store_location {
        if let Some(dir) = path.parent() {
            ensure_dir(dir, 0o700)?;
        }
    }
    let store = crate::store::open(&config, &replica_name(&config))?;
    println!(
        "store {} at schema version {}",
        config.store_location,
        store.schema_version()?
    );
    println!("next: install the public key on every host (jitbroker pubkey > /etc/jitrun/keys.d/{}.paserk), enroll hosts (jitbroker host add NAME KEY), then jitbroker serve", config.id.replace(['@', '/'], "-"));
    Ok(())
}

/// A new signing key at `path` (0600, never over an existing file) and its public key beside
/// it (`.pub`, 0644).
fn write_key_pair(path: &Path) -> Result<SecretKey, CliError> {
    let key = SecretKey::generate().map_err(|e| CliError::Other(e.to_string()))?;
    write_new(path, &format!("{}\n", key.to_paserk()), 0o600)?;
    let public = path.with_extension("pub");
    let _ = std::fs::remove_file(&public);
    write_new(
        &public,
        &format!("{}\n", key.public_key().to_paserk()),
        0o644,
    )?;
    Ok(key)
}

fn read_key_arg(key: &str) -> Result<PublicKey, CliError> {
    let text = if key.trim_start().starts_with("k4.") {
        key.to_string()
    } else {
        std::fs::read_to_string(key).map_err(|e| {
            file_err(
                Path::new(key),
                format!("not a k4.public PASERK, and not a readable file: {e}"),
            )
        })?
    };
    PublicKey::from_paserk(&text).map_err(|e| CliError::Other(format!("host key: {e}")))
}

fn audit_verify(config: &Config) -> Result<bool, CliError> {
    let store = crate::store::open(config, &replica_name(config))?;
    let rows = store.audit_rows()?;
    match audit_chain::verify(&rows) {
        Ok(n) => {
            println!(
                "audit chain intact: {n} rows{}",
                rows.last()
                    .map(|r| format!(", last hash {}", r.hash))
                    .unwrap_or_default()
            );
            Ok(true)
        }
        Err(broken) => {
            println!("audit chain BROKEN at row {}: {}", broken.id, broken.why);
            Ok(false)
        }
    }
}

/// Run a command; returns the exit status.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    let now = OffsetDateTime::now_utc();
    match cli.command {
        Command::Init => init(&cli.config).map(|_| 0),
        Command::Serve => {
            let config = Config::load(&cli.config)?;
            let broker = open_broker(config)?;
            crate::serve::serve(broker)?;
            Ok(0)
        }
        Command::Pubkey => {
            let config = Config::load(&cli.config)?;
            println!(
                "{}",
                load_key(&config.signing_key)?.public_key().to_paserk()
            );
            Ok(0)
        }
        Command::Keygen { path } => {
            if let Some(dir) = path.parent() {
                ensure_dir(dir, 0o700)?;
            }
            let key = write_key_pair(&path)?;
            eprintln!(
                "new signing key {} (0600), public key {} (kid {}): install the public key on every host first (keys.d), then point signing_key at the new key on every replica and restart them one by one",
                path.display(),
                path.with_extension("pub").display(),
                key.public_key().kid()
            );
            println!("{}", key.public_key().to_paserk());
            Ok(0)
        }
        Command::Migrate { from, to } => {
            let config = Config::load(&cli.config)?;
            migrate(&config, &from, &to).map(|_| 0)
        }
        Command::Audit(AuditCommand::Verify) => {
            let config = Config::load(&cli.config)?;
            Ok(if audit_verify(&config)? { 0 } else { 1 })
        }
        Command::Session(cmd) => {
            let config = Config::load(&cli.config)?;
            let broker = open_broker(config)?;
            sessions(&broker, cmd, now)
        }
        Command::BreakGlass(cmd) => {
            let config = Config::load(&cli.config)?;
            let broker = open_broker(config)?;
            crate::sealed_cli::run(&broker, &local_actor(), cmd, now)
        }
        Command::Host(cmd) => {
            let config = Config::load(&cli.config)?;
            let broker = open_broker(config)?;
            let actor = local_actor();
            match cmd {
                HostCommand::Add { name, key } => {
                    let key = read_key_arg(&key)?;
                    let (_, events) = hosts::add_host(
                        &broker,
                        &actor,
                        &name,
                        &key,
                        hosts::Enrollment::Admin,
                        now,
                    )?;
                    broker.committed(events);
                    println!("enrolled host {name} (key {})", key.kid());
                }
                HostCommand::EnrollToken { name, ttl } => {
                    let ttl = jit_policy::parse_duration(&ttl)
                        .map_err(|e| CliError::Other(format!("--ttl: {e}")))?;
                    let token = hosts::enrollment_token(&broker, &actor, &name, ttl, now)?;
                    println!("{token}");
                    eprintln!("one-time token for host {name}, valid until {}; on the host: POST /v1/hosts with name, public_key and this enrollment_token, attested with the new host key", format_time(now + ttl));
                }
                HostCommand::List { json } => {
                    let hosts = hosts::list_hosts(&broker)?;
                    if json {
                        let list: Vec<_> = hosts.iter().map(|h| h.to_json()).collect();
                        println!("{}", serde_json::json!({ "hosts": list }));
                    } else if hosts.is_empty() {
                        println!(
                            "no hosts enrolled; enroll one with `jitbroker host add NAME KEY`"
                        );
                    } else {
                        for h in &hosts {
                            println!(
                                "{:<32} {:<9} {} since {}",
                                h.name,
                                h.state.as_str(),
                                h.kid,
                                format_time(h.created)
                            );
                        }
                    }
                }
                HostCommand::Retire { name } => {
                    let (_, events) = hosts::retire_host(&broker, &actor, &name, now)?;
                    broker.committed(events);
                    println!("retired host {name}");
                }
            }
            Ok(0)
        }
    }
}

/// `jitbroker session list|end`.
fn sessions(broker: &Broker, cmd: SessionCommand, now: OffsetDateTime) -> Result<i32, CliError> {
    use crate::web::session;
    match cmd {
        SessionCommand::List { user, all, json } => {
            let list = session::list(broker, user.as_deref(), all)?;
            if json {
                let rows: Vec<_> = list.iter().map(session::session_json).collect();
                println!("{}", serde_json::json!({ "sessions": rows }));
            } else if list.is_empty() {
                println!("no {}web sessions", if all { "" } else { "open " });
            }
            for s in list.iter().filter(|_| !json) {
                let state = match (&s.ended, &s.end_reason) {
                    (Some(at), why) => format!(
                        "ended {} ({})",
                        format_time(*at),
                        why.as_deref().unwrap_or("")
                    ),
                    (None, _) => format!(
                        "last seen {}, expires {}",
                        format_time(s.last_seen),
                        format_time(s.expires)
                    ),
                };
                println!(
                    "{}  {:<16} {}  (subject {} at {})",
                    s.id, s.user, state, s.subject, s.issuer
                );
            }
            Ok(0)
        }
        SessionCommand::End { id, user, all } => {
            let open = session::list(broker, user.as_deref(), false)?;
            let chosen: Vec<_> = open
                .iter()
                .filter(|s| all || user.is_some() || id.as_deref() == Some(s.id.as_str()))
                .collect();
            if let (Some(id), true) = (&id, chosen.is_empty()) {
                return Err(CliError::Other(format!(
                    "no open web session {id}; see `jitbroker session list`"
                )));
            }
            let actor = local_actor();
            for s in &chosen {
                let (_, events) = session::end(broker, s, &actor, "ended by an admin", now)?;
                broker.committed(events);
                println!("ended web session {} of {}", s.id, s.user);
            }
            if chosen.is_empty() {
                println!("no open web sessions to end");
            }
            Ok(0)
        }
    }
}

/// `jitbroker migrate`: SQLite into an empty PostgreSQL database, verified.
fn migrate(config: &Config, from: &str, to: &str) -> Result<(), CliError> {
    let path = match StoreLocation::parse(from, "--from").map_err(CliError::Other)? {
        StoreLocation::Sqlite(path) => path,
        StoreLocation::Postgres(_) => {
            return Err(CliError::Other(
                "--from: jitbroker migrate copies from a SQLite store (sqlite:PATH)".into(),
            ))
        }
    };
    let url =
        match StoreLocation::parse(to, "--to").map_err(CliError::Other)? {
            StoreLocation::Postgres(url) => url,
            StoreLocation::Sqlite(_) => return Err(CliError::Other(
                "--to: jitbroker migrate copies into PostgreSQL (postgres://USER@HOST/DATABASE)"
                    .into(),
            )),
        };
    if !path.is_file() {
        return Err(file_err(&path, "no such SQLite store"));
    }
    let me = replica_name(config);
    let src = SqliteStore::open(&path, &me)?;
    let dst = PgStore::open(&url, &config.postgres, &me)?;
    let copied = crate::store::migrate::sqlite_to_postgres(&src, &dst)?;
    for (table, n) in &copied.tables {
        println!("copied {n:>8} rows of {table}");
    }
    println!(
        "verified: every table equal row by row; audit chain intact: {} rows{}",
        copied.audit_rows,
        copied
            .last_hash
            .map(|h| format!(", last hash {h}"))
            .unwrap_or_default()
    );
    println!("next: set store = {url:?} in broker.toml on every replica, then start them");
    Ok(())
}

/// For the admin CLI: the local actor (the Unix user running jitbroker).
pub fn local_actor() -> Actor {
    let uid = real_uid();
    let user = std::env::var("SUDO_USER")
        .ok()
        .filter(|_| uid == 0)
        .map(|u| format!("{u} (via sudo)"))
        .unwrap_or_else(|| user_name(uid).unwrap_or_else(|| format!("uid {uid}")));
    Actor {
        user: format!("local:{user}"),
        uid: Some(uid),
        host: crate::config::hostname(),
        identity: None,
    }
}

fn real_uid() -> u32 {
    // The real uid from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next();
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}
