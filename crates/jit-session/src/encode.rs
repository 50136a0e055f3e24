//! From the bytes a command writes to the text of asciicast lines.
//!
//! * [`Utf8Stream`]: bytes to text, one stream (output or input) at a time. A UTF-8 sequence
//!   split across two reads is carried over and decoded whole; bytes that are not UTF-8
//!   become U+FFFD, one per maximal invalid subsequence (as Rust's `from_utf8_lossy`, and as
//!   a terminal shows them), and are counted.
//! * [`escape_char`]: one character as JSON string content. Besides `"` and `\`, every
//!   character that could break a line or hide in a viewer is written `\uXXXX` (or `\n`,
//!   `\r`, `\t`, `\b`, `\f`): C0 controls (NUL and ESC included), DEL, C1 controls, U+2028,
//!   U+2029, the bidirectional controls and U+FEFF. A recording line therefore holds no
//!   control character at all, whatever the command printed.

use jit_audit::event::{needs_unicode_escape, write_json_char};
use std::borrow::Cow;

/// Bytes to text for one stream, carrying an incomplete UTF-8 sequence to the next read.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    carry: Vec<u8>,
    /// Bytes replaced by U+FFFD so far.
    pub replaced: u64,
}

impl Utf8Stream {
    /// Append the text of `bytes` to `out`; an incomplete sequence at the end waits for the
    /// next call (or [`Utf8Stream::finish`]).
    pub fn decode(&mut self, bytes: &[u8], out: &mut String) {
        if self.carry.is_empty() {
            // Most output is valid UTF-8 read whole: validated at once (the standard
            // library's word-at-a-time ASCII path), without the per-chunk walk below.
            match std::str::from_utf8(bytes) {
                Ok(text) => return out.push_str(text),
                Err(e) if e.error_len().is_none() => {
                    // Valid but for a sequence cut at the end: it waits for the next read.
                    let (valid, cut) = bytes.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).expect("valid up to here"));
                    self.carry.extend_from_slice(cut);
                    return;
                }
                Err(_) => {}
            }
        }
        let input: Cow<'_, [u8]> = if self.carry.is_empty() {
            Cow::Borrowed(bytes)
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(bytes);
            Cow::Owned(joined)
        };
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.push_str(chunk.valid());
            let bad = chunk.invalid();
            if bad.is_empty() {
                continue;
            }
            let at_end = chunks.peek().is_none();
            if at_end && incomplete(bad) {
                self.carry.extend_from_slice(bad);
            } else {
                out.push('\u{fffd}');
                self.replaced += bad.len() as u64;
            }
        }
    }

    /// The text of `bytes`, as [`Utf8Stream::decode`] gives it: borrowed from `bytes` when
    /// it is valid UTF-8 (but for a sequence cut at its end, which waits), else made in
    /// `scratch`. A recording's output is mostly such text: no copy of it is made here.
    pub fn text<'a>(&mut self, bytes: &'a [u8], scratch: &'a mut String) -> &'a str {
        if self.carry.is_empty() {
            match std::str::from_utf8(bytes) {
                Ok(text) => return text,
                Err(e) if e.error_len().is_none() => {
                    let (valid, cut) = bytes.split_at(e.valid_up_to());
                    self.carry.extend_from_slice(cut);
                    return std::str::from_utf8(valid).expect("valid up to here");
                }
                Err(_) => {}
            }
        }
        scratch.clear();
        self.decode(bytes, scratch);
        scratch
    }

    /// The end of the stream: a sequence still incomplete is invalid.
    pub fn finish(&mut self, out: &mut String) {
        if !self.carry.is_empty() {
            out.push('\u{fffd}');
            self.replaced += self.carry.len() as u64;
            self.carry.clear();
        }
    }

    /// Bytes waiting for the rest of their sequence (0 to 3).
    pub fn pending(&self) -> usize {
        self.carry.len()
    }
}

/// Is `bad` (a maximal invalid subsequence at the very end of the input) the start of a
/// valid sequence that was cut off, rather than invalid in itself?
fn incomplete(bad: &[u8]) -> bool {
    bad.len() < 4 && matches!(std::str::from_utf8(bad), Err(e) if e.error_len().is_none())
}

/// Characters written as `\uXXXX` besides the C0 controls, DEL and C1: the line and paragraph
/// separators, bidirectional controls, and the byte order mark.
fn escaped_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{2028}'
            | '\u{2029}'
            | '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Append `c` as JSON string content (jit-audit's escaping, plus [`escaped_format_char`]).
pub fn escape_char(c: char, out: &mut String) {
    write_json_char(c, escaped_format_char, out);
}

fn needs_u_escape(c: char) -> bool {
    needs_unicode_escape(c) || escaped_format_char(c)
}

/// How many bytes [`escape_char`] appends for `c`.
pub fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if needs_u_escape(c) => 6,
        c => c.len_utf8(),
    }
}

/// `s` as a JSON string literal (quotes included).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char(c, &mut out);
    }
    out.push('"');
    out
}

/// `s` as a JSON string literal of at most `max` bytes (quotes included): cut on a
/// character, never inside an escape, with `…` when cut. `max` must leave room for the
/// quotes and the ellipsis (at least 5 bytes).
pub fn json_string_capped(s: &str, max: usize) -> String {
    let full = json_string(s);
    if full.len() <= max {
        return full;
    }
    let budget = max.saturating_sub(2 + '…'.len_utf8());
    let mut out = String::with_capacity(max);
    out.push('"');
    for c in s.chars() {
        if out.len() - 1 + escaped_len(c) > budget {
            break;
        }
        escape_char(c, &mut out);
    }
    out.push('…');
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(reads: &[&[u8]]) -> (String, u64) {
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        for r in reads {
            s.decode(r, &mut out);
        }
        s.finish(&mut out);
        (out, s.replaced)
    }

    #[test]
    fn split_sequences_are_carried_over() {
        let euro = "€".as_bytes(); // e2 82 ac
        let smile = "😀".as_bytes(); // 4 bytes
        assert_eq!(
            decode_all(&[&euro[..1], &euro[1..2], &euro[2..]]),
            ("€".into(), 0)
        );
        assert_eq!(
            decode_all(&[b"a", &smile[..3], &smile[3..], b"b"]),
            ("a😀b".into(), 0)
        );
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        s.decode(&smile[..2], &mut out);
        assert_eq!((out.as_str(), s.pending()), ("", 2));
    }

    /// [`Utf8Stream::text`] read by read.
    fn text_all(reads: &[&[u8]]) -> (String, u64) {
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        let mut scratch = String::new();
        for r in reads {
            out.push_str(s.text(r, &mut scratch));
        }
        s.finish(&mut out);
        (out, s.replaced)
    }

    #[test]
    fn text_is_what_decode_gives() {
        let mut data = "h\u{e9}llo \u{20ac}\u{1f600}".as_bytes().to_vec();
        data.extend_from_slice(b"\xff\xfe\xe2\x82 x\xe2\x82\xacz\xf0");
        for i in 0..=data.len() {
            for j in i..=data.len() {
                let reads: [&[u8]; 3] = [&data[..i], &data[i..j], &data[j..]];
                assert_eq!(text_all(&reads), decode_all(&reads), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn invalid_bytes_become_one_replacement_each_maximal_run() {
        assert_eq!(decode_all(&[b"a\xffb"]), ("a\u{fffd}b".into(), 1));
        assert_eq!(
            decode_all(&[b"\xe2\x82", b"x"]),
            ("\u{fffd}x".into(), 2),
            "a cut sequence that the next read does not complete"
        );
        assert_eq!(decode_all(&[b"end\xf0\x9f"]), ("end\u{fffd}".into(), 2));
        assert_eq!(decode_all(&[b"\xc0\x80"]), ("\u{fffd}\u{fffd}".into(), 2));
        let (lossy, _) = decode_all(&[b"\xed\xa0\x80 \xf4\x90\x80\x80 ok"]);
        assert_eq!(
            lossy,
            String::from_utf8_lossy(b"\xed\xa0\x80 \xf4\x90\x80\x80 ok")
        );
    }

    #[test]
    fn every_split_point_gives_the_lossy_text() {
        let mut data = "h\u{e9}llo \u{20ac}\u{1f600}".as_bytes().to_vec();
        data.extend_from_slice(b"\xff\xfe\xe2\x82 x");
        data.extend_from_slice("\u{10ffff}".as_bytes());
        data.extend_from_slice(b"\xe2\x82\xacz\xf0");
        let whole = String::from_utf8_lossy(&data).into_owned();
        for i in 0..=data.len() {
            for j in i..=data.len() {
                let (got, _) = decode_all(&[&data[..i], &data[i..j], &data[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn escapes_leave_no_control_character() {
        let all: String = (0u32..0x300)
            .chain(0x2000..0x2070)
            .chain([0xfeff, 0x1f600])
            .filter_map(char::from_u32)
            .collect();
        let lit = json_string(&all);
        assert!(!lit
            .chars()
            .any(|c| c.is_control() || escaped_format_char(c)));
        let back: String = serde_json::from_str(&lit).unwrap();
        assert_eq!(back, all);
        for c in all.chars() {
            let mut one = String::new();
            escape_char(c, &mut one);
            assert_eq!(one.len(), escaped_len(c), "{c:?}");
        }
        assert_eq!(json_string("\u{1b}[0m\0"), r#""\u001b[0m\u0000""#);
    }

    #[test]
    fn capped_strings_stay_valid_json() {
        let s = "ab\"\u{1b}cdé€".repeat(20);
        for max in 5..80 {
            let lit = json_string_capped(&s, max);
            assert!(lit.len() <= max, "{max}: {lit}");
            let back: String = serde_json::from_str(&lit).unwrap();
            assert!(back.ends_with('…'));
        }
        assert_eq!(json_string_capped("short", 100), "\"short\"");
    }
}
