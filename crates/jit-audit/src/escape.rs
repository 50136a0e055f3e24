//! Bytes (argv, names) to text that keeps every byte: valid UTF-8 is kept as is
//! (JSON/SD escaping happens in the framing), a backslash becomes `\\`, and each byte
//! that is not part of valid UTF-8 becomes `\xNN` — so the mapping is reversible and
//! nothing is dropped.
//!
//! `NN` is two lowercase hex digits. [`unescape_bytes`] is the inverse.

/// Escape arbitrary bytes into a string; see the module documentation.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_hex_byte(&mut out, b);
        }
    }
    out
}

/// The inverse of [`escape_bytes`]: `\\` becomes a backslash, `\xNN` (hex, either case) the
/// byte `NN`, everything else is copied. `None` for a text that `escape_bytes` cannot have
/// produced (a lone backslash, or `\x` without two hex digits).
pub fn unescape_bytes(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hi = hex_val(*b.get(i + 2)?)?;
                let lo = hex_val(*b.get(i + 3)?)?;
                out.push(hi << 4 | lo);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn push_hex_byte(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_kept_backslash_doubled() {
        assert_eq!(escape_bytes(b"ls -l"), "ls -l");
        assert_eq!(escape_bytes("héllo\n\t\x7f".as_bytes()), "héllo\n\t\x7f");
        assert_eq!(escape_bytes(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn invalid_bytes_hex() {
        assert_eq!(escape_bytes(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(escape_bytes(b"a\xc3"), "a\\xc3");
        // a literal "\xff" text stays distinguishable from the byte 0xff
        assert_eq!(escape_bytes(b"\\xff"), "\\\\xff");
    }

    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        for input in [
            all.clone(),
            b"\\x41\\\\".to_vec(),
            "€ \u{80}\u{2028}".as_bytes().to_vec(),
            vec![0xe2, 0x82],
            vec![0xf0, 0x9f, 0x98, 0x80, 0xf0, 0x9f],
        ] {
            let e = escape_bytes(&input);
            assert_eq!(unescape_bytes(&e).as_deref(), Some(&input[..]), "{e:?}");
        }
    }

    #[test]
    fn unescape_rejects_malformed() {
        assert_eq!(unescape_bytes("\\"), None);
        assert_eq!(unescape_bytes("\\x4"), None);
        assert_eq!(unescape_bytes("\\xzz"), None);
        assert_eq!(unescape_bytes("\\n"), None);
    }
}
