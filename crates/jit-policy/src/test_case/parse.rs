//! One `[[test]]` table → [`PolicyTest`]. Errors read `file:LINE: test "name": field:
//! problem` (`test[N]`, 0-based within the file, when the case has no name).

use super::{Expect, PolicyTest, TestGrant};
use crate::caps::CapSet;
use crate::decide::DenyCode;
use crate::error::PolicyError;
use crate::fields::{capabilities, choice, command_pattern, names, Section};
use crate::names::{valid_rule_name, valid_user_name};
use crate::pattern::CommandPattern;
use crate::rule::{run_as, SourceLoc};
use crate::text::quote;
use crate::toml_doc::{Doc, Entry, Raw, Span};

const TEST_KEYS: &[&str] = &[
    "name", "user", "groups", "host", "argv", "grant", "run_as", "expect", "caps", "rule", "deny",
];
const GRANT_KEYS: &[&str] = &["rule", "caps", "cmd", "run_as", "approvers", "break_glass"];

pub(super) fn parse_test<'e>(
    doc: &Doc<'_>,
    table: &'e [Entry],
    span: Span<'e>,
    index: usize,
    source: SourceLoc,
) -> Result<PolicyTest, PolicyError> {
    let name = match table.iter().find(|e| e.key == "name") {
        Some(e) => Some(doc.string(e, &format!("test[{index}]: name"))?.to_string()),
        None => None,
    };
    let label = match &name {
        Some(n) => format!("test {}", quote(n)),
        None => format!("test[{index}]"),
    };
    let t = Section::checked(doc, table, span, label, TEST_KEYS)?;
    let user = user(&t)?;
    let groups = match t.get("groups") {
        None => Vec::new(),
        Some(e) => names(doc, e, &t.field("groups"), "[\"netops\"]", "group")?,
    };
    let host = host(&t)?;
    let argv = argv(&t)?;
    let grant = match t.get("grant") {
        None => None,
        Some(e) => Some(grant(&t, e)?),
    };
    let run_as = dash_u(&t)?;
    let expect = expect(&t)?;
    Ok(PolicyTest {
        source,
        name,
        user,
        groups,
        host,
        argv,
        grant,
        run_as,
        expect,
        caps: expected_caps(&t, expect)?,
        rule: expected_rule(&t)?,
        deny: expected_deny(&t, expect)?,
    })
}

/// A key every test needs.
fn required<'e>(t: &Section<'_, 'e>, key: &str, example: &str) -> Result<&'e Entry, PolicyError> {
    t.get(key).ok_or_else(|| {
        t.err(
            t.span,
            key,
            format!("missing; every test needs {key} = {example}"),
        )
    })
}

fn user(t: &Section<'_, '_>) -> Result<String, PolicyError> {
    let e = required(t, "user", "\"alice\"")?;
    let user = t.doc.string(e, &t.field("user"))?;
    if !valid_user_name(user) {
        return Err(t.bad(e, format!("invalid user name {}", quote(user))));
    }
    Ok(user.to_string())
}

/// One host name (no globs: a test runs on one host), default `localhost`.
fn host(t: &Section<'_, '_>) -> Result<String, PolicyError> {
    let Some(e) = t.get("host") else {
        return Ok("localhost".to_string());
    };
    let h = t.doc.string(e, &t.field("host"))?;
    if h.is_empty() || !h.chars().all(|c| c.is_ascii_graphic()) || h.contains(['*', '?', '[']) {
        return Err(t.bad(
            e,
            format!(
                "invalid host name {}: a test runs on one host, so no globs",
                quote(h)
            ),
        ));
    }
    Ok(h.to_string())
}

/// The command line: at least the program, an absolute path.
fn argv(t: &Section<'_, '_>) -> Result<Vec<String>, PolicyError> {
    const EXAMPLE: &str = "[\"/usr/sbin/ip\", \"link\"]";
    let e = required(t, "argv", EXAMPLE)?;
    let argv: Vec<String> = t
        .doc
        .strings(e, &t.field("argv"), EXAMPLE)?
        .into_iter()
        .map(|(s, _)| s.to_string())
        .collect();
    match argv.first() {
        None => Err(t.bad(
            e,
            format!("empty: give at least the program, e.g. {EXAMPLE}"),
        )),
        Some(p) if !p.starts_with('/') => Err(t.bad(
            e,
            format!(
                "the program {} must be an absolute path, as jitrun resolves it (tests do not search secure_path)",
                quote(p)
            ),
        )),
        Some(_) => Ok(argv),
    }
}

/// `run_as`: the `-u` option.
fn dash_u(t: &Section<'_, '_>) -> Result<Option<String>, PolicyError> {
    let Some(u) = t.string("run_as")? else {
        return Ok(None);
    };
    if !valid_user_name(u) {
        let e = t.get("run_as").expect("just read");
        return Err(t.bad(
            e,
            format!("invalid user name {} (this is the -u option)", quote(u)),
        ));
    }
    Ok(Some(u.to_string()))
}

fn expect(t: &Section<'_, '_>) -> Result<Expect, PolicyError> {
    let e = required(t, "expect", "\"allow\" or \"deny\"")?;
    choice(
        t.doc,
        e,
        &t.field("expect"),
        &[("allow", Expect::Allow), ("deny", Expect::Deny)],
        "\"allow\" or \"deny\"",
    )
}

/// `caps`: the exact final capabilities, with `expect = "allow"` only.
fn expected_caps(t: &Section<'_, '_>, expect: Expect) -> Result<Option<CapSet>, PolicyError> {
    let Some(e) = t.get("caps") else {
        return Ok(None);
    };
    if expect == Expect::Deny {
        return Err(t.bad(
            e,
            "expected capabilities only make sense with expect = \"allow\"",
        ));
    }
    capabilities(t.doc, e, &t.field("caps"), "[\"CAP_NET_RAW\"]", true).map(Some)
}

fn expected_rule(t: &Section<'_, '_>) -> Result<Option<String>, PolicyError> {
    let Some(r) = t.string("rule")? else {
        return Ok(None);
    };
    if !valid_rule_name(r) {
        let e = t.get("rule").expect("just read");
        return Err(t.bad(e, format!("invalid rule name {}", quote(r))));
    }
    Ok(Some(r.to_string()))
}

/// `deny`: the expected deny code, with `expect = "deny"` only.
fn expected_deny(t: &Section<'_, '_>, expect: Expect) -> Result<Option<DenyCode>, PolicyError> {
    let Some(code) = t.string("deny")? else {
        return Ok(None);
    };
    let e = t.get("deny").expect("just read");
    if expect == Expect::Allow {
        return Err(t.bad(
            e,
            "an expected deny code only makes sense with expect = \"deny\"",
        ));
    }
    DenyCode::parse(code).map(Some).ok_or_else(|| {
        let known: Vec<&str> = DenyCode::ALL.iter().map(|c| c.as_str()).collect();
        t.bad(
            e,
            format!(
                "unknown deny code {}; known codes: {}",
                quote(code),
                known.join(", ")
            ),
        )
    })
}

/// The `grant = { ... }` table: the synthetic grant the case is decided with.
fn grant(t: &Section<'_, '_>, e: &Entry) -> Result<TestGrant, PolicyError> {
    let doc = t.doc;
    let field = |k: &str| format!("{}: grant.{k}", t.label);
    let Raw::Table(table) = &e.node.value else {
        return Err(t.bad(
            e,
            format!(
                "expected a table such as {{ rule = \"net-debug\" }}, found {}; leave grant out to test standing access (no grant)",
                e.node.value.kind()
            ),
        ));
    };
    doc.check_keys(table, GRANT_KEYS, &t.field("grant"))?;
    let mut g = TestGrant::default();
    for entry in table {
        let f = field(&entry.key);
        match entry.key.as_str() {
            "rule" => g.rule = Some(doc.string(entry, &f)?.to_string()),
            "caps" => g.caps = Some(capabilities(doc, entry, &f, "[\"CAP_NET_RAW\"]", true)?),
            "cmd" => g.cmd = Some(grant_cmd(doc, entry, &f)?),
            "run_as" => g.run_as = Some(run_as(doc, entry, &f)?),
            "approvers" => {
                let list = doc.strings(entry, &f, "[\"bob\", \"carol\"]")?;
                g.approvers = Some(list.into_iter().map(|(s, _)| s.to_string()).collect());
            }
            "break_glass" => g.break_glass = doc.boolean(entry, &f)?,
            _ => unreachable!("keys were checked"),
        }
    }
    Ok(g)
}

/// `grant.cmd`: one pattern (a string, or an array of words: the claim's syntax), or
/// several (an array of arrays).
fn grant_cmd(doc: &Doc<'_>, e: &Entry, field: &str) -> Result<Vec<CommandPattern>, PolicyError> {
    let one = |n| {
        command_pattern(
            doc,
            n,
            field,
            "a command pattern (a string or an array of strings)",
        )
    };
    match &e.node.value {
        Raw::Str(_) => Ok(vec![one(&e.node)?]),
        // An array of strings is ambiguous: the claim's syntax says a string or an array
        // of strings is ONE pattern, so it is read as the array form.
        Raw::Array(items) if items.iter().all(|n| matches!(n.value, Raw::Str(_))) => {
            Ok(vec![one(&e.node)?])
        }
        Raw::Array(items) => items.iter().map(one).collect(),
        other => Err(doc.err(
            doc.entry_span(e),
            field,
            format!(
                "expected a command pattern such as \"/usr/sbin/ip link **\", found {}",
                other.kind()
            ),
        )),
    }
}
