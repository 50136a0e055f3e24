//! A sudoers(5) reader for the forms `import-sudoers` converts, and enough of the rest to
//! recognise (and report) what it does not: logical lines (`\` continuations), comments,
//! `#include`/`@include`/`#includedir`/`@includedir`, `Defaults` (with bindings), the four
//! alias kinds, and user specifications with host parts, run-as lists, tags, options,
//! digests and negations.

/// One logical line: its first physical line, and its text with continuations joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// Join `\`-continued lines and drop comments and blank lines.
pub fn logical_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut current: Option<Line> = None;
    for (i, raw) in text.lines().enumerate() {
        let stripped = strip_comment(raw);
        let (body, continued) = match stripped.strip_suffix('\\') {
            Some(b) if !b.ends_with('\\') => (b.to_string(), true),
            _ => (stripped.to_string(), false),
        };
        let line = current.get_or_insert(Line {
            number: i + 1,
            text: String::new(),
        });
        if !line.text.is_empty() {
            line.text.push(' ');
        }
        line.text.push_str(body.trim());
        if !continued {
            let l = current.take().expect("set above");
            if !l.text.trim().is_empty() {
                out.push(l);
            }
        }
    }
    if let Some(l) = current {
        if !l.text.trim().is_empty() {
            out.push(l);
        }
    }
    out
}

/// A `#` starts a comment unless it is escaped, inside quotes, part of `#include`/
/// `#includedir` at the start of a line, or a `#uid`/`%#gid` (followed by a digit).
fn strip_comment(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("#include") {
        return line.trim_end();
    }
    let bytes = line.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => quoted = !quoted,
            b'#' if !quoted => {
                let next_digit = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                if !next_digit {
                    return line[..i].trim_end();
                }
            }
            _ => {}
        }
        i += 1;
    }
    line.trim_end()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A word with escapes resolved; `quoted` when it came from `"..."`.
    Word(String),
    Comma,
    Colon,
    Eq,
    Bang,
    /// `( ... )`: the raw inside of a run-as list.
    Paren(String),
    /// `sha224:...` and the like.
    Digest(String),
}

const DIGESTS: &[&str] = &["sha224", "sha256", "sha384", "sha512"];

/// Split a logical line into tokens. Whitespace separates words; `,` `:` `=` `!` `(`
/// are tokens of their own unless escaped with `\`; `"..."` is one word (kept with its
/// quotes when it is `""`, the "no arguments" marker).
pub fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1
            }
            '!' => {
                out.push(Tok::Bang);
                i += 1
            }
            '(' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ')')
                    .ok_or("a '(' without its ')'")?;
                out.push(Tok::Paren(chars[i + 1..i + end].iter().collect()));
                i += end + 1;
            }
            _ => {
                let mut w = String::new();
                let mut quoted = false;
                while i < chars.len() {
                    let c = chars[i];
                    if c == '"' {
                        quoted = !quoted;
                        w.push(c);
                        i += 1;
                        continue;
                    }
                    if !quoted && (c.is_whitespace() || ",:=!()".contains(c)) {
                        break;
                    }
                    if c == '\\' && i + 1 < chars.len() {
                        let n = chars[i + 1];
                        // Escaped specials lose their backslash; other escapes (globs such
                        // as \* in arguments) keep it for the pattern.
                        if ",:=!()\\\" #".contains(n) && n != '\\' {
                            w.push(n);
                        } else {
                            w.push('\\');
                            w.push(n);
                        }
                        i += 2;
                        continue;
                    }
                    w.push(c);
                    i += 1;
                }
                if quoted {
                    return Err("a '\"' without its closing '\"'".into());
                }
                if DIGESTS.contains(&w.as_str()) && chars.get(i) == Some(&':') {
                    i += 1;
                    let start = i;
                    while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ',' {
                        i += 1;
                    }
                    let v: String = chars[start..i].iter().collect();
                    out.push(Tok::Digest(format!("{w}:{v}")));
                } else {
                    out.push(Tok::Word(w));
                }
            }
        }
    }
    Ok(out)
}

/// A member of a user, host or run-as list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub neg: bool,
    pub name: String,
}

/// One command of a command list (or a Cmnd_Alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmnd {
    pub neg: bool,
    pub digest: Option<String>,
    /// Program (or `ALL`, an alias name, `sudoedit`, a directory, a regex) and arguments
    /// as written; `args` None when none are given (sudo: any arguments).
    pub program: String,
    pub args: Option<Vec<String>>,
}

/// A command with what applies to it in a user specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmndSpec {
    /// The `( ... )` list in force, if any.
    pub runas: Option<String>,
    /// Tags in force (`NOPASSWD`, `NOEXEC`, ...).
    pub tags: Vec<String>,
    /// Options in front of the command (`CWD=/x`, `TIMEOUT=5m`, ...).
    pub options: Vec<String>,
    pub cmnd: Cmnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPart {
    pub hosts: Vec<Member>,
    pub cmnds: Vec<CmndSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasKind {
    User,
    Runas,
    Host,
    Cmnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Include {
        directive: String,
        path: String,
    },
    Defaults {
        /// `:user`, `@host`, `!cmnd`, `>runas` binding with its sigil, if any.
        binding: Option<String>,
        /// `name`, `!name`, `name=value`, `name+=value`, `name-=value`, unparsed.
        settings: Vec<String>,
    },
    Alias {
        kind: AliasKind,
        name: String,
        members: Vec<Member>,
        cmnds: Vec<Cmnd>,
    },
    Spec {
        users: Vec<Member>,
        parts: Vec<HostPart>,
    },
}

const TAGS: &[&str] = &[
    "NOPASSWD",
    "PASSWD",
    "NOEXEC",
    "EXEC",
    "SETENV",
    "NOSETENV",
    "LOG_INPUT",
    "NOLOG_INPUT",
    "LOG_OUTPUT",
    "NOLOG_OUTPUT",
    "MAIL",
    "NOMAIL",
    "FOLLOW",
    "NOFOLLOW",
    "INTERCEPT",
    "NOINTERCEPT",
];
const OPTIONS: &[&str] = &[
    "CWD",
    "CHROOT",
    "TIMEOUT",
    "NOTBEFORE",
    "NOTAFTER",
    "ROLE",
    "TYPE",
    "APPARMOR_PROFILE",
    "PRIVS",
    "LIMITPRIVS",
];

struct P {
    toks: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn peek2(&self) -> Option<&Tok> {
        self.toks.get(self.i + 1)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn expect_eq(&mut self, what: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Eq) => Ok(()),
            _ => Err(format!("expected '=' after {what}")),
        }
    }
    /// `[!]name, [!]name, ...` ending at anything but a comma after a member.
    fn members(&mut self, what: &str) -> Result<Vec<Member>, String> {
        let mut out = Vec::new();
        loop {
            let mut neg = false;
            while self.peek() == Some(&Tok::Bang) {
                neg = !neg;
                self.i += 1;
            }
            match self.next() {
                Some(Tok::Word(w)) => out.push(Member { neg, name: w }),
                _ => return Err(format!("expected a {what} name")),
            }
            if self.peek() == Some(&Tok::Comma) {
                self.i += 1;
            } else {
                return Ok(out);
            }
        }
    }
    /// One command: `[!] [digest] program [args...]`, ending at `,` `:` or the end.
    fn cmnd(&mut self) -> Result<Cmnd, String> {
        let mut neg = false;
        while self.peek() == Some(&Tok::Bang) {
            neg = !neg;
            self.i += 1;
        }
        let mut digest = None;
        while let Some(Tok::Digest(d)) = self.peek() {
            digest = Some(d.clone());
            self.i += 1;
            if self.peek() == Some(&Tok::Comma) {
                // sha224:a, sha256:b /path: several digests.
                self.i += 1;
            }
        }
        let program = match self.next() {
            Some(Tok::Word(w)) => w,
            _ => return Err("expected a command".into()),
        };
        let mut words = Vec::new();
        while let Some(Tok::Word(w)) = self.peek() {
            words.push(w.clone());
            self.i += 1;
        }
        let args = if words.is_empty() {
            None
        } else if words.len() == 1 && words[0] == "\"\"" {
            Some(Vec::new())
        } else {
            Some(words)
        };
        Ok(Cmnd {
            neg,
            digest,
            program,
            args,
        })
    }
    /// The command list of one host part, up to a `:` that starts the next host part.
    fn cmnd_specs(&mut self) -> Result<Vec<CmndSpec>, String> {
        let mut out = Vec::new();
        let mut runas: Option<String> = None;
        let mut tags: Vec<String> = Vec::new();
        loop {
            if let Some(Tok::Paren(r)) = self.peek() {
                runas = Some(r.clone());
                self.i += 1;
            }
            let mut options = Vec::new();
            loop {
                match (self.peek(), self.peek2()) {
                    (Some(Tok::Word(w)), Some(Tok::Eq)) if OPTIONS.contains(&w.as_str()) => {
                        let name = w.clone();
                        self.i += 2;
                        let value = match self.next() {
                            Some(Tok::Word(v)) => v,
                            _ => return Err(format!("expected a value after {name}=")),
                        };
                        options.push(format!("{name}={value}"));
                    }
                    (Some(Tok::Word(w)), Some(Tok::Colon)) if TAGS.contains(&w.as_str()) => {
                        let t = w.clone();
                        // A tag replaces its opposite (NOPASSWD / PASSWD, ...).
                        let base = t.strip_prefix("NO").unwrap_or(&t).to_string();
                        tags.retain(|x| x.strip_prefix("NO").unwrap_or(x) != base);
                        tags.push(t);
                        self.i += 2;
                    }
                    _ => break,
                }
            }
            let cmnd = self.cmnd()?;
            out.push(CmndSpec {
                runas: runas.clone(),
                tags: tags.clone(),
                options,
                cmnd,
            });
            match self.peek() {
                Some(Tok::Comma) => self.i += 1,
                Some(Tok::Colon) | None => return Ok(out),
                Some(t) => return Err(format!("unexpected {t:?} after a command")),
            }
        }
    }
}

fn is_alias_kind(w: &str) -> Option<AliasKind> {
    match w {
        "User_Alias" => Some(AliasKind::User),
        "Runas_Alias" => Some(AliasKind::Runas),
        "Host_Alias" => Some(AliasKind::Host),
        "Cmnd_Alias" | "Cmd_Alias" => Some(AliasKind::Cmnd),
        _ => None,
    }
}

/// Parse one logical line into entries (an alias line can define several aliases).
pub fn parse_line(text: &str) -> Result<Vec<Entry>, String> {
    let t = text.trim();
    for d in ["#includedir", "@includedir", "#include", "@include"] {
        if let Some(rest) = t.strip_prefix(d) {
            if rest.starts_with(char::is_whitespace) {
                return Ok(vec![Entry::Include {
                    directive: d.to_string(),
                    path: rest.trim().to_string(),
                }]);
            }
        }
    }
    if let Some(rest) = t.strip_prefix("Defaults") {
        let (binding, body) = match rest.chars().next() {
            Some(c) if ":@!>".contains(c) => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (Some(rest[..end].to_string()), &rest[end..])
            }
            Some(c) if c.is_whitespace() => (None, rest),
            None => (None, rest),
            Some(_) => return parse_spec(t),
        };
        return Ok(vec![Entry::Defaults {
            binding,
            settings: split_defaults(body),
        }]);
    }
    let first = t.split_whitespace().next().unwrap_or("");
    if let Some(kind) = is_alias_kind(first) {
        let mut p = P {
            toks: tokens(&t[first.len()..])?,
            i: 0,
        };
        let mut out = Vec::new();
        loop {
            let name = match p.next() {
                Some(Tok::Word(w)) => w,
                _ => return Err(format!("expected an alias name after {first}")),
            };
            p.expect_eq(&format!("alias {name}"))?;
            let (members, cmnds) = if kind == AliasKind::Cmnd {
                let mut cmnds = vec![p.cmnd()?];
                while p.peek() == Some(&Tok::Comma) {
                    p.i += 1;
                    cmnds.push(p.cmnd()?);
                }
                (Vec::new(), cmnds)
            } else {
                (p.members("member")?, Vec::new())
            };
            out.push(Entry::Alias {
                kind: kind.clone(),
                name,
                members,
                cmnds,
            });
            match p.next() {
                None => return Ok(out),
                Some(Tok::Colon) => continue,
                Some(t) => return Err(format!("unexpected {t:?} in {first}")),
            }
        }
    }
    parse_spec(t)
}

fn parse_spec(t: &str) -> Result<Vec<Entry>, String> {
    let mut p = P {
        toks: tokens(t)?,
        i: 0,
    };
    let users = p.members("user")?;
    let mut parts = Vec::new();
    loop {
        let hosts = p.members("host")?;
        p.expect_eq("the host list")?;
        let cmnds = p.cmnd_specs()?;
        parts.push(HostPart { hosts, cmnds });
        match p.next() {
            None => break,
            Some(Tok::Colon) => continue,
            Some(t) => return Err(format!("unexpected {t:?}")),
        }
    }
    Ok(vec![Entry::Spec { users, parts }])
}

/// `a, b="x y", c+="z"` → settings, splitting on commas outside quotes.
fn split_defaults(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' => {
                esc = true;
                cur.push(c)
            }
            '"' => {
                quoted = !quoted;
                cur.push(c)
            }
            ',' if !quoted => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_continuations() {
        let text = "# comment\nDefaults env_reset # trailing\n\nCmnd_Alias A = /bin/a, \\\n   /bin/b\n#include /etc/x\nalice ALL = (#0) /bin/id\n";
        let l = logical_lines(text);
        assert_eq!(
            l,
            [
                Line {
                    number: 2,
                    text: "Defaults env_reset".into()
                },
                Line {
                    number: 4,
                    text: "Cmnd_Alias A = /bin/a, /bin/b".into()
                },
                Line {
                    number: 6,
                    text: "#include /etc/x".into()
                },
                Line {
                    number: 7,
                    text: "alice ALL = (#0) /bin/id".into()
                },
            ]
        );
    }

    #[test]
    fn specs_with_host_parts_runas_tags_and_options() {
        let e = parse_line("bob SPARC = (OP) ALL : SGI = (OP) NOPASSWD: /bin/x a\\,b, !/bin/y \"\", CWD=/tmp /bin/z").unwrap();
        let Entry::Spec { users, parts } = &e[0] else {
            panic!()
        };
        assert_eq!(users[0].name, "bob");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].hosts[0].name, "SPARC");
        assert_eq!(parts[0].cmnds[0].runas.as_deref(), Some("OP"));
        assert_eq!(parts[0].cmnds[0].cmnd.program, "ALL");
        let c = &parts[1].cmnds;
        assert_eq!(c[0].tags, ["NOPASSWD"]);
        assert_eq!(c[0].cmnd.args.as_deref(), Some(&["a,b".to_string()][..]));
        assert!(c[1].cmnd.neg);
        assert_eq!(c[1].cmnd.args.as_deref(), Some(&[][..]));
        assert_eq!(c[1].tags, ["NOPASSWD"], "tags carry over");
        assert_eq!(c[2].options, ["CWD=/tmp"]);
        assert_eq!(c[2].runas.as_deref(), Some("OP"));
    }

    #[test]
    fn aliases_defaults_includes_digests() {
        let e = parse_line("Host_Alias SPARC = bigtime, eclipse : SGI = grolsch").unwrap();
        assert_eq!(e.len(), 2);
        let e = parse_line("Cmnd_Alias DUMPS = /usr/sbin/dump, sha224:0Gom+N== /home/op/bin/x")
            .unwrap();
        let Entry::Alias { cmnds, .. } = &e[0] else {
            panic!()
        };
        assert_eq!(cmnds[1].digest.as_deref(), Some("sha224:0Gom+N=="));
        assert_eq!(cmnds[1].program, "/home/op/bin/x");
        let e = parse_line("Defaults:%sudo env_keep += \"A B\", !lecture").unwrap();
        assert_eq!(
            e[0],
            Entry::Defaults {
                binding: Some(":%sudo".into()),
                settings: vec!["env_keep += \"A B\"".into(), "!lecture".into()]
            }
        );
        let e = parse_line("@includedir /etc/sudoers.d").unwrap();
        assert_eq!(
            e[0],
            Entry::Include {
                directive: "@includedir".into(),
                path: "/etc/sudoers.d".into()
            }
        );
        assert!(parse_line("alice ALL").is_err());
    }
}
