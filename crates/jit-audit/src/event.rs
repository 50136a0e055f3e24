//! Events and their fields. Field names are dotted paths (ECS where ECS has one,
//! else under `jitrun.`): `event.action`, `event.outcome`, `user.name`, `user.id`,
//! `user.target.name`, `user.target.id`, `host.name`, `process.executable`, `process.args`,
//! `process.pid`, `process.exit_code`, `process.working_directory`,
//! `process.thread.capabilities.effective`, `jitrun.schema_version`, `jitrun.session_id`,
//! `jitrun.rule`, `jitrun.run_as`, `jitrun.tty`, `jitrun.grant.id`, `jitrun.grant.kid`,
//! `jitrun.grant.issuer`, `jitrun.grant.expires`, `jitrun.grant.approvers`, `jitrun.grant.ticket`,
//! `jitrun.grant.reason`, `jitrun.grant.break_glass`, `jitrun.deny_code`, `jitrun.deny_reason`,
//! `jitrun.end_reason`, `jitrun.signal`, `jitrun.duration_ms`, `jitrun.args_truncated`,
//! `jitrun.error` (policy.error); for `session.io` the `jitrun.recording.*` fields of
//! [`crate::session_io`].
//!
//! The framer may add `jitrun.args_truncated` and `jitrun.fields_truncated` (both `true`) when
//! it had to shorten an event to fit one datagram (see [`crate::Framer`]).
//!
//! # Nesting
//!
//! The JSON form nests on the dots: `user.target.name` becomes
//! `{"user":{"target":{"name":…}}}`, objects and keys in the order their first field was set.
//! A key that is both a leaf and a prefix of another key (`jitrun.grant` = "x" together with
//! `jitrun.grant.id`) is a programming error; the rendering stays deterministic and keeps every
//! value: the object takes the name, and the leaf's value moves inside it under the key
//! `_value` (`{"jitrun":{"grant":{"_value":"x","id":…}}}`), at the leaf's position. If
//! `jitrun.grant._value` is also set, the one set later wins, as with setting a field twice.
//! The RFC 5424 framing is flat (dotted names) and has no such conflict.

use std::fmt;

/// Bumped when a field changes meaning or type, or is removed (adding a field does not bump it).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ElevateStart,
    ElevateEnd,
    ElevateDeny,
    RequestCreate,
    RequestApprove,
    RequestDeny,
    GrantIssue,
    GrantRevoke,
    BreakGlass,
    PolicyError,
    /// One chunk of a session recording (see [`crate::session_io`]).
    SessionIo,
}

/// syslog severities (RFC 5424 numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    /// The RFC 5424 number (0..=7).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The syslog keyword (`notice`, `warning`, …), as rsyslog's `$syslogseverity-text`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Emergency => "emerg",
            Severity::Alert => "alert",
            Severity::Critical => "crit",
            Severity::Error => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }
}

impl EventType {
    /// Every event type, in documentation order.
    pub const ALL: [EventType; 11] = [
        EventType::ElevateStart,
        EventType::ElevateEnd,
        EventType::ElevateDeny,
        EventType::RequestCreate,
        EventType::RequestApprove,
        EventType::RequestDeny,
        EventType::GrantIssue,
        EventType::GrantRevoke,
        EventType::BreakGlass,
        EventType::PolicyError,
        EventType::SessionIo,
    ];

    /// `elevate.start`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ElevateStart => "elevate.start",
            EventType::ElevateEnd => "elevate.end",
            EventType::ElevateDeny => "elevate.deny",
            EventType::RequestCreate => "request.create",
            EventType::RequestApprove => "request.approve",
            EventType::RequestDeny => "request.deny",
            EventType::GrantIssue => "grant.issue",
            EventType::GrantRevoke => "grant.revoke",
            EventType::BreakGlass => "break_glass",
            EventType::PolicyError => "policy.error",
            EventType::SessionIo => "session.io",
        }
    }

    /// The event type named `name` (`elevate.start`, ...), if any.
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// start/end: Notice; deny: Warning; request.*/grant.*: Notice/Info; break_glass: Alert;
    /// policy.error: Error; session.io: Info (the bulk of a recording, not an alert).
    ///
    /// Exactly: `request.create` and `request.deny` are Info (routine workflow);
    /// `request.approve`, `grant.issue` and `grant.revoke` are Notice (they change who may
    /// elevate).
    pub fn severity(self) -> Severity {
        match self {
            EventType::ElevateStart | EventType::ElevateEnd => Severity::Notice,
            EventType::ElevateDeny => Severity::Warning,
            EventType::RequestCreate | EventType::RequestDeny | EventType::SessionIo => {
                Severity::Info
            }
            EventType::RequestApprove | EventType::GrantIssue | EventType::GrantRevoke => {
                Severity::Notice
            }
            EventType::BreakGlass => Severity::Alert,
            EventType::PolicyError => Severity::Error,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

/// An event: its type and its fields in insertion order. `Event::new` sets `event.action`,
/// `event.kind` = "event", `jitrun.schema_version`. Setting a field twice replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub fields: Vec<(String, Value)>,
}

impl Event {
    pub fn new(kind: EventType) -> Event {
        let mut e = Event {
            kind,
            fields: Vec::with_capacity(24),
        };
        e.str("event.action", kind.as_str())
            .str("event.kind", "event")
            .int("jitrun.schema_version", i64::from(SCHEMA_VERSION));
        e
    }

    /// Set `key` to `value`: replaces an existing field in place (keeping its position),
    /// else appends.
    pub fn set(&mut self, key: &str, value: Value) -> &mut Event {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((key.to_owned(), value)),
        }
        self
    }

    pub fn str(&mut self, key: &str, value: impl Into<String>) -> &mut Event {
        self.set(key, Value::Str(value.into()))
    }

    pub fn int(&mut self, key: &str, value: i64) -> &mut Event {
        self.set(key, Value::Int(value))
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Event {
        self.set(key, Value::Bool(value))
    }

    pub fn list<I, S>(&mut self, key: &str, values: I) -> &mut Event
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set(
            key,
            Value::List(values.into_iter().map(Into::into).collect()),
        )
    }

    /// argv-like bytes, escaped with [`crate::escape_bytes`].
    pub fn bytes_list<I, B>(&mut self, key: &str, values: I) -> &mut Event
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.set(
            key,
            Value::List(
                values
                    .into_iter()
                    .map(|b| crate::escape_bytes(b.as_ref()))
                    .collect(),
            ),
        )
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Remove a field; returns its value if it was set.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(i).1)
    }

    /// The nested JSON object (dotted keys become nested objects).
    ///
    /// The key order of the returned map depends on serde_json's `preserve_order` feature;
    /// [`Event::to_json_string`] always keeps insertion order.
    pub fn to_json(&self) -> serde_json::Value {
        obj_to_serde(&build_tree(&self.fields))
    }

    /// The nested JSON object as compact text, keys in insertion order (the `@cee` payload).
    /// Besides what JSON requires, DEL, C1 controls, U+2028 and U+2029 are written as
    /// `\uXXXX` so the text stays on one line for every consumer.
    pub fn to_json_string(&self) -> String {
        let mut out = String::with_capacity(256);
        write_obj(&build_tree(&self.fields), &mut out);
        out
    }
}

/// The reserved key a leaf value moves to when its name is also an object (see module doc).
pub const LEAF_CONFLICT_KEY: &str = "_value";

enum Node<'a> {
    Leaf(&'a Value),
    Obj(Vec<(&'a str, Node<'a>)>),
}

fn build_tree(fields: &[(String, Value)]) -> Vec<(&str, Node<'_>)> {
    let mut root: Vec<(&str, Node<'_>)> = Vec::new();
    for (key, value) in fields {
        insert(&mut root, key, value);
    }
    root
}

fn insert<'a>(obj: &mut Vec<(&'a str, Node<'a>)>, key: &'a str, value: &'a Value) {
    match key.split_once('.') {
        None => match obj.iter_mut().find(|(k, _)| *k == key) {
            Some((_, Node::Obj(inner))) => set_leaf(inner, LEAF_CONFLICT_KEY, value),
            Some((_, node)) => *node = Node::Leaf(value),
            None => obj.push((key, Node::Leaf(value))),
        },
        Some((head, rest)) => {
            let idx = match obj.iter().position(|(k, _)| *k == head) {
                Some(i) => i,
                None => {
                    obj.push((head, Node::Obj(Vec::new())));
                    obj.len() - 1
                }
            };
            let node = &mut obj[idx].1;
            if let Node::Leaf(v) = *node {
                *node = Node::Obj(vec![(LEAF_CONFLICT_KEY, Node::Leaf(v))]);
            }
            if let Node::Obj(inner) = node {
                insert(inner, rest, value);
            }
        }
    }
}

fn set_leaf<'a>(obj: &mut Vec<(&'a str, Node<'a>)>, key: &'a str, value: &'a Value) {
    match obj.iter_mut().find(|(k, _)| *k == key) {
        Some((_, node)) => *node = Node::Leaf(value),
        None => obj.push((key, Node::Leaf(value))),
    }
}

fn obj_to_serde(obj: &[(&str, Node<'_>)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, node) in obj {
        let v = match node {
            Node::Leaf(v) => value_to_serde(v),
            Node::Obj(inner) => obj_to_serde(inner),
        };
        map.insert((*k).to_owned(), v);
    }
    serde_json::Value::Object(map)
}

fn value_to_serde(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::List(l) => serde_json::Value::Array(
            l.iter()
                .map(|s| serde_json::Value::String(s.clone()))
                .collect(),
        ),
    }
}

fn write_obj(obj: &[(&str, Node<'_>)], out: &mut String) {
    out.push('{');
    for (i, (k, node)) in obj.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(k, out);
        out.push(':');
        match node {
            Node::Leaf(v) => write_value(v, out),
            Node::Obj(inner) => write_obj(inner, out),
        }
    }
    out.push('}');
}

pub(crate) fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Str(s) => write_json_str(s, out),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::List(l) => write_json_list(l, out),
    }
}

pub(crate) fn write_json_list(l: &[String], out: &mut String) {
    out.push('[');
    for (i, s) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(s, out);
    }
    out.push(']');
}

/// A JSON string literal; see [`Event::to_json_string`] for the extra escapes.
pub(crate) fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    write_json_content(s, |_| false, out);
    out.push('"');
}

/// `s` as JSON string content: exactly what [`write_json_char`] appends for each of its
/// characters, with the runs of characters that need no escape copied at once (a session
/// recording puts hundreds of megabytes through here). `also` may select non-ASCII
/// characters only: printable ASCII is never escaped beyond `"` and `\`.
pub fn write_json_content(s: &str, also: fn(char) -> bool, out: &mut String) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let (mut i, mut plain_from) = (0, 0);
    while i < bytes.len() {
        i += plain_ascii_prefix(&bytes[i..]);
        let (c, n) = match bytes.get(i) {
            None => break,
            Some(&b) if b < 0x80 => (char::from(b), 1),
            Some(_) => {
                let c = s[i..].chars().next().expect("i is on a character boundary");
                (c, c.len_utf8())
            }
        };
        if !is_plain(c, also) {
            out.push_str(&s[plain_from..i]);
            write_json_char(c, also, out);
            plain_from = i + n;
        }
        i += n;
    }
    out.push_str(&s[plain_from..]);
}

/// A printable ASCII byte that JSON takes as it is (not `"`, not `\`).
pub fn is_plain_ascii(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// How many bytes at the start of `bytes` are [`is_plain_ascii`]: eight at a time (text
/// output is mostly such runs), the first byte that is not found in its word by bit tricks.
pub fn plain_ascii_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `v` that is below `n` (n <= 0x80), and maybe of bytes
    // after the first such byte (a borrow), never before it: the lowest bit set is exact.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH;
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // a byte >= 0x80, below 0x20, DEL, `"` or `\`
        let special = (w & HIGH)
            | below(w, 0x20)
            | below(w ^ (ONES * 0x7f), 1)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1);
        if special != 0 {
            // little-endian: the first byte is the lowest
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + bytes[i..]
        .iter()
        .take_while(|&&b| is_plain_ascii(b))
        .count()
}

/// Whether [`write_json_char`] writes `c` as it is.
pub fn is_plain(c: char, also: fn(char) -> bool) -> bool {
    !matches!(c, '"' | '\\') && !needs_unicode_escape(c) && !also(c)
}

/// One character as JSON string content: `"` and `\` escaped, `\n`, `\r`, `\t`, `\b`, `\f`,
/// `\uXXXX` for what [`needs_unicode_escape`] or `also` selects, anything else as it is.
/// (jit-session escapes a few more characters in recordings with `also`.)
pub fn write_json_char(c: char, also: fn(char) -> bool, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0c}' => out.push_str("\\f"),
        c if needs_unicode_escape(c) || also(c) => push_u_escape(c, out),
        c => out.push(c),
    }
}

/// C0 controls, DEL, C1 controls and the Unicode line/paragraph separators.
pub fn needs_unicode_escape(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

pub(crate) fn push_u_escape(c: char, out: &mut String) {
    out.push_str(&format!("\\u{:04x}", u32::from(c)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_ascii_prefix_stops_at_the_first_byte_to_escape() {
        let naive = |b: &[u8]| b.iter().take_while(|&&x| is_plain_ascii(x)).count();
        let mut text: Vec<u8> = (0x20u8..0x7f).filter(|&b| is_plain_ascii(b)).collect();
        text.extend_from_slice(b"0123456789abcdefghij");
        for special in [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff, b'\n'] {
            for at in 0..text.len() {
                let mut t = text.clone();
                t.insert(at, special);
                for start in 0..8.min(t.len()) {
                    assert_eq!(
                        plain_ascii_prefix(&t[start..]),
                        naive(&t[start..]),
                        "{special:#x} at {at}"
                    );
                }
            }
        }
        assert_eq!(plain_ascii_prefix(&text), text.len());
        assert_eq!(plain_ascii_prefix(b""), 0);
        // Words with several bytes to escape (a borrow from one must not hide or invent
        // another): every pair of interesting bytes at every pair of places in a word.
        let bytes = [
            0u8, 1, 0x1f, 0x20, 0x21, b'"', b'#', b'[', b'\\', b']', 0x7e, 0x7f, 0x80, 0xff,
        ];
        for &x in &bytes {
            for &y in &bytes {
                for i in 0..8 {
                    for j in 0..8 {
                        let mut w = *b"abcdefghij";
                        w[i] = x;
                        w[j] = y;
                        assert_eq!(plain_ascii_prefix(&w), naive(&w), "{x:#x}@{i} {y:#x}@{j}");
                    }
                }
            }
        }
    }

    #[test]
    fn content_is_what_each_character_gives() {
        let also = |c: char| matches!(c, '\u{202e}' | '\u{feff}');
        for s in [
            "",
            "plain ascii text",
            "\"quoted\" \\ back\\slash ]\u{1b}[31m\u{0}\u{7f}\r\n\t\u{8}\u{c}",
            "caf\u{e9} \u{1F600} \u{85} \u{2028}\u{2029} \u{202e} \u{feff} e\u{301} end",
            "\u{9f}\u{a0}\u{ff}",
        ] {
            for f in [also, |_: char| false] {
                let mut fast = String::new();
                write_json_content(s, f, &mut fast);
                let mut slow = String::new();
                for c in s.chars() {
                    write_json_char(c, f, &mut slow);
                }
                assert_eq!(fast, slow, "{s:?}");
            }
        }
    }

    #[test]
    fn names_and_severities() {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "elevate.start",
                "elevate.end",
                "elevate.deny",
                "request.create",
                "request.approve",
                "request.deny",
                "grant.issue",
                "grant.revoke",
                "break_glass",
                "policy.error",
                "session.io"
            ]
        );
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(EventType::from_name("nope"), None);
        assert_eq!(EventType::ElevateStart.severity(), Severity::Notice);
        assert_eq!(EventType::ElevateEnd.severity(), Severity::Notice);
        assert_eq!(EventType::ElevateDeny.severity(), Severity::Warning);
        assert_eq!(EventType::BreakGlass.severity(), Severity::Alert);
        assert_eq!(EventType::PolicyError.severity(), Severity::Error);
        assert_eq!(EventType::RequestCreate.severity(), Severity::Info);
        assert_eq!(EventType::GrantIssue.severity(), Severity::Notice);
        assert_eq!(EventType::SessionIo.severity(), Severity::Info);
        assert_eq!(Severity::Notice.code(), 5);
    }

    #[test]
    fn new_sets_base_fields_and_set_replaces_in_place() {
        let mut e = Event::new(EventType::ElevateDeny);
        assert_eq!(
            e.get("event.action"),
            Some(&Value::Str("elevate.deny".into()))
        );
        assert_eq!(e.get("event.kind"), Some(&Value::Str("event".into())));
        assert_eq!(e.get("jitrun.schema_version"), Some(&Value::Int(1)));
        e.str("user.name", "alice").str("host.name", "h");
        e.str("user.name", "bob");
        let keys: Vec<&str> = e.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "event.action",
                "event.kind",
                "jitrun.schema_version",
                "user.name",
                "host.name"
            ]
        );
        assert_eq!(e.get("user.name"), Some(&Value::Str("bob".into())));
        assert_eq!(e.remove("host.name"), Some(Value::Str("h".into())));
        assert_eq!(e.get("host.name"), None);
    }

    #[test]
    fn nested_json() {
        let mut e = Event::new(EventType::ElevateStart);
        e.str("user.name", "alice")
            .int("user.id", 1000)
            .str("user.target.name", "root")
            .bool("jitrun.grant.break_glass", false)
            .list("process.args", ["ip", "link"]);
        let expected = json!({
            "event": {"action": "elevate.start", "kind": "event"},
            "jitrun": {"schema_version": 1, "grant": {"break_glass": false}},
            "user": {"name": "alice", "id": 1000, "target": {"name": "root"}},
            "process": {"args": ["ip", "link"]},
        });
        assert_eq!(e.to_json(), expected);
        assert_eq!(
            e.to_json_string(),
            r#"{"event":{"action":"elevate.start","kind":"event"},"jitrun":{"schema_version":1,"grant":{"break_glass":false}},"user":{"name":"alice","id":1000,"target":{"name":"root"}},"process":{"args":["ip","link"]}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&e.to_json_string()).unwrap();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn leaf_and_prefix_conflict_is_deterministic() {
        let mut a = Event::new(EventType::ElevateStart);
        a.str("jitrun.grant", "x").str("jitrun.grant.id", "g1");
        let mut b = Event::new(EventType::ElevateStart);
        b.str("jitrun.grant.id", "g1").str("jitrun.grant", "x");
        assert_eq!(
            a.to_json_string(),
            r#"{"event":{"action":"elevate.start","kind":"event"},"jitrun":{"schema_version":1,"grant":{"_value":"x","id":"g1"}}}"#
        );
        assert_eq!(
            b.to_json_string(),
            r#"{"event":{"action":"elevate.start","kind":"event"},"jitrun":{"schema_version":1,"grant":{"id":"g1","_value":"x"}}}"#
        );
        assert_eq!(a.to_json(), b.to_json());
    }

    #[test]
    fn json_escapes_controls_and_round_trips() {
        let s = "a\"b\\c\n\t\r\u{0}\u{1b}\u{7f}\u{85}\u{2028}é€😀";
        let mut out = String::new();
        write_json_str(s, &mut out);
        assert!(!out.chars().any(|c| c.is_control() || c == '\u{2028}'));
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, s);
    }
}
