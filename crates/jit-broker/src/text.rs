//! Free text people write (reasons, tickets, comments): what the broker accepts, and how it
//! shows it in chat messages. Invisible formatting characters are refused — bidirectional
//! overrides and isolates can make a reason read differently from what it says ("Trojan
//! Source"), zero-width ones hide text — and text quoted into a chat line is escaped so that
//! it cannot start a line of its own or add markup.
use crate::error::ApiError;
use jit_grant::CmdClaim;

/// Characters refused in free text and command patterns: U+061C, U+200B–U+200F, U+202A–U+202E,
/// U+2060–U+2064, U+2066–U+2069, U+FEFF.
pub fn invisible(c: char) -> bool {
    matches!(c,
        '\u{061c}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

fn refuse_invisible(field: &str, value: &str) -> Result<(), ApiError> {
    match value.chars().find(|&c| invisible(c)) {
        Some(c) => Err(ApiError::bad(
            "invalid_body",
            format!(
                "{field} contains the invisible formatting character U+{:04X} (bidirectional overrides and zero-width characters can make text read differently from what it says); remove it",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

/// A reason, ticket or comment: not blank, at most `max` characters, no control characters
/// but newline and tab, nothing invisible.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad(
            "invalid_body",
            format!("{field} is empty; say why"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::bad(
            "invalid_body",
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad(
            "invalid_body",
            format!("{field} contains control characters"),
        ));
    }
    refuse_invisible(field, value)
}

/// A requested command narrowing: nothing invisible in any word.
pub fn check_cmd(cmd: &CmdClaim) -> Result<(), ApiError> {
    match cmd {
        CmdClaim::One(s) => refuse_invisible("cmd", s),
        CmdClaim::Many(words) => words.iter().try_for_each(|w| refuse_invisible("cmd", w)),
    }
}

/// `text` as one quoted token for a chat line (Slack mrkdwn and plain text): in double
/// quotes; `"` and `\` backslashed; newlines, tabs, other control, line-separator and
/// invisible characters as `\n`, `\t`, `\u{…}`; `&`, `<`, `>` as the entities Slack
/// requires (so no mention, link or formatting can be injected).
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() || invisible(c) || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_user_text_on_its_line_and_inert() {
        assert_eq!(quoted("disk full"), "\"disk full\"");
        assert_eq!(
            quoted("x\nbob approved request 01J (2/2)"),
            "\"x\\nbob approved request 01J (2/2)\""
        );
        assert_eq!(
            quoted("<!channel> *urgent* \"q\" a\\b"),
            "\"&lt;!channel&gt; *urgent* \\\"q\\\" a\\\\b\""
        );
        assert_eq!(quoted("a\u{202e}b\u{2028}"), "\"a\\u{202e}b\\u{2028}\"");
    }

    #[test]
    fn invisible_characters_are_refused() {
        for c in [
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}', '\u{200d}', '\u{feff}',
        ] {
            let e = check_text("reason", &format!("ok{c}ok"), 100).unwrap_err();
            assert_eq!(e.code, "invalid_body");
            assert!(
                e.message.contains(&format!("U+{:04X}", c as u32)),
                "{}",
                e.message
            );
        }
        check_text("reason", "ünïcode, emoji 🙂, tab\tand\nnewline", 100).unwrap();
        assert!(check_cmd(&CmdClaim::Many(vec!["/bin/ls".into(), "a\u{2067}".into()])).is_err());
    }
}
