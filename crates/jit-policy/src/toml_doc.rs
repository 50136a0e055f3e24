//! A TOML document as a tree that remembers where every value came from, so that
//! errors can say `file:LINE: field: message`.
//!
//! Parsing goes through `toml::Deserializer` (serde). Spans are requested with the
//! same protocol as `toml::Spanned`, but each node accepts a value without a span
//! too (implicit tables, datetimes), which plain `toml::Spanned` does not.

use crate::error::Location;
use crate::text::{distance, quote};
use crate::PolicyError;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::ops::Range;

// The serde_spanned protocol (`toml::Spanned`): a struct with these name and fields
// asks the TOML deserializer for the span of the value.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
// How toml hands over a datetime: a map with this single key.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub span: Option<Range<usize>>,
    pub value: Raw,
}

#[derive(Debug, Clone)]
pub(crate) enum Raw {
    Str(String),
    Int(i64),
    // Floats and date-times are never valid in a policy; their values are kept only for
    // `{:?}` when debugging.
    Float(#[allow(dead_code)] f64),
    Bool(bool),
    Datetime(#[allow(dead_code)] String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Option<Range<usize>>,
    pub node: Node,
}

impl Raw {
    pub fn kind(&self) -> &'static str {
        match self {
            Raw::Str(_) => "a string",
            Raw::Int(_) => "an integer",
            Raw::Float(_) => "a float",
            Raw::Bool(_) => "a boolean",
            Raw::Datetime(_) => "a date-time",
            Raw::Array(_) => "an array",
            Raw::Table(_) => "a table",
        }
    }
}

// ---------------------------------------------------------------- deserialization

/// A field name of the spanned protocol, read without allocating (a `String` per name
/// was several allocations per TOML value, a measurable part of loading a large policy).
enum SpanField {
    Start,
    End,
    Value,
    /// Anything else; the name is kept for the error message.
    Other(String),
}

impl<'de> Deserialize<'de> for SpanField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(SpanFieldVisitor)
    }
}

struct SpanFieldVisitor;

impl Visitor<'_> for SpanFieldVisitor {
    type Value = SpanField;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a span field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<SpanField, E> {
        Ok(match v {
            SPANNED_START => SpanField::Start,
            SPANNED_END => SpanField::End,
            SPANNED_VALUE => SpanField::Value,
            other => SpanField::Other(other.to_string()),
        })
    }
}

struct SpanParts<T> {
    start: Option<usize>,
    end: Option<usize>,
    value: Option<T>,
}

/// Read the rest of a spanned-protocol map whose first key (`start`) was consumed.
fn read_spanned<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    mut map: A,
) -> Result<(Range<usize>, T), A::Error> {
    let mut parts = SpanParts::<T> {
        start: Some(map.next_value()?),
        end: None,
        value: None,
    };
    while let Some(k) = map.next_key::<SpanField>()? {
        match k {
            SpanField::Start => parts.start = Some(map.next_value()?),
            SpanField::End => parts.end = Some(map.next_value()?),
            SpanField::Value => parts.value = Some(map.next_value()?),
            SpanField::Other(other) => {
                return Err(de::Error::custom(format!("unexpected span field {other}")))
            }
        }
    }
    match parts {
        SpanParts {
            start: Some(s),
            end: Some(e),
            value: Some(v),
        } => Ok((s..e, v)),
        _ => Err(de::Error::custom("incomplete span")),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

struct NodeVisitor;

fn plain(value: Raw) -> Node {
    Node { span: None, value }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        RawVisitor.visit_bool(v).map(plain)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        RawVisitor.visit_i64(v).map(plain)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        RawVisitor.visit_u64(v).map(plain)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        RawVisitor.visit_f64(v).map(plain)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        RawVisitor.visit_str(v).map(plain)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        RawVisitor.visit_string(v).map(plain)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        RawVisitor.visit_seq(seq).map(plain)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<Key>()? else {
            return Ok(plain(Raw::Table(Vec::new())));
        };
        if first.name == SPANNED_START && first.span.is_none() {
            let (span, value) = read_spanned::<A, Raw>(map)?;
            return Ok(Node {
                span: Some(span),
                value,
            });
        }
        finish_map(first, map).map(plain)
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        match map.next_key::<Key>()? {
            None => Ok(Raw::Table(Vec::new())),
            Some(first) => finish_map(first, map),
        }
    }
}

/// A table (or a datetime) whose first key has been read.
fn finish_map<'de, A: MapAccess<'de>>(first: Key, mut map: A) -> Result<Raw, A::Error> {
    if first.name == DATETIME_FIELD && first.span.is_none() {
        let s: String = map.next_value()?;
        return Ok(Raw::Datetime(s));
    }
    let mut entries = vec![Entry {
        node: map.next_value()?,
        key: first.name,
        key_span: first.span,
    }];
    while let Some(k) = map.next_key::<Key>()? {
        entries.push(Entry {
            node: map.next_value()?,
            key: k.name,
            key_span: k.span,
        });
    }
    Ok(Raw::Table(entries))
}

/// A table key, with its span when the deserializer gives one.
struct Key {
    name: String,
    span: Option<Range<usize>>,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key {
            name: v.to_string(),
            span: None,
        })
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key {
            name: v,
            span: None,
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        match map.next_key::<SpanField>()? {
            Some(SpanField::Start) => {
                let (span, name) = read_spanned::<A, String>(map)?;
                Ok(Key {
                    name,
                    span: Some(span),
                })
            }
            _ => Err(de::Error::custom("expected a key")),
        }
    }
}

// ---------------------------------------------------------------- documents and errors

/// A string from an array, with the span to report for it.
pub(crate) type Located<'e> = (&'e str, Option<&'e Range<usize>>);

/// One file being read: its name for messages and where its lines start.
pub(crate) struct Doc<'a> {
    pub name: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Doc<'a> {
    /// Parse `text`; a syntax error becomes `file:LINE: TOML syntax: message`.
    pub fn parse(name: &'a str, text: &str) -> Result<(Doc<'a>, Vec<Entry>), PolicyError> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let doc = Doc { name, line_starts };
        let root = toml::Deserializer::parse(text)
            .and_then(Node::deserialize)
            .map_err(|e| {
                let message = e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                PolicyError::Invalid {
                    at: doc.loc(e.span().as_ref()),
                    field: "TOML syntax".to_string(),
                    message,
                }
            })?;
        match root.value {
            Raw::Table(entries) => Ok((doc, entries)),
            other => Err(PolicyError::Invalid {
                at: doc.loc(None),
                field: "TOML syntax".to_string(),
                message: format!("expected a table at the top level, found {}", other.kind()),
            }),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    pub fn loc(&self, span: Option<&Range<usize>>) -> Location {
        Location {
            file: self.name.to_string(),
            line: span.map_or(0, |s| self.line(s.start)),
        }
    }

    pub fn err(
        &self,
        span: Option<&Range<usize>>,
        field: &str,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::Invalid {
            at: self.loc(span),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Turn a [`PolicyError::Value`] from a parser helper into a located error.
    pub fn locate(&self, e: PolicyError, span: Option<&Range<usize>>, field: &str) -> PolicyError {
        match e {
            PolicyError::Value(message) => self.err(span, field, message),
            other => other,
        }
    }

    /// Refuse keys outside `valid`, naming the key and listing the valid ones.
    pub fn check_keys(
        &self,
        entries: &[Entry],
        valid: &[&str],
        field: &str,
    ) -> Result<(), PolicyError> {
        for e in entries {
            if valid.contains(&e.key.as_str()) {
                continue;
            }
            let hint = valid
                .iter()
                .map(|v| (distance(&e.key.to_ascii_lowercase(), v), v))
                .filter(|(d, v)| *d <= 2.max(v.len() / 4))
                .min()
                .map(|(_, v)| format!(" (did you mean {}?)", quote(v)))
                .unwrap_or_default();
            let span = e.key_span.as_ref().or(e.node.span.as_ref());
            return Err(self.err(
                span,
                field,
                format!(
                    "unknown key {}{hint}; valid keys: {}",
                    quote(&e.key),
                    valid.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The line to report for an entry: where its key is (else its value).
    pub fn entry_span<'e>(&self, e: &'e Entry) -> Option<&'e Range<usize>> {
        e.key_span.as_ref().or(e.node.span.as_ref())
    }

    fn type_err(&self, e: &Entry, field: &str, want: &str) -> PolicyError {
        self.err(
            self.entry_span(e),
            field,
            format!("expected {want}, found {}", e.node.value.kind()),
        )
    }

    pub fn string<'e>(&self, e: &'e Entry, field: &str) -> Result<&'e str, PolicyError> {
        match &e.node.value {
            Raw::Str(s) => Ok(s),
            _ => Err(self.type_err(e, field, "a string")),
        }
    }

    pub fn boolean(&self, e: &Entry, field: &str) -> Result<bool, PolicyError> {
        match e.node.value {
            Raw::Bool(b) => Ok(b),
            _ => Err(self.type_err(e, field, "true or false")),
        }
    }

    pub fn integer(&self, e: &Entry, field: &str) -> Result<i64, PolicyError> {
        match e.node.value {
            Raw::Int(i) => Ok(i),
            _ => Err(self.type_err(e, field, "an integer")),
        }
    }

    /// An array of strings, each with the span to report for it.
    pub fn strings<'e>(
        &self,
        e: &'e Entry,
        field: &str,
        example: &str,
    ) -> Result<Vec<Located<'e>>, PolicyError> {
        let Raw::Array(items) = &e.node.value else {
            return Err(self.err(
                self.entry_span(e),
                field,
                format!(
                    "expected an array of strings such as {example}, found {}",
                    e.node.value.kind()
                ),
            ));
        };
        items
            .iter()
            .map(|n| match &n.value {
                Raw::Str(s) => Ok((s.as_str(), n.span.as_ref().or(self.entry_span(e)))),
                other => Err(self.err(
                    n.span.as_ref().or(self.entry_span(e)),
                    field,
                    format!(
                        "expected an array of strings such as {example}, found {} in it",
                        other.kind()
                    ),
                )),
            })
            .collect()
    }

    /// A table-valued entry's entries.
    pub fn table<'e>(&self, e: &'e Entry, field: &str) -> Result<&'e [Entry], PolicyError> {
        match &e.node.value {
            Raw::Table(t) => Ok(t),
            _ => Err(self.type_err(e, field, "a table")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Doc<'static>, Vec<Entry>) {
        Doc::parse("t.toml", text).unwrap()
    }

    #[test]
    fn spans_become_lines() {
        let text = "a = 1\n\n[t]\nb = \"x\"\nc = [\n  \"p\",\n  \"q\",\n]\nd.e = true\nf = 1979-05-27T07:32:00Z\n[[r]]\ng = 1\n[[r]]\ng = 2\n";
        let (doc, root) = parse(text);
        assert_eq!(root[0].key, "a");
        assert_eq!(doc.line(doc.entry_span(&root[0]).unwrap().start), 1);
        let t = doc.table(&root[1], "t").unwrap();
        assert_eq!(doc.line(root[1].node.span.as_ref().unwrap().start), 3);
        assert_eq!(doc.line(doc.entry_span(&t[0]).unwrap().start), 4);
        let c = doc.strings(&t[1], "c", "[]").unwrap();
        assert_eq!(c[0].0, "p");
        assert_eq!(doc.line(c[0].1.unwrap().start), 6);
        assert_eq!(doc.line(c[1].1.unwrap().start), 7);
        // Dotted keys make an implicit table.
        let d = doc.table(&t[2], "d").unwrap();
        assert!(matches!(d[0].node.value, Raw::Bool(true)));
        assert!(matches!(&t[3].node.value, Raw::Datetime(s) if s == "1979-05-27T07:32:00Z"));
        let Raw::Array(rs) = &root[2].node.value else {
            panic!()
        };
        assert_eq!(doc.line(rs[0].span.as_ref().unwrap().start), 11);
        assert_eq!(doc.line(rs[1].span.as_ref().unwrap().start), 13);
    }

    #[test]
    fn syntax_errors_carry_lines() {
        let e = Doc::parse("f.toml", "a = 1\nb = \n").err().unwrap();
        assert!(e.to_string().starts_with("f.toml:2: TOML syntax: "), "{e}");
        let e = Doc::parse("f.toml", "a = 1\n\n\na = 2\n").err().unwrap();
        assert!(e.to_string().starts_with("f.toml:4: TOML syntax: "), "{e}");
        assert!(e.to_string().contains("duplicate key"), "{e}");
    }
}
