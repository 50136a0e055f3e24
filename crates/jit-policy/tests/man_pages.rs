//! Every key the settings and policy parsers accept is documented in the man pages
//! (packaging/man/jitrun.toml.5 and jitrun-policy.5), as the tag of a `.TP` entry.
//!
//! The keys are discovered from the parsers themselves, through their "unknown key ...;
//! valid keys: ..." errors, so a key added to a parser fails this test until it is documented.
//! A key whose value is a table is probed in turn; its sub-keys are documented as `table.key`.

use jit_policy::{load_tests, Policy, PolicySource, Settings};
use std::collections::BTreeSet;

const SETTINGS_5: &str = include_str!("../../../packaging/man/jitrun.toml.5");
const POLICY_5: &str = include_str!("../../../packaging/man/jitrun-policy.5");
const PROBE: &str = "zz_not_a_key_zz";

/// The list after "valid keys: " in a parser's error, if the error is an unknown-key error.
fn valid_keys(err: &str) -> Option<Vec<String>> {
    let (_, list) = err.split_once("valid keys: ")?;
    Some(list.trim().split(", ").map(str::to_string).collect())
}

/// The tags of the `.TP` entries: the first word after `.B`/`.BR`/`.BI`, unescaped.
fn tags(roff: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = roff.lines().collect();
    let mut out = BTreeSet::new();
    for pair in lines.windows(2) {
        if pair[0].trim() != ".TP" {
            continue;
        }
        let Some(rest) = [".BR ", ".BI ", ".B "]
            .iter()
            .find_map(|m| pair[1].strip_prefix(m))
        else {
            continue;
        };
        let word = rest.split_whitespace().next().unwrap_or("");
        out.insert(word.replace("\\-", "-").trim_matches('"').to_string());
    }
    out
}

fn settings_error(text: &str) -> String {
    match Settings::parse("jitrun.toml", text) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// What `jitctl policy check` reports: the rules' errors, then the `[[test]]` cases'.
fn policy_error(text: &str) -> String {
    let src = [PolicySource {
        name: "policy.toml".into(),
        text: text.into(),
    }];
    match Policy::load(&src).and_then(|_| load_tests(&src)) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// Keys of a table: `prefix` + every key the parser lists, tables expanded to `t.key`.
fn settings_keys() -> Vec<String> {
    let top = valid_keys(&settings_error(&format!("{PROBE} = 1\n"))).expect("settings keys");
    let mut keys = Vec::new();
    for k in top {
        match valid_keys(&settings_error(&format!("[{k}]\n{PROBE} = 1\n"))) {
            Some(sub) => keys.extend(sub.into_iter().map(|s| format!("{k}.{s}"))),
            None => keys.push(k),
        }
    }
    keys
}

/// `rule.KEY` and `test.KEY` for the keys of the `[[rule]]` and `[[test]]` tables (a table
/// whose keys the loader does not check yet contributes none).
fn policy_keys() -> Vec<String> {
    let top = valid_keys(&policy_error(&format!("{PROBE} = 1\n"))).expect("policy keys");
    let mut keys = Vec::new();
    for k in top {
        if let Some(sub) = valid_keys(&policy_error(&format!("[[{k}]]\n{PROBE} = 1\n"))) {
            keys.extend(sub.into_iter().map(|s| format!("{k}.{s}")));
        } else {
            keys.push(format!("[[{k}]]"));
        }
    }
    keys
}

#[test]
fn every_settings_key_is_in_jitrun_toml_5() {
    let keys = settings_keys();
    assert!(keys.contains(&"clock_skew".to_string()), "{keys:?}");
    assert!(keys.contains(&"audit.fail_closed".to_string()), "{keys:?}");
    let documented = tags(SETTINGS_5);
    let missing: Vec<_> = keys.iter().filter(|k| !documented.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "settings keys not documented in packaging/man/jitrun.toml.5 (add a .TP entry): {missing:?}"
    );
}

#[test]
fn every_policy_key_is_in_jitrun_policy_5() {
    let keys = policy_keys();
    assert!(keys.contains(&"rule.min_approvals".to_string()), "{keys:?}");
    assert!(keys.contains(&"test.expect".to_string()), "{keys:?}");
    let documented = tags(POLICY_5);
    // Rule keys are documented under their own names in the RULES section.
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| {
            let bare = k.strip_prefix("rule.").unwrap_or(k);
            !documented.contains(*k) && !documented.contains(bare)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "policy keys not documented in packaging/man/jitrun-policy.5 (add a .TP entry): {missing:?}"
    );
}

#[test]
fn tags_are_read_from_tp_entries_only() {
    let roff = ".TP\n.B host\ntext\n.PP\n.B not_a_tag\n.TP\n.BR audit.sd_id \" (string)\"\n";
    let t = tags(roff);
    assert!(t.contains("host") && t.contains("audit.sd_id"), "{t:?}");
    assert!(!t.contains("not_a_tag"), "{t:?}");
}
