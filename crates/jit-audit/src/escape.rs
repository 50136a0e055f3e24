//! Bytes (argv, names) to text that keeps every byte: valid UTF-8 is kept as is
//! (JSON/SD escaping happens in the framing), a backslash becomes `\\`, and each byte
//! that is not part of valid UTF-8 becomes `\xNN` — so the mapping is reversible and
//! nothing is dropped.

pub fn escape_bytes(bytes: &[u8]) -> String { todo!() }
