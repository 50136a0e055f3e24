//! Typed fields read from TOML entries, shared by the `[[rule]]`, `[[test]]` and settings
//! parsers so that the same kind of value is checked, and refused, the same way wherever
//! it is written: name lists, capability lists, command patterns, durations, one-of-a-few
//! strings. Each error names the file, the line of the value and the field.

use crate::caps::CapSet;
use crate::duration::parse_duration;
use crate::error::PolicyError;
use crate::names::valid_user_name;
use crate::pattern::CommandPattern;
use crate::text::quote;
use crate::toml_doc::{Doc, Entry, Node, Raw, Span};
use std::time::Duration;

/// One `[[rule]]` or `[[test]]` table being read: its entries, where its header is (a
/// missing key is reported there) and the label every message about it starts with
/// (`rule "net-debug"`, `test[2]`).
pub(crate) struct Section<'d, 'e> {
    pub doc: &'d Doc<'d>,
    pub entries: &'e [Entry],
    pub span: Span<'e>,
    pub label: String,
}

impl<'d, 'e> Section<'d, 'e> {
    /// The table, once its keys are all among `keys` (else the unknown one is refused,
    /// with the valid ones listed).
    pub fn checked(
        doc: &'d Doc<'d>,
        entries: &'e [Entry],
        span: Span<'e>,
        label: String,
        keys: &[&str],
    ) -> Result<Self, PolicyError> {
        doc.check_keys(entries, keys, &label)?;
        Ok(Section {
            doc,
            entries,
            span,
            label,
        })
    }

    pub fn get(&self, key: &str) -> Option<&'e Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// `label: key`, the field a message names.
    pub fn field(&self, key: &str) -> String {
        format!("{}: {key}", self.label)
    }

    /// An error about `key`, at `span`.
    pub fn err(&self, span: Span<'_>, key: &str, message: impl Into<String>) -> PolicyError {
        self.doc.err(span, &self.field(key), message)
    }

    /// An error about the value of entry `e`, at its line.
    pub fn bad(&self, e: &Entry, message: impl Into<String>) -> PolicyError {
        self.err(Some(self.doc.entry_span(e)), &e.key, message)
    }

    /// The 1-based line of a key, 0 when it is not written.
    pub fn line_of(&self, key: &str) -> usize {
        self.get(key)
            .map_or(0, |e| self.doc.line(self.doc.entry_span(e).start))
    }

    /// A string value, when the key is written.
    pub fn string(&self, key: &str) -> Result<Option<&'e str>, PolicyError> {
        self.get(key)
            .map(|e| self.doc.string(e, &self.field(key)))
            .transpose()
    }

    /// A boolean value, `default` when the key is not written.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, PolicyError> {
        match self.get(key) {
            None => Ok(default),
            Some(e) => self.doc.boolean(e, &self.field(key)),
        }
    }
}

/// User or group names (`what`: "user" or "group"), each checked with [`valid_user_name`].
pub(crate) fn names(
    doc: &Doc<'_>,
    e: &Entry,
    field: &str,
    example: &str,
    what: &str,
) -> Result<Vec<String>, PolicyError> {
    doc.strings(e, field, example)?
        .into_iter()
        .map(|(n, sp)| {
            if valid_user_name(n) {
                Ok(n.to_string())
            } else {
                Err(doc.err(sp, field, format!("invalid {what} name {}", quote(n))))
            }
        })
        .collect()
}

/// A capability list (`["CAP_NET_ADMIN", "net_raw"]`) as one set; each name is reported
/// at its own line. `ALL` is refused unless `allow_all` (a rule allows it only with
/// `run_as = "root"`).
pub(crate) fn capabilities(
    doc: &Doc<'_>,
    e: &Entry,
    field: &str,
    example: &str,
    allow_all: bool,
) -> Result<CapSet, PolicyError> {
    let mut set = CapSet::EMPTY;
    for (c, sp) in doc.strings(e, field, example)? {
        let one = CapSet::parse_list(&[c]).map_err(|err| doc.locate(err, sp, field))?;
        if c.eq_ignore_ascii_case("ALL") && !allow_all {
            return Err(doc.err(
                sp,
                field,
                "\"ALL\" (every capability: full root, for break-glass) is only allowed with run_as = \"root\"; list the capabilities the commands need instead",
            ));
        }
        set.0 |= one.0;
    }
    Ok(set)
}

/// One command pattern: a string (`"/usr/sbin/ip **"`) or an array of words (the array form,
/// for arguments with spaces). `expected` says what was expected when it is neither.
pub(crate) fn command_pattern(
    doc: &Doc<'_>,
    n: &Node,
    field: &str,
    expected: &str,
) -> Result<CommandPattern, PolicyError> {
    let parsed = match &n.value {
        Raw::Str(s) => CommandPattern::parse_str(s),
        Raw::Array(words) => {
            let words = words
                .iter()
                .map(|w| match &w.value {
                    Raw::Str(s) => Ok(s.as_str()),
                    other => Err(doc.err(
                        &w.span,
                        field,
                        format!(
                            "expected strings in a command array, found {}",
                            other.kind()
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            CommandPattern::parse_words(&words)
        }
        other => {
            return Err(doc.err(
                &n.span,
                field,
                format!("expected {expected}, found {}", other.kind()),
            ))
        }
    };
    parsed.map_err(|err| doc.locate(err, &n.span, field))
}

/// A duration written as a string (`"1h30m"`); `example` shows the form in the message
/// when the value is not a string.
pub(crate) fn duration(
    doc: &Doc<'_>,
    e: &Entry,
    field: &str,
    example: &str,
) -> Result<Duration, PolicyError> {
    let sp = doc.entry_span(e);
    match &e.node.value {
        Raw::Str(s) => parse_duration(s).map_err(|err| doc.locate(err, sp, field)),
        other => Err(doc.err(
            sp,
            field,
            format!(
                "expected a string such as {example}, found {}",
                other.kind()
            ),
        )),
    }
}

/// A string that must be one of `choices`; `expected` lists them for the message
/// (`invalid value "x": expected ...`).
pub(crate) fn choice<T: Copy>(
    doc: &Doc<'_>,
    e: &Entry,
    field: &str,
    choices: &[(&str, T)],
    expected: &str,
) -> Result<T, PolicyError> {
    let s = doc.string(e, field)?;
    match choices.iter().find(|(name, _)| *name == s) {
        Some((_, value)) => Ok(*value),
        None => Err(doc.err(
            doc.entry_span(e),
            field,
            format!("invalid value {}: expected {expected}", quote(s)),
        )),
    }
}
