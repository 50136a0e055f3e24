//! The sudoers tokenizer. sudo reads sudoers with a flex scanner: in each state, of the rules
//! that apply, the one with the longest match wins (the first listed on a tie). This module
//! works the same way, over the token shapes of sudoers(5) as sudo 1.9 reads them, so that a
//! file tokenizes here as it does for `visudo -c`.
use regex_lite::Regex;
use std::sync::OnceLock;

/// Scanner states (flex start conditions). `Initial`, `GotDefs`, `WantDigest` and
/// `ExpectPath` are inclusive: rules without a state list apply in them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Initial,
    GotDefs,
    GotCmnd,
    GotRegex,
    StartDefs,
    InDefs,
    InStr,
    WantDigest,
    GotInc,
    ExpectPath,
}

impl State {
    fn inclusive(self) -> bool {
        matches!(
            self,
            State::Initial | State::GotDefs | State::WantDigest | State::ExpectPath
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Word(String),
    Alias(String),
    All,
    UserGroup(String),
    NetGroup(String),
    NtwkAddr(String),
    /// A command path (or regular expression, or `sudoedit`) and its argument string.
    Command {
        cmnd: String,
        args: Option<String>,
    },
    DefVar(String),
    Digest(String),
    Sha(&'static str),
    /// `Defaults`, `Defaults:` (user), `Defaults>` (run-as), `Defaults@` (host), `Defaults!`.
    Defaults(Option<char>),
    AliasKw(&'static str),
    Include,
    IncludeDir,
    /// `NOPASSWD:` and the other tags, by name.
    Tag(&'static str),
    /// `TIMEOUT`, `NOTBEFORE`, `NOTAFTER`, `CWD`, `CHROOT`, `ROLE`, `TYPE`.
    Opt(&'static str),
    Comma,
    Colon,
    Eq,
    PlusEq,
    MinusEq,
    Bang,
    LParen,
    RParen,
    Newline,
    /// A scanner error, with sudo's message.
    Error(&'static str),
    NoMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    /// 1-based line and column of the token's first character.
    pub line: usize,
    pub col: usize,
    /// The token's text as written (for messages).
    pub text: String,
}

const WORD: &str = r#"(?:[^#>!=:,() \t\r\n\\"]|\\[^\t\n])+"#;
const ID: &str = r"#-?[0-9]+";
const PATH: &str = r"/(?:\\[,:= \t#]|[^,:=\\ \t\r\n#])+";
const REGEX: &str = r"\^(?:[^#\r\n$]|\\[#$])*\$";
const ENVAR: &str = r#"(?:[^#!=, \t\r\n\\"]|\\[^\r\n])(?:[^#=, \t\r\n\\"]|\\[^\r\n])*"#;
const OCTET: &str = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[0-9]{1,2})";
const HEX16: &str = r"[0-9A-Fa-f]{1,4}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    DefsComma,
    DefsBlank,
    DefVar,
    InDefsComma,
    InDefsEq,
    PlusEq,
    MinusEq,
    StrStart,
    DefsWord,
    StrContinue,
    StrEnd,
    StrBackslash,
    StrBody,
    CmndGlobEscape,
    CmndEscape,
    CmndEnd,
    CmndArg,
    RegexEscape,
    RegexBad,
    RegexEnd,
    RegexBody,
    DigestHex,
    DigestB64,
    AtInclude,
    AtIncludeDir,
    HashInclude,
    HashIncludeDir,
    Defaults,
    AliasKw,
    Tag,
    EmptyGroup,
    NetGroup,
    UserGroup,
    Ip4,
    Ip6,
    All,
    Opt,
    Alias,
    DefsCommand,
    Sha,
    Sudoedit,
    ExpectPathWord,
    Path,
    Regex,
    Word,
    IncWord,
    IncStr,
    Punct,
    Bangs,
    Newline,
    Blank,
    Continuation,
    Comment,
    Any,
}

struct Rule {
    /// The states it applies in; empty: every inclusive state.
    states: &'static [State],
    /// Every state (flex's `<*>`).
    all_states: bool,
    /// Only at the beginning of a line (flex's `^`).
    bol: bool,
    res: Vec<Regex>,
    act: Act,
}

fn rule(states: &'static [State], bol: bool, pats: &[String], act: Act) -> Rule {
    Rule {
        states,
        all_states: false,
        bol,
        res: pats
            .iter()
            .map(|p| Regex::new(&format!("^(?:{p})")).expect("a valid token pattern"))
            .collect(),
        act,
    }
}

fn s(p: &str) -> String {
    p.to_string()
}

const TAGS: &[&str] = &[
    "NOPASSWD",
    "PASSWD",
    "NOEXEC",
    "EXEC",
    "INTERCEPT",
    "NOINTERCEPT",
    "SETENV",
    "NOSETENV",
    "LOG_OUTPUT",
    "NOLOG_OUTPUT",
    "LOG_INPUT",
    "NOLOG_INPUT",
    "MAIL",
    "NOMAIL",
    "FOLLOW",
    "NOFOLLOW",
];

/// Command options Debian's sudo knows (it is built with SELinux, without AppArmor and
/// Solaris privileges: `APPARMOR_PROFILE`, `PRIVS` and `LIMITPRIVS` are plain alias names).
pub const OPTIONS: &[&str] = &[
    "TIMEOUT",
    "NOTBEFORE",
    "NOTAFTER",
    "CWD",
    "CHROOT",
    "ROLE",
    "TYPE",
];

fn rules() -> &'static [Rule] {
    static R: OnceLock<Vec<Rule>> = OnceLock::new();
    R.get_or_init(|| {
        use State::*;
        let ipv4 = format!(r"{OCTET}(?:\.{OCTET}){{3}}");
        let ipv6 = [
            format!(r"(?:(?:{HEX16})?:){{2,6}}:{ipv4}"),
            format!(r"(?:(?:{HEX16})?:){{2,7}}(?:{HEX16})?"),
        ];
        let mut v = vec![
            rule(&[GotDefs], false, &[s(r"[ \t]*,[ \t]*")], Act::DefsComma),
            rule(&[GotDefs], false, &[s(r"[ \t]+")], Act::DefsBlank),
            rule(&[StartDefs], false, &[s("[a-z_]+")], Act::DefVar),
            rule(&[InDefs], false, &[s(",")], Act::InDefsComma),
            rule(&[InDefs], false, &[s("=")], Act::InDefsEq),
            rule(&[InDefs], false, &[s(r"\+=")], Act::PlusEq),
            rule(&[InDefs], false, &[s("-=")], Act::MinusEq),
            rule(&[InDefs], false, &[s("\"")], Act::StrStart),
            rule(&[InDefs], false, &[s(ENVAR)], Act::DefsWord),
            rule(
                &[InStr],
                false,
                &[s(r"\\[ \t]*\r?\n[ \t]*")],
                Act::StrContinue,
            ),
            rule(&[InStr], false, &[s("\"")], Act::StrEnd),
            rule(&[InStr], false, &[s(r"\\")], Act::StrBackslash),
            rule(
                &[InStr],
                false,
                &[s(r#"(?:[^"\r\n\\]|\\")+"#)],
                Act::StrBody,
            ),
            rule(
                &[GotCmnd],
                false,
                &[s(r"\\[*?\[\]!^]")],
                Act::CmndGlobEscape,
            ),
            rule(&[GotCmnd], false, &[s(r"\\[:\\,= \t#]")], Act::CmndEscape),
            rule(&[GotCmnd], false, &[s(r"[#:,\r\n]")], Act::CmndEnd),
            rule(&[GotCmnd], false, &[s(r"[^#\\:, \t\r\n]+")], Act::CmndArg),
            rule(&[GotRegex], false, &[s(r"\\[^\r\n]")], Act::RegexEscape),
            rule(&[GotRegex], false, &[s(r"[#\r\n]")], Act::RegexBad),
            rule(&[GotRegex], false, &[s(r"\$")], Act::RegexEnd),
            rule(&[GotRegex], false, &[s(r"[^#\\\r\n$]+")], Act::RegexBody),
            rule(&[WantDigest], false, &[s("[0-9A-Fa-f]+")], Act::DigestHex),
            rule(
                &[WantDigest],
                false,
                &[s("[A-Za-z0-9+/=]+")],
                Act::DigestB64,
            ),
            rule(&[Initial], false, &[s("@include")], Act::AtInclude),
            rule(&[Initial], false, &[s("@includedir")], Act::AtIncludeDir),
            rule(
                &[Initial],
                true,
                &[s(r"#include[ \t]+.*(?:\r\n|\n)?")],
                Act::HashInclude,
            ),
            rule(
                &[Initial],
                true,
                &[s(r"#includedir[ \t]+.*(?:\r\n|\n)?")],
                Act::HashIncludeDir,
            ),
            rule(
                &[Initial],
                true,
                &[
                    format!(r#"[ \t]*Defaults[:@>!][ \t]*!*"?(?:{ID}|{WORD})"#),
                    s(r"[ \t]*Defaults"),
                ],
                Act::Defaults,
            ),
            rule(
                &[Initial],
                true,
                &[s(r"[ \t]*(?:Host|Cmnd|Cmd|User|Runas)_Alias")],
                Act::AliasKw,
            ),
        ];
        v.push(rule(
            &[],
            false,
            &TAGS
                .iter()
                .map(|t| format!("{t}[ \t]*:"))
                .collect::<Vec<_>>(),
            Act::Tag,
        ));
        v.extend([
            rule(
                &[Initial, GotDefs],
                false,
                &[s(r"\+"), s("%"), s("%:")],
                Act::EmptyGroup,
            ),
            rule(&[], false, &[format!(r"\+{WORD}")], Act::NetGroup),
            rule(
                &[],
                false,
                &[format!(r"%:?(?:{WORD}|{ID})")],
                Act::UserGroup,
            ),
            rule(
                &[],
                false,
                &[
                    format!(r"{ipv4}/{ipv4}"),
                    format!(r"{ipv4}/(?:3[0-2]|[12][0-9]|[0-9])"),
                    ipv4.clone(),
                ],
                Act::Ip4,
            ),
            rule(
                &[],
                false,
                &[
                    format!("{}/{}", ipv6[0], ipv6[0]),
                    format!("{}/{}", ipv6[1], ipv6[1]),
                    format!("{}/(?:12[0-8]|1[01][0-9]|[1-9][0-9]|[0-9])", ipv6[0]),
                    format!("{}/(?:12[0-8]|1[01][0-9]|[1-9][0-9]|[0-9])", ipv6[1]),
                    ipv6[0].clone(),
                    ipv6[1].clone(),
                ],
                Act::Ip6,
            ),
            rule(&[], false, &[s("ALL")], Act::All),
            rule(
                &[Initial],
                false,
                &OPTIONS.iter().map(|o| s(o)).collect::<Vec<_>>(),
                Act::Opt,
            ),
            rule(&[], false, &[s("[A-Z][A-Z0-9_]*")], Act::Alias),
            rule(
                &[GotDefs],
                false,
                &[s(PATH), s(REGEX), s("sudoedit")],
                Act::DefsCommand,
            ),
            rule(
                &[],
                false,
                &[s("sha224"), s("sha256"), s("sha384"), s("sha512")],
                Act::Sha,
            ),
            rule(&[], false, &[s("sudoedit")], Act::Sudoedit),
            rule(
                &[ExpectPath],
                false,
                &[s(PATH), s(WORD)],
                Act::ExpectPathWord,
            ),
            rule(&[], false, &[s(PATH)], Act::Path),
            rule(&[], false, &[s(REGEX)], Act::Regex),
            rule(&[Initial, GotDefs], false, &[s("\"")], Act::StrStart),
            rule(&[Initial, GotDefs], false, &[s(ID), s(WORD)], Act::Word),
            rule(
                &[GotInc],
                false,
                &[s(r#"[^"\s](?:\S|\\[ \t])*"#)],
                Act::IncWord,
            ),
            rule(&[GotInc], false, &[s("\"")], Act::IncStr),
            rule(&[], false, &[s(r"[(),=:]")], Act::Punct),
        ]);
        let mut everywhere = vec![
            rule(&[], false, &[s("!+")], Act::Bangs),
            rule(&[], false, &[s(r"\r?\n")], Act::Newline),
            rule(&[], false, &[s(r"[ \t]+")], Act::Blank),
            rule(&[], false, &[s(r"\\[ \t]*\r?\n")], Act::Continuation),
        ];
        for r in &mut everywhere {
            r.all_states = true;
        }
        v.extend(everywhere);
        v.push(rule(
            &[Initial, StartDefs, InDefs],
            false,
            &[s(r"#(?:-[^\r\n0-9].*|[^\r\n0-9-].*)?(?:\r\n|\n)?")],
            Act::Comment,
        ));
        let mut any = rule(&[], false, &[s(".")], Act::Any);
        any.all_states = true;
        v.push(any);
        v
    })
}

/// The scanner over one file's text.
pub struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    line_start: usize,
    state: State,
    prev_state: State,
    bol: bool,
    /// After a `\` line continuation (some tokens may not follow one).
    continued: bool,
    sawspace: bool,
    digest_len: usize,
    /// The command being collected in `GotCmnd`/`GotRegex`.
    cmnd: Option<(String, Option<String>, usize, usize)>,
    /// The string being collected in `InStr`.
    string: Option<String>,
    str_start: (usize, usize),
}

fn digest_len(name: &str) -> usize {
    match name {
        "sha224" => 28,
        "sha256" => 32,
        "sha384" => 48,
        _ => 64,
    }
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            text,
            pos: 0,
            line: 1,
            line_start: 0,
            state: State::Initial,
            prev_state: State::Initial,
            bol: true,
            continued: false,
            sawspace: false,
            digest_len: 0,
            cmnd: None,
            string: None,
            str_start: (1, 1),
        }
    }

    fn applies(&self, r: &Rule) -> bool {
        (!r.bol || self.bol)
            && (r.all_states
                || r.states.contains(&self.state)
                || (r.states.is_empty() && self.state.inclusive()))
    }

    /// The rule with the longest match here (the first on a tie), and the match's length.
    fn best(&self) -> Option<(&'static Rule, usize)> {
        let rest = &self.text[self.pos..];
        let mut best: Option<(&'static Rule, usize)> = None;
        for r in rules().iter().filter(|r| self.applies(r)) {
            let len = r
                .res
                .iter()
                .filter_map(|re| re.find(rest).map(|m| m.end()))
                .max()
                .unwrap_or(0);
            if len > 0 && best.is_none_or(|(_, l)| len > l) {
                best = Some((r, len));
            }
        }
        best
    }

    fn token(&self, tok: Tok, text: &str, at: usize) -> Token {
        Token {
            tok,
            line: self.line,
            col: at - self.line_start + 1,
            text: text.to_string(),
        }
    }

    fn newline_seen(&mut self, end: usize) {
        self.line += 1;
        self.line_start = end;
    }

    fn fill_args(&mut self, piece: &str) {
        let space = self.sawspace;
        if let Some((_, args, _, _)) = &mut self.cmnd {
            match args {
                None => *args = Some(piece.to_string()),
                Some(a) => {
                    if space {
                        a.push(' ');
                    }
                    a.push_str(piece);
                }
            }
        }
        self.sawspace = false;
    }

    fn finish_command(&mut self) -> Option<Token> {
        let (cmnd, args, line, col) = self.cmnd.take()?;
        Some(Token {
            text: cmnd.clone(),
            tok: Tok::Command { cmnd, args },
            line,
            col,
        })
    }

    /// The next token, or None at the end of the text.
    pub fn next_token(&mut self) -> Option<Token> {
        loop {
            if self.pos >= self.text.len() {
                // As for sudo, a command still being read at the end of the text is lost (a
                // line continuation before the end): the parser then finds no command.
                self.cmnd = None;
                return None;
            }
            let (r, len) = self.best()?;
            let at = self.pos;
            let text = &self.text[at..at + len];
            self.pos += len;
            let t = self.act(r.act, text, at);
            // As in flex: the next token is at the beginning of a line when the text consumed
            // last ended with a newline.
            self.bol = self.pos > at && self.text[at..self.pos].ends_with('\n');
            if t.is_some() {
                return t;
            }
        }
    }

    /// Give back all but the first `keep` bytes of the last match (flex's `yyless`).
    fn yyless(&mut self, at: usize, keep: usize) {
        self.pos = at + keep;
    }

    fn act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        match act {
            Act::DefsComma
            | Act::InDefsComma
            | Act::DefsBlank
            | Act::DefVar
            | Act::InDefsEq
            | Act::PlusEq
            | Act::MinusEq
            | Act::DefsWord
            | Act::Word
            | Act::ExpectPathWord
            | Act::IncWord
            | Act::DefsCommand => self.defs_act(act, text, at),
            Act::StrStart
            | Act::StrContinue
            | Act::StrEnd
            | Act::StrBackslash
            | Act::StrBody
            | Act::IncStr => self.string_act(act, text, at),
            Act::CmndGlobEscape
            | Act::CmndEscape
            | Act::CmndEnd
            | Act::CmndArg
            | Act::RegexEscape
            | Act::RegexBody
            | Act::RegexBad
            | Act::RegexEnd
            | Act::Sudoedit
            | Act::Path
            | Act::Regex => self.command_act(act, text, at),
            Act::DigestHex
            | Act::DigestB64
            | Act::AtInclude
            | Act::AtIncludeDir
            | Act::HashInclude
            | Act::HashIncludeDir
            | Act::Defaults
            | Act::AliasKw
            | Act::Sha => self.line_act(act, text, at),
            Act::Tag
            | Act::EmptyGroup
            | Act::NetGroup
            | Act::UserGroup
            | Act::Ip4
            | Act::Ip6
            | Act::All
            | Act::Opt
            | Act::Alias => self.name_act(act, text, at),
            Act::Punct
            | Act::Bangs
            | Act::Newline
            | Act::Blank
            | Act::Continuation
            | Act::Comment
            | Act::Any => self.layout_act(act, text, at),
        }
    }

    fn defs_act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        use State::*;
        let tok = |l: &Self, t: Tok| Some(l.token(t, text, at));
        match act {
            Act::DefsComma | Act::InDefsComma => {
                if act == Act::InDefsComma {
                    self.state = StartDefs;
                }
                tok(self, Tok::Comma)
            }
            Act::DefsBlank => {
                self.state = StartDefs;
                None
            }
            Act::DefVar => {
                self.state = InDefs;
                tok(self, Tok::DefVar(text.to_string()))
            }
            Act::InDefsEq => tok(self, Tok::Eq),
            Act::PlusEq => tok(self, Tok::PlusEq),
            Act::MinusEq => tok(self, Tok::MinusEq),
            Act::DefsWord | Act::Word | Act::ExpectPathWord | Act::IncWord => {
                if act == Act::ExpectPathWord {
                    self.state = self.prev_state;
                }
                if act == Act::IncWord {
                    self.state = Initial;
                }
                tok(self, Tok::Word(text.to_string()))
            }
            Act::DefsCommand => tok(
                self,
                Tok::Command {
                    cmnd: text.to_string(),
                    args: None,
                },
            ),
            _ => unreachable!("dispatched by act"),
        }
    }

    fn string_act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        use State::*;
        match act {
            Act::StrStart => {
                self.string = None;
                self.prev_state = self.state;
                self.state = InStr;
                self.str_start = (self.line, at - self.line_start + 1);
                None
            }
            Act::StrContinue => {
                self.newline_seen(at + text.len());
                self.continued = true;
                None
            }
            Act::StrEnd => self.end_string(at),
            Act::StrBackslash | Act::StrBody => {
                self.string.get_or_insert_with(String::new).push_str(text);
                None
            }
            Act::IncStr => {
                self.string = None;
                self.prev_state = Initial;
                self.state = InStr;
                self.str_start = (self.line, at - self.line_start + 1);
                None
            }
            _ => unreachable!("dispatched by act"),
        }
    }

    fn command_act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        use State::*;
        let tok = |l: &Self, t: Tok| Some(l.token(t, text, at));
        match act {
            Act::CmndGlobEscape => {
                self.fill_args(text);
                None
            }
            Act::CmndEscape => {
                self.fill_args(&text[1..]);
                None
            }
            Act::CmndEnd => {
                self.state = Initial;
                self.yyless(at, 0);
                self.finish_command()
            }
            Act::CmndArg => {
                let no_args = self.cmnd.as_ref().is_some_and(|c| c.1.is_none());
                if no_args && text.starts_with('^') {
                    self.state = GotRegex;
                    self.yyless(at, 0);
                    // The regular expression's text is the argument string.
                    if let Some(c) = &mut self.cmnd {
                        c.1 = Some(String::new());
                    }
                } else {
                    self.fill_args(text);
                }
                None
            }
            Act::RegexEscape | Act::RegexBody => {
                let piece = if act == Act::RegexBody && self.continued {
                    self.continued = false;
                    text.trim_start_matches([' ', '\t'])
                } else {
                    text
                };
                if let Some(c) = &mut self.cmnd {
                    c.1.get_or_insert_with(String::new).push_str(piece);
                }
                None
            }
            Act::RegexBad => {
                self.yyless(at, 0);
                self.state = Initial;
                self.cmnd = None;
                tok(self, Tok::Error("unterminated regular expression"))
            }
            Act::RegexEnd => {
                if let Some(c) = &mut self.cmnd {
                    c.1.get_or_insert_with(String::new).push('$');
                }
                self.state = Initial;
                self.continued = false;
                self.finish_command()
            }
            Act::Sudoedit | Act::Path | Act::Regex => {
                if act == Act::Path && text.ends_with('/') {
                    return tok(
                        self,
                        Tok::Command {
                            cmnd: text.to_string(),
                            args: None,
                        },
                    );
                }
                self.state = GotCmnd;
                self.sawspace = false;
                self.cmnd = Some((text.to_string(), None, self.line, at - self.line_start + 1));
                None
            }
            _ => unreachable!("dispatched by act"),
        }
    }

    fn line_act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        use State::*;
        let tok = |l: &Self, t: Tok| Some(l.token(t, text, at));
        match act {
            Act::DigestHex | Act::DigestB64 => {
                self.state = Initial;
                let want = if act == Act::DigestHex {
                    self.digest_len * 2
                } else if text.ends_with('=') {
                    4 * self.digest_len.div_ceil(3)
                } else {
                    (4 * self.digest_len).div_ceil(3)
                };
                (text.len() == want).then(|| self.token(Tok::Digest(text.to_string()), text, at))
            }
            Act::AtInclude | Act::AtIncludeDir | Act::HashInclude | Act::HashIncludeDir => {
                if self.continued {
                    return tok(self, Tok::Error("invalid line continuation"));
                }
                let dir = matches!(act, Act::AtIncludeDir | Act::HashIncludeDir);
                if act == Act::HashInclude {
                    self.yyless(at, "#include".len());
                } else if act == Act::HashIncludeDir {
                    self.yyless(at, "#includedir".len());
                }
                self.state = GotInc;
                tok(self, if dir { Tok::IncludeDir } else { Tok::Include })
            }
            Act::Defaults => self.defaults(text, at),
            Act::AliasKw => {
                if self.continued {
                    return tok(self, Tok::Error("invalid line continuation"));
                }
                let kw = match text.trim_start().as_bytes()[0] {
                    b'H' => "Host_Alias",
                    b'C' => "Cmnd_Alias",
                    b'U' => "User_Alias",
                    _ => "Runas_Alias",
                };
                tok(self, Tok::AliasKw(kw))
            }
            Act::Sha => {
                self.digest_len = digest_len(text);
                self.state = WantDigest;
                let name = ["sha224", "sha256", "sha384", "sha512"]
                    .into_iter()
                    .find(|n| *n == text)
                    .unwrap_or("sha512");
                tok(self, Tok::Sha(name))
            }
            _ => unreachable!("dispatched by act"),
        }
    }

    fn name_act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        use State::*;
        let tok = |l: &Self, t: Tok| Some(l.token(t, text, at));
        match act {
            Act::Tag => {
                let name = text.trim_end_matches([' ', '\t', ':']);
                let t = TAGS
                    .iter()
                    .find(|t| **t == name)
                    .copied()
                    .unwrap_or("NOPASSWD");
                tok(self, Tok::Tag(t))
            }
            Act::EmptyGroup => {
                let why = if text == "+" {
                    "empty netgroup"
                } else {
                    "empty group"
                };
                tok(self, Tok::Error(why))
            }
            Act::NetGroup => tok(self, Tok::NetGroup(text.to_string())),
            Act::UserGroup => tok(self, Tok::UserGroup(text.to_string())),
            Act::Ip4 => tok(self, Tok::NtwkAddr(text.to_string())),
            Act::Ip6 => {
                if text.split('/').all(ipv6_valid) {
                    tok(self, Tok::NtwkAddr(text.to_string()))
                } else {
                    tok(self, Tok::Error("invalid IPv6 address"))
                }
            }
            Act::All => tok(self, Tok::All),
            Act::Opt => {
                let o = OPTIONS
                    .iter()
                    .find(|o| **o == text)
                    .copied()
                    .unwrap_or("CWD");
                if o == "CWD" || o == "CHROOT" {
                    self.prev_state = self.state;
                    self.state = ExpectPath;
                }
                tok(self, Tok::Opt(o))
            }
            Act::Alias => tok(self, Tok::Alias(text.to_string())),
            _ => unreachable!("dispatched by act"),
        }
    }

    fn layout_act(&mut self, act: Act, text: &'a str, at: usize) -> Option<Token> {
        use State::*;
        let tok = |l: &Self, t: Tok| Some(l.token(t, text, at));
        match act {
            Act::Punct => tok(
                self,
                match text {
                    "(" => Tok::LParen,
                    ")" => Tok::RParen,
                    "," => Tok::Comma,
                    "=" => Tok::Eq,
                    _ => Tok::Colon,
                },
            ),
            Act::Bangs => (text.len() % 2 == 1).then(|| self.token(Tok::Bang, text, at)),
            Act::Newline => {
                if self.state == InStr {
                    self.state = Initial;
                    self.yyless(at, 0);
                    return tok(self, Tok::Error("unexpected line break in string"));
                }
                // In a command, "\r\n" is longer than the end-of-command rule's "\r": the
                // command is dropped, as sudo drops it (and the parser finds none).
                self.cmnd = None;
                let t = self.token(Tok::Newline, text, at);
                self.state = Initial;
                self.continued = false;
                self.newline_seen(at + text.len());
                Some(t)
            }
            Act::Blank => {
                self.sawspace = true;
                None
            }
            Act::Continuation => {
                self.sawspace = true;
                self.continued = true;
                self.newline_seen(at + text.len());
                None
            }
            Act::Comment => {
                let t = self.token(Tok::Newline, text, at);
                if text.ends_with('\n') {
                    self.state = Initial;
                    self.continued = false;
                    self.newline_seen(at + text.len());
                }
                Some(t)
            }
            Act::Any => tok(self, Tok::NoMatch),
            _ => unreachable!("dispatched by act"),
        }
    }

    fn end_string(&mut self, at: usize) -> Option<Token> {
        self.state = self.prev_state;
        let (line, col) = self.str_start;
        let mk = |tok: Tok, text: &str| Token {
            tok,
            line,
            col,
            text: text.to_string(),
        };
        let Some(s) = self.string.take() else {
            let _ = at;
            return Some(mk(Tok::Error("empty string"), "\"\""));
        };
        if matches!(self.prev_state, State::Initial | State::GotDefs) {
            if let Some(rest) = s.strip_prefix('%') {
                if rest.is_empty() || rest == ":" {
                    return Some(mk(Tok::Error("empty group"), &s));
                }
                return Some(mk(Tok::UserGroup(s.clone()), &s));
            }
            if let Some(rest) = s.strip_prefix('+') {
                if rest.is_empty() {
                    return Some(mk(Tok::Error("empty netgroup"), &s));
                }
                return Some(mk(Tok::NetGroup(s.clone()), &s));
            }
        }
        Some(mk(Tok::Word(s.clone()), &s))
    }

    fn defaults(&mut self, text: &str, at: usize) -> Option<Token> {
        if self.continued {
            return Some(self.token(Tok::Error("invalid line continuation"), text, at));
        }
        let lead = text.len() - text.trim_start_matches([' ', '\t']).len();
        let mut n = lead + "Defaults".len();
        let kind = text[n..].chars().next();
        if kind.is_some() {
            n += 1;
            n += text[n..].len() - text[n..].trim_start_matches([' ', '\t']).len();
            self.yyless(at, n);
        }
        self.state = State::GotDefs;
        Some(self.token(Tok::Defaults(kind), &text[..n], at))
    }
}

/// An IPv6 address as sudo accepts it: at most one `::`, at most 8 groups (an embedded IPv4
/// address counting as two).
fn ipv6_valid(s: &str) -> bool {
    if !s.contains(':') {
        return true; // an IPv4 netmask after '/'
    }
    if s.matches("::").count() > 1 || s.contains(":::") {
        return false;
    }
    let groups: Vec<&str> = s.split(':').filter(|g| !g.is_empty()).collect();
    let count: usize = groups
        .iter()
        .map(|g| if g.contains('.') { 2 } else { 1 })
        .sum();
    count <= 8 && (s.contains("::") || count == 8)
}

/// Every token of `text`. Like sudo, a last line without a newline gets one.
pub fn tokens(text: &str) -> Vec<Token> {
    let owned;
    let text = if text.is_empty() || text.ends_with('\n') {
        text
    } else {
        owned = format!("{text}\n");
        &owned
    };
    let mut lx = Lexer::new(text);
    let mut out = Vec::new();
    while let Some(t) = lx.next_token() {
        out.push(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokens(text).into_iter().map(|t| t.tok).collect()
    }

    fn word(s: &str) -> Tok {
        Tok::Word(s.to_string())
    }

    #[test]
    fn a_user_specification() {
        assert_eq!(
            toks("alice, %wheel web1 = (root) NOPASSWD: /usr/bin/id -u, /bin/ls \"\"\n"),
            [
                word("alice"),
                Tok::Comma,
                Tok::UserGroup("%wheel".into()),
                word("web1"),
                Tok::Eq,
                Tok::LParen,
                word("root"),
                Tok::RParen,
                Tok::Tag("NOPASSWD"),
                Tok::Command {
                    cmnd: "/usr/bin/id".into(),
                    args: Some("-u".into())
                },
                Tok::Comma,
                Tok::Command {
                    cmnd: "/bin/ls".into(),
                    args: Some("\"\"".into())
                },
                Tok::Newline,
            ]
        );
    }

    #[test]
    fn arguments_escapes_comments_and_continuations() {
        assert_eq!(
            toks("a ALL = /bin/x a\\,b  c=d \\*  # note\n"),
            [
                word("a"),
                Tok::All,
                Tok::Eq,
                Tok::Command {
                    cmnd: "/bin/x".into(),
                    args: Some("a,b c=d \\*".into())
                },
                Tok::Newline,
            ]
        );
        let t = tokens("a ALL = /bin/id \\\n  -u\nb ALL = /bin/x\n");
        assert_eq!(
            t[3].tok,
            Tok::Command {
                cmnd: "/bin/id".into(),
                args: Some("-u".into())
            }
        );
        assert_eq!((t[5].line, t[5].col), (3, 1), "{t:?}");
    }

    #[test]
    fn defaults_lines() {
        assert_eq!(
            toks("Defaults:alice, %g !lecture, env_keep += \"A B\"\n"),
            [
                Tok::Defaults(Some(':')),
                word("alice"),
                Tok::Comma,
                Tok::UserGroup("%g".into()),
                Tok::Bang,
                Tok::DefVar("lecture".into()),
                Tok::Comma,
                Tok::DefVar("env_keep".into()),
                Tok::PlusEq,
                word("A B"),
                Tok::Newline,
            ]
        );
        assert_eq!(
            toks("Defaults!/usr/bin/less noexec\n"),
            [
                Tok::Defaults(Some('!')),
                Tok::Command {
                    cmnd: "/usr/bin/less".into(),
                    args: None
                },
                Tok::DefVar("noexec".into()),
                Tok::Newline,
            ]
        );
    }

    #[test]
    fn regular_expressions_digests_options_errors() {
        assert_eq!(
            toks("a ALL = ^/usr/bin/(who|w)$\n")[3],
            Tok::Command {
                cmnd: "^/usr/bin/(who|w)$".into(),
                args: None
            }
        );
        assert_eq!(
            toks("a ALL = /usr/bin/who ^-[a-z]$\n")[3],
            Tok::Command {
                cmnd: "/usr/bin/who".into(),
                args: Some("^-[a-z]$".into())
            }
        );
        assert!(toks("a ALL = /usr/bin/who ^-[a-z]\n")
            .contains(&Tok::Error("unterminated regular expression")));
        let hex = "0".repeat(64);
        assert!(toks(&format!("a ALL = sha256:{hex} /bin/id\n")).contains(&Tok::Digest(hex)));
        assert_eq!(
            toks("a ALL = CWD=/tmp TIMEOUT=5m /bin/id\n")[3..8],
            [
                Tok::Opt("CWD"),
                Tok::Eq,
                word("/tmp"),
                Tok::Opt("TIMEOUT"),
                Tok::Eq
            ]
        );
        assert_eq!(toks("% ALL = /bin/id\n")[0], Tok::Error("empty group"));
        assert_eq!(
            toks("a 10.0.0.0/8, ::1 = /x\n")[1],
            Tok::NtwkAddr("10.0.0.0/8".into())
        );
        assert_eq!(
            toks("a 10.0.0.0/8, ::1 = /x\n")[3],
            Tok::NtwkAddr("::1".into())
        );
        assert_eq!(toks("ALICE ALL = /x\n")[0], Tok::Alias("ALICE".into()));
        assert_eq!(toks("Alice ALL = /x\n")[0], word("Alice"));
        assert_eq!(toks("\"al ice\" ALL = /x\n")[0], word("al ice"));
    }
}
