//! `jitrun -l`: what the caller may run on this host, and the grants they hold.

use crate::decide::grant_code;
use crate::identity::Invoker;
use crate::revocations::{self, ListState};
use crate::user_files;
use jit_grant::{CheckContext, KeySet, TokenKind};
use jit_policy::{format_duration, GrantMode, Policy, Rule, Settings};
use time::OffsetDateTime;

pub fn print(policy: &Policy, keys: &KeySet, settings: &Settings, inv: &Invoker, host: &str) {
    let rules = jit_policy::decide::rules_for(policy, &inv.name, &inv.groups, host);
    show!("jitrun on {host} for {} (uid {})", inv.name, inv.uid);
    if rules.is_empty() {
        show!("No rule lets you run anything on this host. Ask your admin for a rule, then: jitctl request RULE --reason \"...\"");
    } else {
        show!("\nRules that name you:");
        for r in &rules {
            print_rule(r);
        }
    }
    print_grants(keys, settings, inv, host);
}

fn print_rule(r: &Rule) {
    let access = match r.grant {
        GrantMode::Required => {
            format!("grant required (up to {})", format_duration(r.max_duration))
        }
        GrantMode::None => "standing access (no grant needed)".to_string(),
    };
    let caps = if r.capabilities.is_all() {
        "ALL".to_string()
    } else if r.capabilities.is_empty() {
        "none".to_string()
    } else {
        r.capabilities.names().join(",")
    };
    show!(
        "  {}: run as {}, capabilities {caps}, {access}",
        r.name,
        crate::audit::run_as_name(&r.run_as)
    );
    for c in &r.commands {
        show!("      {c}");
    }
}

/// Each file of the caller's grant store: what it grants and for how long, or why it is not
/// usable now.
fn print_grants(keys: &KeySet, settings: &Settings, inv: &Invoker, host: &str) {
    let files = user_files::store_files(inv);
    let dir = user_files::store_dir(inv);
    if files.is_empty() {
        show!("\nNo grants in {}.", dir.display());
        return;
    }
    show!("\nGrants in {}:", dir.display());
    let now = OffsetDateTime::now_utc();
    let revoked = revocations::load(keys);
    let ctx = CheckContext {
        user: &inv.name,
        uid: inv.uid,
        host,
        now,
        clock_skew: settings.clock_skew,
    };
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match user_files::read_as_user(inv, &path) {
            Ok(token) => print_grant(&name, &token, keys, &revoked, &ctx),
            Err(e) => show!("  {name}: unreadable: {e}"),
        }
    }
}

fn print_grant(
    name: &str,
    token: &str,
    keys: &KeySet,
    revoked: &ListState,
    ctx: &CheckContext<'_>,
) {
    let c = match jit_grant::verify(token, keys, TokenKind::Grant) {
        Ok(v) => v.claims,
        Err(e) => return show!("  {name}: not usable ({}): {e}", grant_code(&e)),
    };
    let now = ctx.now;
    if let Some(entry) = revoked.find(&c.jti) {
        return show!(
            "  {name}: grant {} for rule {} not usable now (revoked): {}",
            c.jti,
            c.rule,
            revocations::revoked_message(&c.jti, &c.rule, entry, now)
        );
    }
    let caps = c
        .caps
        .as_ref()
        .map(|c| c.join(","))
        .unwrap_or_else(|| "the rule's".to_string());
    let uses = match c.max_uses {
        Some(max) => match crate::uses::used(&c.jti) {
            Ok(n) => format!(", {} of {max} use(s) left", (max as u64).saturating_sub(n)),
            Err(e) => format!(", uses unknown ({})", e.message),
        },
        None => String::new(),
    };
    match c.check(ctx) {
        Ok(()) => show!(
            "  {name}: grant {} for rule {}, capabilities {caps}, {} left{uses}",
            c.jti,
            c.rule,
            format_duration(c.remaining(now))
        ),
        Err(e) => show!(
            "  {name}: grant {} for rule {} not usable now ({}): {e}",
            c.jti,
            c.rule,
            grant_code(&e)
        ),
    }
}
