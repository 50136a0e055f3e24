//! The sudoers grammar (sudoers(5), as sudo 1.9 parses it) over the tokens of [`super::lex`],
//! with the checks `visudo -c` makes while parsing: a file this module accepts is one visudo
//! accepts, and an error names the line and column visudo names, with its message where the
//! two agree (`syntax error`, `invalid timeout value`, `Alias "A" already defined`, ...).
//!
//! What the tree keeps is what sudo keeps: in a command list, a command without its own
//! run-as list, tags or options inherits those of the one before it (sudo's "carry forward"),
//! which is applied here, so every [`CmndSpec`] holds what applies to it.
use super::defaults::{check_setting, Op, Setting};
use super::lex::{tokens, Tok, Token};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

type Res<T> = Result<T, SyntaxError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AliasKind {
    User,
    Runas,
    Host,
    Cmnd,
}

impl AliasKind {
    pub fn keyword(self) -> &'static str {
        match self {
            AliasKind::User => "User_Alias",
            AliasKind::Runas => "Runas_Alias",
            AliasKind::Host => "Host_Alias",
            AliasKind::Cmnd => "Cmnd_Alias",
        }
    }
}

/// What a member of a user, host or run-as list is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    All,
    Alias(String),
    /// `%group`, `%:group`, `%#gid`.
    Group(String),
    /// `+netgroup`.
    NetGroup(String),
    /// An IP address or network.
    Address(String),
    /// A user or host name (or `#uid`).
    Word(String),
    /// `()` or `(:group)`: the invoking user.
    Myself,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub neg: bool,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmndKind {
    All,
    Alias(String),
    /// A path (possibly with wildcards or ending in `/`), a regular expression (`^...$`) or
    /// `sudoedit`; `args` None: any arguments; `Some("\"\"")`: none.
    Command {
        path: String,
        args: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmnd {
    pub neg: bool,
    pub digest: bool,
    pub kind: CmndKind,
}

/// Tags in force: None = not set (sudo's default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(pub HashMap<&'static str, bool>);

impl Tags {
    /// `NOPASSWD` → ("passwd", false) and so on: the tag's base name and value.
    fn set(&mut self, tag: &'static str) {
        let (base, on) = match tag.strip_prefix("NO") {
            Some(b) => (b, false),
            None => (tag, true),
        };
        let base = TAG_BASES
            .iter()
            .find(|b| **b == base)
            .copied()
            .unwrap_or("EXEC");
        self.0.insert(base, on);
    }
    pub fn get(&self, base: &str) -> Option<bool> {
        self.0.get(base).copied()
    }
}

const TAG_BASES: &[&str] = &[
    "PASSWD",
    "EXEC",
    "INTERCEPT",
    "SETENV",
    "LOG_OUTPUT",
    "LOG_INPUT",
    "MAIL",
    "FOLLOW",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runas {
    pub users: Option<Vec<Member>>,
    pub groups: Option<Vec<Member>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmndSpec {
    pub runas: Option<Runas>,
    /// Options in force (`CWD=/tmp`, `TIMEOUT=5m`, ...), as (name, value).
    pub options: Vec<(&'static str, String)>,
    pub tags: Tags,
    pub cmnd: Cmnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub hosts: Vec<Member>,
    pub cmnds: Vec<CmndSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    None,
    User(Vec<Member>),
    Runas(Vec<Member>),
    Host(Vec<Member>),
    Cmnd(Vec<Cmnd>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Include {
        dir: bool,
        path: String,
    },
    Defaults {
        binding: Binding,
        settings: Vec<Setting>,
    },
    Alias {
        kind: AliasKind,
        name: String,
        members: Vec<Member>,
        cmnds: Vec<Cmnd>,
    },
    Spec {
        users: Vec<Member>,
        privileges: Vec<Privilege>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The line the entry starts on.
    pub line: usize,
    pub body: Body,
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    aliases: HashMap<(AliasKind, String), usize>,
    /// Further aliases defined on the line just parsed (`Host_Alias A = x : B = y`).
    extra: Vec<Entry>,
}

fn err<T>(t: &Token, message: impl Into<String>) -> Res<T> {
    Err(SyntaxError {
        line: t.line,
        col: t.col,
        message: message.into(),
    })
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }
    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }
    fn eat(&mut self, tok: &Tok) -> bool {
        if !self.at_end() && &self.peek().tok == tok {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// The error for the token here: a scanner error says what it is, anything else is
    /// sudo's plain "syntax error".
    fn fail<T>(&self) -> Res<T> {
        if self.at_end() {
            let last = self.toks.last().expect("at least one token");
            return err(last, "syntax error");
        }
        let t = self.peek();
        match &t.tok {
            Tok::Error(m) => err(t, *m),
            _ => err(t, "syntax error"),
        }
    }
    fn expect(&mut self, tok: &Tok) -> Res<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            self.fail()
        }
    }
    fn end_of_entry(&mut self) -> Res<()> {
        if self.at_end() || self.eat(&Tok::Newline) {
            Ok(())
        } else {
            self.fail()
        }
    }

    fn entry(&mut self) -> Res<Option<Entry>> {
        let t = self.peek().clone();
        let line = t.line;
        let body = match &t.tok {
            Tok::Newline => {
                self.i += 1;
                return Ok(None);
            }
            Tok::Include | Tok::IncludeDir => {
                self.i += 1;
                let Tok::Word(path) = self.peek().tok.clone() else {
                    return self.fail();
                };
                self.i += 1;
                Body::Include {
                    dir: t.tok == Tok::IncludeDir,
                    path,
                }
            }
            Tok::Defaults(kind) => {
                self.i += 1;
                self.defaults(*kind)?
            }
            Tok::AliasKw(kw) => {
                self.i += 1;
                let kind = match *kw {
                    "User_Alias" => AliasKind::User,
                    "Runas_Alias" => AliasKind::Runas,
                    "Host_Alias" => AliasKind::Host,
                    _ => AliasKind::Cmnd,
                };
                return self.aliases(kind, line).map(Some);
            }
            _ => {
                let users = self.members(MemberCtx::User)?;
                let mut privileges = vec![self.privilege()?];
                while self.eat(&Tok::Colon) {
                    privileges.push(self.privilege()?);
                }
                Body::Spec { users, privileges }
            }
        };
        self.end_of_entry()?;
        Ok(Some(Entry { line, body }))
    }

    /// `Kind NAME = list [: NAME = list ...]`; several entries on one line.
    fn aliases(&mut self, kind: AliasKind, line: usize) -> Res<Entry> {
        let mut out = Vec::new();
        loop {
            let t = self.bump();
            let name = match &t.tok {
                Tok::Alias(n) => n.clone(),
                Tok::All => {
                    return err(&t, "syntax error, reserved word ALL used as an alias name")
                }
                Tok::Opt(o) => {
                    return err(
                        &t,
                        format!("syntax error, reserved word {o} used as an alias name"),
                    )
                }
                _ => {
                    self.i -= 1;
                    return self.fail();
                }
            };
            self.expect(&Tok::Eq)?;
            let (members, cmnds) = match kind {
                AliasKind::Cmnd => (Vec::new(), self.cmnd_list()?),
                AliasKind::Host => (self.members(MemberCtx::Host)?, Vec::new()),
                _ => (self.members(MemberCtx::User)?, Vec::new()),
            };
            if let Some(first) = self.aliases.get(&(kind, name.clone())) {
                let here = self.toks[self.i.saturating_sub(1)].clone();
                let _ = first;
                return err(&here, format!("Alias \"{name}\" already defined"));
            }
            self.aliases.insert((kind, name.clone()), line);
            out.push(Body::Alias {
                kind,
                name,
                members,
                cmnds,
            });
            if !self.eat(&Tok::Colon) {
                break;
            }
        }
        self.end_of_entry()?;
        // One line may define several aliases: the first is the entry, the rest follow it.
        let mut entries = out.into_iter();
        let first = entries.next().expect("one alias at least");
        self.extra.extend(entries.map(|body| Entry { line, body }));
        Ok(Entry { line, body: first })
    }

    fn defaults(&mut self, kind: Option<char>) -> Res<Body> {
        let binding = match kind {
            None => Binding::None,
            Some(':') => Binding::User(self.members(MemberCtx::User)?),
            Some('>') => Binding::Runas(self.members(MemberCtx::User)?),
            Some('@') => Binding::Host(self.members(MemberCtx::Host)?),
            _ => Binding::Cmnd(self.cmnd_list()?),
        };
        let mut settings = vec![self.setting()?];
        while self.eat(&Tok::Comma) {
            settings.push(self.setting()?);
        }
        Ok(Body::Defaults { binding, settings })
    }

    fn setting(&mut self) -> Res<Setting> {
        let neg = self.eat(&Tok::Bang);
        let t = self.bump();
        let Tok::DefVar(name) = t.tok.clone() else {
            self.i -= 1;
            return self.fail();
        };
        let op = if neg {
            Op::Flag(false)
        } else if self.eat(&Tok::Eq) {
            Op::Set
        } else if self.eat(&Tok::PlusEq) {
            Op::Add
        } else if self.eat(&Tok::MinusEq) {
            Op::Remove
        } else {
            Op::Flag(true)
        };
        let value = if matches!(op, Op::Flag(_)) {
            None
        } else {
            match self.bump().tok {
                Tok::Word(v) => Some(v),
                _ => {
                    self.i -= 1;
                    return self.fail();
                }
            }
        };
        let s = Setting { name, op, value };
        if let Err(message) = check_setting(&s) {
            let at = self.toks[self.i.saturating_sub(1)].clone();
            return err(&at, message);
        }
        Ok(s)
    }

    fn members(&mut self, ctx: MemberCtx) -> Res<Vec<Member>> {
        let mut out = vec![self.member(ctx)?];
        while self.eat(&Tok::Comma) {
            out.push(self.member(ctx)?);
        }
        Ok(out)
    }

    fn member(&mut self, ctx: MemberCtx) -> Res<Member> {
        let neg = self.eat(&Tok::Bang);
        let t = self.bump();
        let name = match (&t.tok, ctx) {
            (Tok::All, _) => Name::All,
            (Tok::Alias(a), _) => Name::Alias(a.clone()),
            (Tok::Word(w), _) => Name::Word(w.clone()),
            (Tok::NetGroup(n), MemberCtx::User | MemberCtx::Host) => Name::NetGroup(n.clone()),
            (Tok::UserGroup(g), MemberCtx::User) => Name::Group(g.clone()),
            (Tok::NtwkAddr(a), MemberCtx::Host) => Name::Address(a.clone()),
            _ => {
                self.i -= 1;
                return self.fail();
            }
        };
        Ok(Member { neg, name })
    }

    fn privilege(&mut self) -> Res<Privilege> {
        let hosts = self.members(MemberCtx::Host)?;
        self.expect(&Tok::Eq)?;
        let mut cmnds: Vec<CmndSpec> = vec![self.cmnd_spec()?];
        while self.eat(&Tok::Comma) {
            let mut next = self.cmnd_spec()?;
            carry_forward(&mut next, cmnds.last().expect("one at least"));
            cmnds.push(next);
        }
        Ok(Privilege { hosts, cmnds })
    }

    fn cmnd_spec(&mut self) -> Res<CmndSpec> {
        let runas = if self.eat(&Tok::LParen) {
            Some(self.runas()?)
        } else {
            None
        };
        let mut options: Vec<(&'static str, String)> = Vec::new();
        while let Tok::Opt(o) = self.peek().tok {
            self.i += 1;
            self.expect(&Tok::Eq)?;
            let t = self.bump();
            let Tok::Word(v) = t.tok.clone() else {
                self.i -= 1;
                return self.fail();
            };
            if let Err(m) = super::options::check(o, &v) {
                return err(&t, m);
            }
            options.retain(|(n, _)| *n != o);
            options.push((o, v));
        }
        let mut tags = Tags::default();
        while let Tok::Tag(tag) = self.peek().tok {
            self.i += 1;
            tags.set(tag);
        }
        let cmnd = self.digest_cmnd()?;
        Ok(CmndSpec {
            runas,
            options,
            tags,
            cmnd,
        })
    }

    /// `( [users] [: [groups]] )`, the `(` already read.
    fn runas(&mut self) -> Res<Runas> {
        let myself = || {
            Some(vec![Member {
                neg: false,
                name: Name::Myself,
            }])
        };
        if self.eat(&Tok::RParen) {
            return Ok(Runas {
                users: myself(),
                groups: None,
            });
        }
        let users = if self.peek().tok == Tok::Colon {
            None
        } else {
            Some(self.members(MemberCtx::User)?)
        };
        let groups = if self.eat(&Tok::Colon) {
            if self.peek().tok == Tok::RParen {
                None
            } else {
                Some(self.members(MemberCtx::Group)?)
            }
        } else {
            None
        };
        self.expect(&Tok::RParen)?;
        let users = match (&users, &groups) {
            (None, None) => myself(),
            _ => users,
        };
        Ok(Runas { users, groups })
    }

    fn cmnd_list(&mut self) -> Res<Vec<Cmnd>> {
        let mut out = vec![self.digest_cmnd()?];
        while self.eat(&Tok::Comma) {
            out.push(self.digest_cmnd()?);
        }
        Ok(out)
    }

    fn digest_cmnd(&mut self) -> Res<Cmnd> {
        let mut digest = false;
        while let Tok::Sha(_) = self.peek().tok {
            self.i += 1;
            self.expect(&Tok::Colon)?;
            match self.bump().tok {
                Tok::Digest(_) => digest = true,
                _ => {
                    self.i -= 1;
                    return self.fail();
                }
            }
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        let at = self.peek().clone();
        let mut c = self.op_cmnd()?;
        if digest {
            if !matches!(c.kind, CmndKind::Command { .. }) {
                return err(&at, "a digest requires a path name");
            }
            c.digest = true;
        }
        Ok(c)
    }

    fn op_cmnd(&mut self) -> Res<Cmnd> {
        let neg = self.eat(&Tok::Bang);
        let t = self.bump();
        let kind = match &t.tok {
            Tok::All => CmndKind::All,
            Tok::Alias(a) => CmndKind::Alias(a.clone()),
            Tok::Command { cmnd, args } => CmndKind::Command {
                path: cmnd.clone(),
                args: args.clone(),
            },
            Tok::Word(_) => return err(&t, "expected a fully-qualified path name"),
            _ => {
                self.i -= 1;
                return self.fail();
            }
        };
        Ok(Cmnd {
            neg,
            digest: false,
            kind,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberCtx {
    User,
    Host,
    Group,
}

/// sudo's rule: a command without its own run-as list, options or tags inherits the previous
/// command's (in the same command list).
fn carry_forward(cs: &mut CmndSpec, prev: &CmndSpec) {
    if cs.runas.is_none() {
        cs.runas = prev.runas.clone();
    }
    for (name, value) in &prev.options {
        if !cs.options.iter().any(|(n, _)| n == name) {
            cs.options.push((name, value.clone()));
        }
    }
    for (base, on) in &prev.tags.0 {
        // `ALL` implies SETENV for itself only; that implication is not carried.
        cs.tags.0.entry(base).or_insert(*on);
    }
}

/// Parse a sudoers text: every entry, or the first error visudo would report.
pub fn parse(text: &str) -> Res<Vec<Entry>> {
    let toks = tokens(text);
    if toks.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Parser {
        toks,
        i: 0,
        aliases: HashMap::new(),
        extra: Vec::new(),
    };
    let mut out = Vec::new();
    while !p.at_end() {
        if let Some(e) = p.entry()? {
            out.push(e);
            out.append(&mut p.extra);
        }
    }
    Ok(out)
}
