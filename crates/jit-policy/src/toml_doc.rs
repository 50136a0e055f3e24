//! A TOML document as a tree that remembers where every value came from, so that
//! errors can say `file:LINE: field: message`.
//!
//! toml's own parser, [`DeTable::parse`], gives every key and every value its byte span;
//! this module turns its tree into [`Node`]s holding plain values (integers as `i64`), in
//! document order, and byte offsets into lines.

use crate::error::{Location, PolicyError};
use crate::text::{distance, quote};
use std::ops::Range;
use toml::de::{DeFloat, DeInteger, DeTable, DeValue};
use toml::Spanned;

/// Where to point a message: a byte range of the file, or nowhere (the file as a whole).
pub(crate) type Span<'e> = Option<&'e Range<usize>>;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub span: Range<usize>,
    pub value: Raw,
}

#[derive(Debug, Clone)]
pub(crate) enum Raw {
    Str(String),
    Int(i64),
    /// Floats and date-times are never valid in a policy or the settings: only their kind
    /// is kept, for the message.
    Float,
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub node: Node,
}

impl Raw {
    pub fn kind(&self) -> &'static str {
        match self {
            Raw::Str(_) => "a string",
            Raw::Int(_) => "an integer",
            Raw::Float => "a float",
            Raw::Bool(_) => "a boolean",
            Raw::Datetime => "a date-time",
            Raw::Array(_) => "an array",
            Raw::Table(_) => "a table",
        }
    }
}

// ---------------------------------------------------------------- from toml's tree

/// A value toml parsed but this crate cannot hold, with where it is.
struct Unrepresentable {
    span: Range<usize>,
    message: String,
}

fn node(value: Spanned<DeValue<'_>>) -> Result<Node, Unrepresentable> {
    let span = value.span();
    let bad = |message: String| Unrepresentable {
        span: span.clone(),
        message,
    };
    let value = match value.into_inner() {
        DeValue::String(s) => Raw::Str(s.into_owned()),
        DeValue::Integer(i) => Raw::Int(integer(&i).map_err(bad)?),
        DeValue::Float(f) => float(&f).map_err(bad)?,
        DeValue::Boolean(b) => Raw::Bool(b),
        DeValue::Datetime(_) => Raw::Datetime,
        DeValue::Array(items) => Raw::Array(items.into_iter().map(node).collect::<Result<_, _>>()?),
        DeValue::Table(t) => Raw::Table(entries(t)?),
    };
    Ok(Node { span, value })
}

fn entries(table: DeTable<'_>) -> Result<Vec<Entry>, Unrepresentable> {
    table
        .into_iter()
        .map(|(k, v)| {
            Ok(Entry {
                key_span: k.span(),
                key: k.into_inner().into_owned(),
                node: node(v)?,
            })
        })
        .collect()
}

/// An integer as `i64`. Out of range, the messages are the ones toml's serde
/// deserializer gave (this crate read documents through it before).
fn integer(i: &DeInteger<'_>) -> Result<i64, String> {
    let (digits, radix) = (i.as_str(), i.radix());
    if let Ok(v) = i64::from_str_radix(digits, radix) {
        return Ok(v);
    }
    if u64::from_str_radix(digits, radix).is_ok() {
        return Err("integer too large".to_string());
    }
    if let Ok(v) = i128::from_str_radix(digits, radix) {
        return Err(format!(
            "invalid type: integer `{v}` as i128, expected a TOML value"
        ));
    }
    if let Ok(v) = u128::from_str_radix(digits, radix) {
        return Err(format!(
            "invalid type: integer `{v}` as u128, expected a TOML value"
        ));
    }
    Err("integer number overflowed".to_string())
}

/// A float is never valid here, but one that does not fit an `f64` is reported as toml's
/// deserializer did.
fn float(f: &DeFloat<'_>) -> Result<Raw, String> {
    match f.as_str().parse::<f64>() {
        Ok(v) if !v.is_infinite() || f.as_str().contains("inf") => Ok(Raw::Float),
        _ => Err("floating-point number overflowed".to_string()),
    }
}

// ---------------------------------------------------------------- documents and errors

/// A string from an array, with the span to report for it.
pub(crate) type Located<'e> = (&'e str, &'e Range<usize>);

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
        let root =
            DeTable::parse(text).map_err(|e| doc.syntax_error(e.span().as_ref(), e.message()))?;
        let root =
            entries(root.into_inner()).map_err(|e| doc.syntax_error(Some(&e.span), &e.message))?;
        Ok((doc, root))
    }

    fn syntax_error(&self, span: Span<'_>, message: &str) -> PolicyError {
        let message = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        self.err(span, "TOML syntax", message)
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    pub fn loc(&self, span: Span<'_>) -> Location {
        Location {
            file: self.name.to_string(),
            line: span.map_or(0, |s| self.line(s.start)),
        }
    }

    pub fn err<'s>(
        &self,
        span: impl Into<Span<'s>>,
        field: &str,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::Invalid {
            at: self.loc(span.into()),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Turn a [`PolicyError::Value`] from a parser helper into a located error.
    pub fn locate<'s>(
        &self,
        e: PolicyError,
        span: impl Into<Span<'s>>,
        field: &str,
    ) -> PolicyError {
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
        let Some(e) = entries.iter().find(|e| !valid.contains(&e.key.as_str())) else {
            return Ok(());
        };
        let hint = valid
            .iter()
            .map(|v| (distance(&e.key.to_ascii_lowercase(), v), v))
            .filter(|(d, v)| *d <= 2.max(v.len() / 4))
            .min()
            .map(|(_, v)| format!(" (did you mean {}?)", quote(v)))
            .unwrap_or_default();
        Err(self.err(
            &e.key_span,
            field,
            format!(
                "unknown key {}{hint}; valid keys: {}",
                quote(&e.key),
                valid.join(", ")
            ),
        ))
    }

    /// The line to report for an entry: where its key is.
    pub fn entry_span<'e>(&self, e: &'e Entry) -> &'e Range<usize> {
        &e.key_span
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
                Raw::Str(s) => Ok((s.as_str(), &n.span)),
                other => Err(self.err(
                    &n.span,
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
        assert_eq!(doc.line(doc.entry_span(&root[0]).start), 1);
        let t = doc.table(&root[1], "t").unwrap();
        assert_eq!(doc.line(root[1].node.span.start), 3);
        assert_eq!(doc.line(doc.entry_span(&t[0]).start), 4);
        let c = doc.strings(&t[1], "c", "[]").unwrap();
        assert_eq!(c[0].0, "p");
        assert_eq!(doc.line(c[0].1.start), 6);
        assert_eq!(doc.line(c[1].1.start), 7);
        // Dotted keys make an implicit table.
        let d = doc.table(&t[2], "d").unwrap();
        assert!(matches!(d[0].node.value, Raw::Bool(true)));
        assert!(matches!(&t[3].node.value, Raw::Datetime));
        let Raw::Array(rs) = &root[2].node.value else {
            panic!()
        };
        assert_eq!(doc.line(rs[0].span.start), 11);
        assert_eq!(doc.line(rs[1].span.start), 13);
    }

    #[test]
    fn syntax_errors_carry_lines() {
        let e = Doc::parse("f.toml", "a = 1\nb = \n").err().unwrap();
        assert!(e.to_string().starts_with("f.toml:2: TOML syntax: "), "{e}");
        let e = Doc::parse("f.toml", "a = 1\n\n\na = 2\n").err().unwrap();
        assert!(e.to_string().starts_with("f.toml:4: TOML syntax: "), "{e}");
        assert!(e.to_string().contains("duplicate key"), "{e}");
    }

    #[test]
    fn numbers_out_of_range_are_syntax_errors_at_their_line() {
        let cases = [
            ("9223372036854775807", None),
            ("-9223372036854775808", None),
            ("0x7fffffffffffffff", None),
            ("9223372036854775808", Some("integer too large")),
            (
                "18446744073709551616",
                Some("invalid type: integer `18446744073709551616` as i128, expected a TOML value"),
            ),
            (
                "-9223372036854775809",
                Some("invalid type: integer `-9223372036854775809` as i128, expected a TOML value"),
            ),
            (
                "340282366920938463463374607431768211455",
                Some("invalid type: integer `340282366920938463463374607431768211455` as u128, expected a TOML value"),
            ),
            (
                "340282366920938463463374607431768211456",
                Some("integer number overflowed"),
            ),
            ("1e999", Some("floating-point number overflowed")),
            ("inf", None),
            ("-nan", None),
            ("1_000.5", None),
        ];
        for (value, want) in cases {
            let got = Doc::parse("f.toml", &format!("a = 1\nb = {value}\n"));
            match want {
                None => assert!(got.is_ok(), "{value}"),
                Some(m) => assert_eq!(
                    got.err().unwrap().to_string(),
                    format!("f.toml:2: TOML syntax: {m}"),
                    "{value}"
                ),
            }
        }
    }
}
