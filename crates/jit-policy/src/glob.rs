//! Shell-style glob within ONE string (one argument, one host name):
//! `*` any run of characters (including none, including `/`), `?` one character,
//! `[abc]`, `[a-z]`, `[!abc]` / `[^abc]` classes, `\x` a literal x.
//! Works on bytes so that arguments that are not UTF-8 can still match.
//! A malformed class (no closing `]`) matches the `[` literally, as fnmatch does.
//!
//! "One character" is one UTF-8 encoded character where the bytes are valid UTF-8,
//! else one byte; so `caf?` matches `café`, and `?` also matches a lone byte 0xff.
//! Classes also accept the POSIX names `[[:alpha:]]`, `[[:digit:]]`, `[[:alnum:]]`,
//! `[[:upper:]]`, `[[:lower:]]`, `[[:space:]]`, `[[:blank:]]`, `[[:punct:]]`,
//! `[[:xdigit:]]`, `[[:cntrl:]]`, `[[:graph:]]`, `[[:print:]]` (ASCII meaning).
//! No locale, no `FNM_PATHNAME`, no `FNM_PERIOD`.
//!
//! Matching is the classic iterative algorithm with one backtrack point (the most
//! recent `*`): O(len(pattern) x len(text)) in the worst case, never exponential.

/// A unit of text: a Unicode scalar value, or `INVALID + byte` for a byte that is
/// not part of valid UTF-8.
type Unit = u32;
const INVALID: u32 = 0x11_0000;

fn units(bytes: &[u8]) -> Vec<Unit> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().map(|c| c as u32));
        out.extend(chunk.invalid().iter().map(|&b| INVALID + b as u32));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Alpha,
    Digit,
    Alnum,
    Upper,
    Lower,
    Space,
    Blank,
    Punct,
    Xdigit,
    Cntrl,
    Graph,
    Print,
}

impl Named {
    fn from_name(name: &[Unit]) -> Option<Named> {
        let s: String = name.iter().filter_map(|&u| char::from_u32(u)).collect();
        if s.chars().count() != name.len() {
            return None;
        }
        Some(match s.as_str() {
            "alpha" => Named::Alpha,
            "digit" => Named::Digit,
            "alnum" => Named::Alnum,
            "upper" => Named::Upper,
            "lower" => Named::Lower,
            "space" => Named::Space,
            "blank" => Named::Blank,
            "punct" => Named::Punct,
            "xdigit" => Named::Xdigit,
            "cntrl" => Named::Cntrl,
            "graph" => Named::Graph,
            "print" => Named::Print,
            _ => return None,
        })
    }

    fn matches(self, u: Unit) -> bool {
        let Ok(b) = u8::try_from(u) else { return false };
        if !b.is_ascii() {
            return false;
        }
        match self {
            Named::Alpha => b.is_ascii_alphabetic(),
            Named::Digit => b.is_ascii_digit(),
            Named::Alnum => b.is_ascii_alphanumeric(),
            Named::Upper => b.is_ascii_uppercase(),
            Named::Lower => b.is_ascii_lowercase(),
            Named::Space => matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
            Named::Blank => b == b' ' || b == b'\t',
            Named::Punct => b.is_ascii_punctuation(),
            Named::Xdigit => b.is_ascii_hexdigit(),
            Named::Cntrl => b.is_ascii_control(),
            Named::Graph => b.is_ascii_graphic(),
            Named::Print => b.is_ascii_graphic() || b == b' ',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Inclusive range; a single character is `Range(c, c)`.
    Range(Unit, Unit),
    Named(Named),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    items: Vec<Item>,
}

impl Class {
    fn matches(&self, u: Unit) -> bool {
        let hit = self.items.iter().any(|it| match *it {
            Item::Range(lo, hi) => lo <= u && u <= hi,
            Item::Named(n) => n.matches(u),
        });
        hit != self.negated
    }

    /// Sound (possibly incomplete) test that every unit `inner` matches, `self` matches too.
    fn covers(&self, inner: &Class) -> bool {
        if self == inner {
            return true;
        }
        if inner.negated {
            return false;
        }
        let mut budget: u32 = 1024;
        for it in &inner.items {
            match *it {
                Item::Range(lo, hi) => {
                    if hi < lo {
                        continue; // empty range
                    }
                    if hi - lo >= budget {
                        return false;
                    }
                    budget -= hi - lo + 1;
                    if !(lo..=hi).all(|u| self.matches(u)) {
                        return false;
                    }
                }
                Item::Named(n) => {
                    if !(0u32..128)
                        .filter(|&u| n.matches(u))
                        .all(|u| self.matches(u))
                    {
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Unit),
    Any,
    Class(Class),
    Star,
}

const STAR: Unit = '*' as Unit;
const QUESTION: Unit = '?' as Unit;
const OPEN: Unit = '[' as Unit;
const CLOSE: Unit = ']' as Unit;
const BACKSLASH: Unit = '\\' as Unit;
const BANG: Unit = '!' as Unit;
const CARET: Unit = '^' as Unit;
const DASH: Unit = '-' as Unit;
const COLON: Unit = ':' as Unit;

/// Parse a bracket expression whose `[` is at `start`. Returns the class and the index
/// just past its `]`, or None when it is not closed.
fn parse_class(p: &[Unit], start: usize) -> Option<(Class, usize)> {
    let mut j = start + 1;
    let mut negated = false;
    if j < p.len() && (p[j] == BANG || p[j] == CARET) {
        negated = true;
        j += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let &c = p.get(j)?;
        if c == CLOSE && !first {
            return Some((Class { negated, items }, j + 1));
        }
        first = false;
        // [:name:]
        if c == OPEN && p.get(j + 1) == Some(&COLON) {
            if let Some(end) =
                (j + 2..p.len().saturating_sub(1)).find(|&k| p[k] == COLON && p[k + 1] == CLOSE)
            {
                if let Some(named) = Named::from_name(&p[j + 2..end]) {
                    items.push(Item::Named(named));
                    j = end + 2;
                    continue;
                }
            }
        }
        // One (possibly escaped) character, possibly the start of a range.
        let (lo, next) = class_char(p, j)?;
        j = next;
        if p.get(j) == Some(&DASH) && p.get(j + 1).is_some_and(|&u| u != CLOSE) {
            let (hi, next) = class_char(p, j + 1)?;
            items.push(Item::Range(lo, hi));
            j = next;
        } else {
            items.push(Item::Range(lo, lo));
        }
    }
}

fn class_char(p: &[Unit], j: usize) -> Option<(Unit, usize)> {
    let &c = p.get(j)?;
    if c == BACKSLASH {
        let &e = p.get(j + 1)?;
        Some((e, j + 2))
    } else {
        Some((c, j + 1))
    }
}

fn compile(pattern: &[u8]) -> Vec<Tok> {
    let p = units(pattern);
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        match c {
            STAR => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
                i += 1;
            }
            QUESTION => {
                toks.push(Tok::Any);
                i += 1;
            }
            BACKSLASH => {
                // A trailing backslash stands for itself.
                let lit = p.get(i + 1).copied().unwrap_or(BACKSLASH);
                toks.push(Tok::Lit(lit));
                i += 2;
            }
            OPEN => match parse_class(&p, i) {
                Some((class, next)) => {
                    toks.push(Tok::Class(class));
                    i = next;
                }
                None => {
                    toks.push(Tok::Lit(OPEN));
                    i += 1;
                }
            },
            _ => {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    toks
}

/// The wildcard algorithm: every non-star token consumes exactly one symbol of `text`,
/// checked by `one`; a star consumes any run. On a mismatch, resume after the most
/// recent star with one more symbol consumed by it. Earlier stars never need revisiting,
/// which keeps this O(|pat| x |text|).
fn wild<T>(pat: &[Tok], text: &[T], one: impl Fn(&Tok, &T) -> bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() {
            if pat[p] == Tok::Star {
                resume = Some((p + 1, t));
                p += 1;
                continue;
            }
            if one(&pat[p], &text[t]) {
                p += 1;
                t += 1;
                continue;
            }
        }
        match resume {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                resume = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|tok| *tok == Tok::Star)
}

/// Does `pattern` match the whole of `text`? No backtracking blow-up (linear-ish algorithm).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let pat = compile(pattern);
    let text = units(text);
    wild(&pat, &text, |tok, &u| match tok {
        Tok::Lit(c) => *c == u,
        Tok::Any => true,
        Tok::Class(class) => class.matches(u),
        Tok::Star => unreachable!("stars are handled by the matcher"),
    })
}

/// True when the pattern contains any glob metacharacter (`*`, `?`, `[`).
///
/// Deliberately byte-level and conservative: an escaped `\*` still counts.
pub fn has_meta(pattern: &[u8]) -> bool {
    pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Is every string that `inner` matches also matched by `outer`?
///
/// Sound but not complete: true means certainly contained; false means not contained
/// or not provable by this check (e.g. `[ab]` vs `[a]*` is proven, exotic class
/// interplay may not be). Used for grant narrowing, where "unsure" must mean "no".
pub fn glob_within(inner: &[u8], outer: &[u8]) -> bool {
    let outer = compile(outer);
    let inner = compile(inner);
    wild(&outer, &inner, |o, s| match (o, s) {
        (_, Tok::Star) => false,
        (Tok::Any, _) => true,
        (Tok::Lit(a), Tok::Lit(b)) => a == b,
        (Tok::Lit(_), _) => false,
        (Tok::Class(c), Tok::Lit(u)) => c.matches(*u),
        (Tok::Class(c), Tok::Class(d)) => c.covers(d),
        (Tok::Class(_), Tok::Any) => false,
        (Tok::Star, _) => unreachable!("stars are handled by the matcher"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abc", "ab"));
        assert!(m("*", ""));
        assert!(m("*", "anything at all"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("*.log", "x.log"));
        assert!(!m("*.log", "x.log.1"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(!m("?", ""));
        assert!(m("**", "x"));
        assert!(m("a**b", "ab"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
    }

    #[test]
    fn star_crosses_slashes_and_dots() {
        assert!(m("/var/log/*", "/var/log/nginx/access.log"));
        assert!(m("*", "/etc/shadow"));
        assert!(m("*", ".hidden"));
        assert!(m("web-*", "web-1.example.com"));
    }

    #[test]
    fn classes() {
        assert!(m("[abc]", "b"));
        assert!(!m("[abc]", "d"));
        assert!(m("[a-z]x", "qx"));
        assert!(!m("[a-z]", "Q"));
        assert!(m("[!abc]", "d"));
        assert!(!m("[!abc]", "a"));
        assert!(m("[^abc]", "d"));
        assert!(!m("[^abc]", "c"));
        // `]` first in the class is literal, as is `-` first or last.
        assert!(m("[]]", "]"));
        assert!(m("[!]]", "a"));
        assert!(!m("[!]]", "]"));
        assert!(m("[-a]", "-"));
        assert!(m("[a-]", "-"));
        assert!(!m("[a-]", "b"));
        assert!(m("[0-9][0-9]", "42"));
        assert!(!m("[0-9][0-9]", "4x"));
        // Reversed range matches nothing.
        assert!(!m("[z-a]", "m"));
        // Escapes inside a class.
        assert!(m("[\\]]", "]"));
        assert!(m("[a\\-z]", "-"));
        assert!(!m("[a\\-z]", "m"));
        // Named classes.
        assert!(m("[[:digit:]]*", "7abc"));
        assert!(!m("[[:digit:]]*", "abc"));
        assert!(m("[[:alpha:][:digit:]_]", "_"));
        assert!(m("[![:space:]]", "x"));
        assert!(!m("[![:space:]]", " "));
        assert!(m("[[:upper:]]", "Q") && !m("[[:upper:]]", "q"));
        assert!(m("[[:xdigit:]]", "f") && !m("[[:xdigit:]]", "g"));
        // Unknown class name: `[` taken as an ordinary member.
        assert!(m("[[:bogus:]]", "b]"));
    }

    #[test]
    fn malformed_class_is_literal() {
        assert!(m("[abc", "[abc"));
        assert!(!m("[abc", "a"));
        assert!(m("a[", "a["));
        assert!(m("[", "["));
        assert!(m("[!", "[!"));
        assert!(m("*[", "xx["));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("\\?", "?"));
        assert!(!m("\\?", "a"));
        assert!(m("\\[a]", "[a]"));
        assert!(m("a\\\\b", "a\\b"));
        assert!(m("\\a", "a"));
        // Trailing backslash is literal.
        assert!(m("a\\", "a\\"));
    }

    #[test]
    fn non_utf8_bytes() {
        assert!(glob_match(b"\xff", b"\xff"));
        assert!(!glob_match(b"\xff", b"\xfe"));
        assert!(glob_match(b"?", b"\xff"));
        assert!(glob_match(b"a*z", b"a\xff\xfe\x80z"));
        assert!(glob_match(b"*", b"\xc3"));
        assert!(glob_match(b"[!a]", b"\x80"));
        assert!(!glob_match(b"??", b"\xff"));
        // A UTF-8 character is one character for `?`.
        assert!(m("caf?", "café"));
        assert!(!m("caf??", "café"));
        assert!(m("[é]", "é"));
        assert!(m("[à-ü]", "é"));
        // Invalid byte inside a pattern matches only itself.
        assert!(glob_match(b"x\xffy", b"x\xffy"));
        assert!(!glob_match(b"x\xffy", b"x\xc3\xbfy")); // U+00FF encoded is not byte 0xff
    }

    #[test]
    fn pathological_pattern_finishes_fast() {
        let text = vec![b'a'; 10_000];
        let start = std::time::Instant::now();
        assert!(!glob_match(b"*a*a*a*a*a*b", &text));
        assert!(glob_match(b"*a*a*a*a*a*", &text));
        let mut long = vec![b'*'; 0];
        for _ in 0..50 {
            long.extend_from_slice(b"*a");
        }
        long.push(b'b');
        assert!(!glob_match(&long, &text));
        // Generous bound: an exponential matcher would not finish at all.
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn meta_detection() {
        assert!(has_meta(b"*"));
        assert!(has_meta(b"a?"));
        assert!(has_meta(b"[x]"));
        assert!(has_meta(b"\\*"));
        assert!(!has_meta(b"/usr/bin/ip"));
        assert!(!has_meta(b"a]b\\c"));
    }

    #[test]
    fn containment() {
        let w = |i: &str, o: &str| glob_within(i.as_bytes(), o.as_bytes());
        assert!(w("abc", "abc"));
        assert!(w("abc", "*"));
        assert!(w("abc", "a*"));
        assert!(w("", "*"));
        assert!(!w("abc", "abd"));
        assert!(w("/var/log/nginx/*", "/var/log/*"));
        assert!(!w("/var/log/*", "/var/log/nginx/*"));
        assert!(w("a?c", "a*"));
        assert!(w("a?c", "a?c"));
        assert!(!w("a?c", "abc"));
        assert!(!w("*", "a*"));
        assert!(w("*", "*"));
        assert!(w("a*b*c", "a*c"));
        assert!(!w("a*c", "a*b*c"));
        assert!(w("[ab]", "[abc]"));
        assert!(w("[ab]", "?"));
        assert!(!w("[abc]", "[ab]"));
        assert!(!w("[!a]", "[b-z]"));
        assert!(w("b", "[a-c]"));
        assert!(!w("d", "[a-c]"));
        assert!(w("[[:digit:]]", "[0-9]"));
        assert!(w("[!x]", "[!x]"));
        assert!(w("\\*", "\\*"));
        assert!(w("\\*", "*"));
        assert!(!w("*", "\\*"));
        assert!(!w("?", "a"));
        assert!(!w("?", "[a-z]"));
    }
}
