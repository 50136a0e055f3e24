//! `jitctl policy diff OLD NEW`: who (each user and group a rule names) gains or loses
//! which rules, commands, capabilities, hosts, run-as identities, and standing access.
use crate::cli::DiffArgs;
use crate::error::Result;
use crate::policy::load_policy;
use jit_policy::{format_duration, GrantMode, Policy, Rule, RunAs};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a rule gives, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    commands: BTreeSet<String>,
    caps: BTreeSet<String>,
    hosts: BTreeSet<String>,
    run_as: String,
    grant: &'static str,
    min_approvals: u32,
    max_duration: String,
    /// Sealed break-glass grants accepted for this long (None: refused).
    sealed_validity: Option<String>,
}

fn facts(r: &Rule) -> Facts {
    Facts {
        commands: r.commands.iter().map(ToString::to_string).collect(),
        caps: if r.capabilities.is_all() {
            BTreeSet::from(["ALL".to_string()])
        } else {
            r.capabilities
                .names()
                .into_iter()
                .map(String::from)
                .collect()
        },
        hosts: r.hosts.iter().cloned().collect(),
        run_as: match &r.run_as {
            RunAs::Invoker => "invoker".to_string(),
            RunAs::Root => "root".to_string(),
            RunAs::User(u) => u.clone(),
        },
        grant: match r.grant {
            GrantMode::Required => "required",
            GrantMode::None => "none",
        },
        min_approvals: r.min_approvals,
        max_duration: format_duration(r.max_duration),
        sealed_validity: r.sealed_validity.map(format_duration),
    }
}

/// principal ("user:alice" / "group:netops") → rule name → facts.
fn by_principal(p: &Policy) -> BTreeMap<String, BTreeMap<String, Facts>> {
    let mut out: BTreeMap<String, BTreeMap<String, Facts>> = BTreeMap::new();
    for r in &p.rules {
        let f = facts(r);
        let who = r
            .users
            .iter()
            .map(|u| format!("user:{u}"))
            .chain(r.groups.iter().map(|g| format!("group:{g}")));
        for w in who {
            out.entry(w).or_default().insert(r.name.clone(), f.clone());
        }
    }
    out
}

fn set_json(s: &BTreeSet<String>) -> Value {
    json!(s.iter().collect::<Vec<_>>())
}

fn change(old: Option<&Facts>, new: Option<&Facts>) -> Option<Value> {
    let empty = BTreeSet::new();
    let minus = |a: Option<&BTreeSet<String>>, b: Option<&BTreeSet<String>>| -> BTreeSet<String> {
        a.unwrap_or(&empty)
            .difference(b.unwrap_or(&empty))
            .cloned()
            .collect()
    };
    let side = |a: Option<&Facts>, b: Option<&Facts>| {
        json!({
            "commands": set_json(&minus(a.map(|f| &f.commands), b.map(|f| &f.commands))),
            "capabilities": set_json(&minus(a.map(|f| &f.caps), b.map(|f| &f.caps))),
            "hosts": set_json(&minus(a.map(|f| &f.hosts), b.map(|f| &f.hosts))),
        })
    };
    let field = |get: &dyn Fn(&Facts) -> Value| -> Value {
        let (o, n) = (old.map(get), new.map(get));
        if o == n {
            Value::Null
        } else {
            json!({"old": o, "new": n})
        }
    };
    let kind = match (old, new) {
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        (Some(o), Some(n)) if o == n => return None,
        _ => "changed",
    };
    Some(json!({
        "change": kind,
        "gained": side(new, old),
        "lost": side(old, new),
        "run_as": field(&|f| json!(f.run_as)),
        "grant": field(&|f| json!(f.grant)),
        "min_approvals": field(&|f| json!(f.min_approvals)),
        "max_duration": field(&|f| json!(f.max_duration)),
        "sealed_validity": field(&|f| json!(f.sealed_validity)),
    }))
}

/// Every change, ordered by principal then rule.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Value> {
    let (a, b) = (by_principal(old), by_principal(new));
    let none = BTreeMap::new();
    let who: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for w in who {
        let (ra, rb) = (a.get(w).unwrap_or(&none), b.get(w).unwrap_or(&none));
        let rules: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
        for r in rules {
            if let Some(mut c) = change(ra.get(r), rb.get(r)) {
                c["who"] = json!(w);
                c["rule"] = json!(r);
                out.push(c);
            }
        }
    }
    out
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// For a rule gained or lost as a whole: one summary line, then its commands.
fn describe_whole(c: &Value, side: &str, at: &str) -> Vec<String> {
    let caps = strs(&c[side]["capabilities"]);
    let caps = if caps.is_empty() {
        "no capabilities".to_string()
    } else {
        caps.join(", ")
    };
    let grant = match c["grant"][at].as_str() {
        Some("none") => "standing access (grant = \"none\")".to_string(),
        _ => format!(
            "grant required (min_approvals {}, max_duration {}{})",
            c["min_approvals"][at],
            c["max_duration"][at].as_str().unwrap_or("?"),
            c["sealed_validity"][at]
                .as_str()
                .map(|v| format!(", sealed grants valid up to {v}"))
                .unwrap_or_default()
        ),
    };
    let mut lines = vec![format!(
        "run as {} with {caps}; {grant}; hosts {}",
        c["run_as"][at].as_str().unwrap_or("?"),
        strs(&c[side]["hosts"]).join(", ")
    )];
    lines.extend(
        strs(&c[side]["commands"])
            .into_iter()
            .map(|x| format!("command {x:?}")),
    );
    lines
}

fn describe(c: &Value) -> Vec<String> {
    match c["change"].as_str() {
        Some("added") => return describe_whole(c, "gained", "new"),
        Some("removed") => return describe_whole(c, "lost", "old"),
        _ => {}
    }
    let mut lines = Vec::new();
    for (side, verb) in [("gained", "gains"), ("lost", "loses")] {
        for (key, what) in [
            ("commands", "command"),
            ("capabilities", "capability"),
            ("hosts", "host"),
        ] {
            for x in strs(&c[side][key]) {
                lines.push(format!("{verb} {what} {x:?}"));
            }
        }
    }
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    for key in ["run_as", "min_approvals", "max_duration", "sealed_validity"] {
        if !c[key].is_null() {
            lines.push(format!(
                "{key}: {} -> {}",
                show(&c[key]["old"]),
                show(&c[key]["new"])
            ));
        }
    }
    if !c["grant"].is_null() {
        let g = |v: &Value| match v.as_str() {
            Some("none") => "standing access (grant = \"none\")",
            Some("required") => "grant required",
            _ => "-",
        };
        lines.push(format!(
            "{} -> {}",
            g(&c["grant"]["old"]),
            g(&c["grant"]["new"])
        ));
    }
    lines
}

pub fn render_text(changes: &[Value]) -> String {
    let mut out = String::new();
    let mut last = "";
    for c in changes {
        let who = c["who"].as_str().unwrap_or("");
        if who != last {
            let (kind, name) = who.split_once(':').unwrap_or(("", who));
            out.push_str(&format!("{kind} {name}\n"));
            last = who;
        }
        let rule = c["rule"].as_str().unwrap_or("");
        let (mark, what) = match c["change"].as_str() {
            Some("added") => ("+", "gains rule"),
            Some("removed") => ("-", "loses rule"),
            _ => ("~", "rule"),
        };
        out.push_str(&format!("  {mark} {what} {rule:?}\n"));
        for l in describe(c) {
            out.push_str(&format!("      {l}\n"));
        }
    }
    if changes.is_empty() {
        out.push_str("no differences in who may run what\n");
    }
    out
}

pub fn run(args: &DiffArgs) -> Result<()> {
    let (old, _) = load_policy(std::slice::from_ref(&args.old))?;
    let (new, _) = load_policy(std::slice::from_ref(&args.new))?;
    let changes = diff(&old, &new);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "changes": changes }))
                .expect("JSON values serialize")
        );
    } else {
        print!("{}", render_text(&changes));
    }
    if args.exit_code && !changes.is_empty() {
        return Err(format!("{} difference(s)", changes.len()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_policy::PolicySource;

    fn load(text: &str) -> Policy {
        Policy::load(&[PolicySource {
            name: "p.toml".to_string(),
            text: text.to_string(),
        }])
        .unwrap()
    }

    #[test]
    fn who_gains_and_loses_what() {
        let old = load("[[rule]]\nname = \"net\"\nusers = [\"alice\"]\ngroups = [\"netops\"]\ncommands = [\"/usr/sbin/ip link **\"]\ncapabilities = [\"net_admin\", \"net_raw\"]\n\n[[rule]]\nname = \"gone\"\nusers = [\"bob\"]\ncommands = [\"/usr/bin/id\"]\n");
        let new = load("[[rule]]\nname = \"net\"\ngroups = [\"netops\"]\ncommands = [\"/usr/sbin/ip link **\", \"/usr/bin/tcpdump -i eth0\"]\ncapabilities = [\"net_admin\"]\ngrant = \"none\"\nrun_as = \"root\"\n");
        let c = diff(&old, &new);
        let keys: Vec<(String, String, String)> = c
            .iter()
            .map(|v| {
                (
                    v["who"].as_str().unwrap().to_string(),
                    v["rule"].as_str().unwrap().to_string(),
                    v["change"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("group:netops".into(), "net".into(), "changed".into()),
                ("user:alice".into(), "net".into(), "removed".into()),
                ("user:bob".into(), "gone".into(), "removed".into()),
            ]
        );
        let n = &c[0];
        assert_eq!(strs(&n["gained"]["commands"]), ["/usr/bin/tcpdump -i eth0"]);
        assert_eq!(strs(&n["lost"]["capabilities"]), ["CAP_NET_RAW"]);
        assert_eq!(n["run_as"], json!({"old": "invoker", "new": "root"}));
        assert_eq!(n["grant"], json!({"old": "required", "new": "none"}));
        let text = render_text(&c);
        assert!(text.contains("group netops\n  ~ rule \"net\"\n      gains command \"/usr/bin/tcpdump -i eth0\"\n      loses capability \"CAP_NET_RAW\"\n      run_as: invoker -> root\n      grant required -> standing access (grant = \"none\")\n"), "{text}");
        assert!(
            text.contains(
                "user alice\n  - loses rule \"net\"\n      run as invoker with CAP_NET_ADMIN, CAP_NET_RAW; grant required (min_approvals 0, max_duration 1h); hosts *\n      command \"/usr/sbin/ip link **\"\n"
            ),
            "{text}"
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(render_text(&[]), "no differences in who may run what\n");
    }

    #[test]
    fn accepting_sealed_grants_is_a_change() {
        let rule = "[[rule]]\nname = \"bg\"\nusers = [\"alice\"]\ncommands = [\"/usr/bin/id\"]\n";
        let old = load(rule);
        let new = load(&format!("{rule}sealed_validity = \"30d\"\n"));
        let c = diff(&old, &new);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["sealed_validity"], json!({"old": null, "new": "30d"}));
        assert!(
            render_text(&c).contains("sealed_validity: - -> 30d"),
            "{}",
            render_text(&c)
        );
        let added = diff(&Policy::default(), &new);
        assert!(
            render_text(&added).contains("max_duration 1h, sealed grants valid up to 30d)"),
            "{}",
            render_text(&added)
        );
    }
}
