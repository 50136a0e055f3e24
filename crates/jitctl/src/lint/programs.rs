//! What the linter knows about programs (the data file `data/shell-escapes.toml`) and how it
//! finds out which program a path is: the names it goes by, through symbolic links and the
//! Debian alternatives, and the interpreter of a script.
use jit_policy::glob::{glob_match, has_meta};
use jit_policy::pattern::path_glob;
use jit_policy::CommandPattern;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const DATA: &str = include_str!("../../data/shell-escapes.toml");

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    pub interpreters: Vec<String>,
    pub runners: Vec<String>,
    pub per_user_code: BTreeMap<String, String>,
    pub escape: Vec<Escape>,
    pub files: Vec<Files>,
    pub config: Vec<Config>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escape {
    pub names: Vec<String>,
    pub how: String,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub words: Vec<String>,
    #[serde(default)]
    pub unless: Vec<String>,
    /// An argument is a program in the tool's own language (awk, sed).
    #[serde(default)]
    pub code: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub names: Vec<String>,
    pub what: String,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFrom {
    Home,
    Cwd,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub names: Vec<String>,
    pub how: String,
    pub from: ConfigFrom,
}

pub fn data() -> &'static Data {
    static D: OnceLock<Data> = OnceLock::new();
    D.get_or_init(|| toml::from_str(DATA).expect("data/shell-escapes.toml is valid (unit-tested)"))
}

/// The names a program goes by (see [`identify`]), and the interpreter of a script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Base names: of the path as written, of every symbolic link on the way, of the file.
    pub names: Vec<String>,
    /// For a `#!` script found on this machine: the interpreter's identity.
    pub interpreter: Option<Box<Identity>>,
    /// The path the interpreter line names (`/usr/bin/env python3` → `python3`).
    pub interpreter_shown: Option<String>,
    /// The interpreter line's first argument after the interpreter (`-I` in `#!/usr/bin/python3 -I`).
    pub interpreter_arg: Option<String>,
}

impl Identity {
    /// Does one of the names match one of the globs?
    pub fn is_any(&self, globs: &[String]) -> bool {
        self.names
            .iter()
            .any(|n| globs.iter().any(|g| glob_match(g.as_bytes(), n.as_bytes())))
    }

    /// The first name that matches, for messages (else the first name).
    pub fn shown(&self, globs: &[String]) -> &str {
        self.names
            .iter()
            .find(|n| globs.iter().any(|g| glob_match(g.as_bytes(), n.as_bytes())))
            .or(self.names.first())
            .map_or("", String::as_str)
    }
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `path` (absolute) under `root` (`/` normally; a test tree in tests).
fn rooted(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Follow `path` through symbolic links (at most 40 hops, each component resolved, absolute
/// targets taken under `root`), collecting the base name of every link and of the end.
fn link_names(root: &Path, path: &str) -> Vec<String> {
    let mut names = vec![base(path).to_string()];
    let mut current = path.to_string();
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(rooted(root, &current)) else {
            break;
        };
        let target = target.to_string_lossy().into_owned();
        current = if target.starts_with('/') {
            target
        } else {
            let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{target}")
        };
        names.push(base(&current).to_string());
    }
    if let Ok(canonical) = std::fs::canonicalize(rooted(root, path)) {
        if let Some(n) = canonical.file_name() {
            names.push(n.to_string_lossy().into_owned());
        }
    }
    names.dedup();
    let mut seen = Vec::new();
    names.retain(|n| {
        let new = !seen.contains(n);
        seen.push(n.clone());
        new
    });
    names
}

/// The `#!` line of a file, if it has one: the interpreter path and its first argument.
fn shebang(root: &Path, path: &str) -> Option<(String, Option<String>)> {
    let mut f = std::fs::File::open(rooted(root, path)).ok()?;
    let mut head = [0u8; 256];
    let n = f.read(&mut head).ok()?;
    let text = head[..n].strip_prefix(b"#!")?;
    let line = text.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let interpreter = words.next()?.to_string();
    Some((interpreter, words.next().map(str::to_string)))
}

/// Who a program is: its names through links and alternatives, and for a script the
/// interpreter (through `/usr/bin/env NAME`, looked up in `secure`).
pub fn identify(root: &Path, program: &str, secure: &[&str]) -> Identity {
    let mut id = Identity {
        names: link_names(root, program),
        ..Identity::default()
    };
    if let Some((interp, arg)) = shebang(root, program) {
        let direct = base(&interp) != "env";
        id.interpreter_arg = arg.clone().filter(|_| direct);
        let named = match (base(&interp), arg) {
            ("env", Some(name)) if !name.starts_with('-') => secure
                .iter()
                .map(|d| format!("{d}/{name}"))
                .find(|p| rooted(root, p).exists())
                .unwrap_or(name),
            _ => interp,
        };
        let inner = Identity {
            names: link_names(root, &named),
            ..Identity::default()
        };
        id.interpreter = Some(Box::new(inner));
        id.interpreter_shown = Some(named);
    }
    id
}

/// Can an argument matched by glob `word` begin with `-` (and so be an option)?
pub fn may_be_option(word: &str) -> bool {
    let w = path_glob(word).unwrap_or(word);
    if path_glob(word).is_some() {
        return false; // a path glob matches normalised paths only; "-x" is one, but relative
    }
    match w.as_bytes().first() {
        Some(b'*') | Some(b'?') | Some(b'-') => has_meta(w.as_bytes()),
        Some(b'[') => glob_match(w.as_bytes(), b"-") || glob_match(w.as_bytes(), b"-x"),
        _ => false,
    }
}

fn is_option(word: &str) -> bool {
    word.starts_with('-') && !has_meta(word.as_bytes())
}

fn fixed_word_in(word: &str, list: &[String]) -> bool {
    !has_meta(word.as_bytes())
        && list
            .iter()
            .any(|g| glob_match(g.as_bytes(), word.as_bytes()))
}

/// Could a glob argument be one of `words`?
fn glob_may_be(word: &str, words: &[String]) -> bool {
    words.iter().any(|w| {
        if has_meta(w.as_bytes()) {
            true
        } else {
            glob_match(word.as_bytes(), w.as_bytes())
        }
    })
}

impl Escape {
    /// Does pattern `c` leave this escape open (see the data file's comment)?
    pub fn open_in(&self, c: &CommandPattern) -> bool {
        if c.args.iter().any(|a| fixed_word_in(a, &self.unless)) {
            return false;
        }
        if self.interactive {
            return true;
        }
        if self.code {
            return c.rest || c.args.iter().any(|a| has_meta(a.as_bytes()));
        }
        if !self.words.is_empty() {
            if c.args.iter().any(|a| fixed_word_in(a, &self.words)) {
                return true;
            }
            let verb = c
                .args
                .iter()
                .position(|a| !has_meta(a.as_bytes()) && !a.starts_with('-'));
            let before = &c.args[..verb.unwrap_or(c.args.len())];
            return (verb.is_none() && c.rest)
                || before.iter().enumerate().any(|(i, a)| {
                    has_meta(a.as_bytes())
                        && !after_option(before, i)
                        && glob_may_be(a, &self.words)
                });
        }
        c.rest || option_glob(c).is_some()
    }
}

/// The first glob argument that can be an option: one that can begin with `-` and does not
/// follow an option (whose value it would be).
pub fn option_glob(c: &CommandPattern) -> Option<&str> {
    c.args
        .iter()
        .enumerate()
        .find_map(|(i, a)| (may_be_option(a) && !after_option(&c.args, i)).then_some(a.as_str()))
}

/// Does argument `i` follow a fixed option (`-x`, `--name`, not `--name=value`), so that it is
/// most likely that option's value?
fn after_option(args: &[String], i: usize) -> bool {
    i > 0 && is_option(&args[i - 1]) && !args[i - 1].contains('=')
}

/// A glob argument that leaves a file path open: it can name a file outside any fixed
/// directory (no literal `/dir/` before its first wildcard).
pub fn open_path(word: &str) -> bool {
    let w = path_glob(word).unwrap_or(word);
    let bytes = w.as_bytes();
    let Some(first_meta) = bytes.iter().position(|b| matches!(b, b'*' | b'?' | b'[')) else {
        return false;
    };
    let prefix = &w[..first_meta];
    match prefix.rfind('/') {
        // A literal directory below / (`/var/log/`), or a relative one (`logs/`: still where
        // the caller's working directory is, so open).
        Some(slash) => !(prefix.starts_with('/') && slash > 0),
        None => true,
    }
}

impl Files {
    /// The first argument of `c` that leaves a file path open (`**` counts as "**").
    pub fn open_argument<'c>(&self, c: &'c CommandPattern) -> Option<&'c str> {
        for (i, a) in c.args.iter().enumerate() {
            let value = if self.options.is_empty() {
                (!is_option(a) || has_meta(a.as_bytes())).then_some(a.as_str())
            } else {
                self.option_value(a, i.checked_sub(1).map(|p| c.args[p].as_str()))
            };
            if value.is_some_and(open_path) {
                return Some(a);
            }
        }
        c.rest.then_some("**")
    }

    /// The value an option in `options` gives, in `-w VALUE`, `-wVALUE`, `--file=VALUE` or
    /// `of=VALUE` form.
    fn option_value<'a>(&self, word: &'a str, previous: Option<&str>) -> Option<&'a str> {
        if previous.is_some_and(|p| self.options.iter().any(|o| o == p)) {
            return Some(word);
        }
        self.options.iter().find_map(|o| {
            if let Some(v) = word.strip_prefix(&format!("{o}=")) {
                Some(v)
            } else if o.len() == 2 && o.starts_with('-') && !o.starts_with("--") {
                word.strip_prefix(o.as_str()).filter(|v| !v.is_empty())
            } else {
                None
            }
        })
    }
}
