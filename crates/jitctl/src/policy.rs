//! `jitctl policy check|test|explain`.
use crate::cli::{CheckArgs, ExplainArgs, TestArgs};
use crate::error::{io_error, CliError, Result};
use crate::lint::{allowed_at, lint, Severity};
use jit_policy::explain::Verdict;
use jit_policy::test_case::run_test;
use jit_policy::{
    load_tests, Decision, Policy, PolicySource, PolicyTest, Request, RunAs, Settings,
};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub const DEFAULT_POLICY: &str = "/etc/jitrun/policy.toml";
pub const DEFAULT_DROPIN_DIR: &str = "/etc/jitrun/policy.d";
pub const DEFAULT_SETTINGS: &str = "/etc/jitrun/jitrun.toml";

/// The `*.toml` regular files of a directory, in name order (bytewise).
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list", dir, &e))?;
        let path = entry.path();
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        if is_toml && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Files to load, in order: each PATH (a directory stands for its *.toml in name order),
/// or by default policy.toml then policy.d/*.toml (either may be absent, as for jitrun).
pub fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        let mut files = Vec::new();
        if Path::new(DEFAULT_POLICY).exists() {
            files.push(PathBuf::from(DEFAULT_POLICY));
        }
        let dropins = Path::new(DEFAULT_DROPIN_DIR);
        if dropins.is_dir() {
            files.extend(toml_files(dropins)?);
        }
        return Ok(files);
    }
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| io_error("cannot read", path, &e))?;
        if meta.is_dir() {
            // Laid out like /etc/jitrun: policy.toml then policy.d/*.toml, as jitrun loads them.
            let main = path.join("policy.toml");
            let dropins = path.join("policy.d");
            if main.is_file() || dropins.is_dir() {
                if main.is_file() {
                    files.push(main);
                }
                if dropins.is_dir() {
                    files.extend(toml_files(&dropins)?);
                }
            } else {
                files.extend(toml_files(path)?);
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

pub fn load_sources(files: &[PathBuf]) -> Result<Vec<PolicySource>> {
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                CliError(format!(
                    "{}: not UTF-8 (byte {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ))
            })?;
            Ok(PolicySource {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Load the policy the paths make up (default: jitrun's own files).
pub fn load_policy(paths: &[PathBuf]) -> Result<(Policy, usize)> {
    let (policy, sources) = load_policy_sources(paths)?;
    Ok((policy, sources.len()))
}

fn load_policy_sources(paths: &[PathBuf]) -> Result<(Policy, Vec<PolicySource>)> {
    let files = policy_files(paths)?;
    if files.is_empty() {
        return Err("no policy files (the directories given hold no *.toml files)".into());
    }
    let sources = load_sources(&files)?;
    Ok((Policy::load(&sources)?, sources))
}

/// The policy, its `[[test]]` cases (which jitrun never reads: errors in them are reported
/// here, by `check` and `test`) and the sources.
fn load_policy_and_tests(
    paths: &[PathBuf],
) -> Result<(Policy, Vec<PolicyTest>, Vec<PolicySource>)> {
    let (policy, sources) = load_policy_sources(paths)?;
    let tests = load_tests(&sources)?;
    Ok((policy, tests, sources))
}

/// `--settings FILE`, else /etc/jitrun/jitrun.toml when it exists, else the defaults.
pub fn load_settings(path: Option<&Path>) -> Result<Settings> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_SETTINGS).is_file() => PathBuf::from(DEFAULT_SETTINGS),
        None => return Ok(Settings::default()),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| io_error("cannot read", &path, &e))?;
    Ok(Settings::parse(&path.display().to_string(), &text)?)
}

pub fn check(args: &CheckArgs) -> Result<()> {
    let (policy, tests, sources) = load_policy_and_tests(&args.paths)?;
    let files = sources.len();
    let settings = load_settings(args.settings.as_deref())?;
    let mut findings = lint(&policy, &settings);
    let before = findings.len();
    findings.retain(|f| !f.acknowledged);
    let acknowledged = before - findings.len();
    let before = findings.len();
    findings.retain(|f| {
        !sources
            .iter()
            .find(|s| s.name == f.file)
            .is_some_and(|s| allowed_at(&s.text, f.line, f.code))
    });
    let silenced = before - findings.len();
    let level = if args.strict { "error" } else { "warning" };
    for f in &findings {
        println!("{}:{}: {level}[{}]: {}", f.file, f.line, f.code, f.message);
    }
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    if args.strict && warnings > 0 {
        return Err(format!(
            "{warnings} lint finding(s) with --strict in {} rules from {files} files; fix them, or acknowledge one you have weighed with allow_risks = [\"ID\"] in its rule (docs/policy.md, \"Lint\")",
            policy.rules.len()
        )
        .into());
    }
    println!(
        "ok: {} rules, {} tests from {files} files; {warnings} warning(s), {acknowledged} acknowledged by allow_risks, {silenced} silenced by jitctl-lint comments",
        policy.rules.len(),
        tests.len(),
    );
    Ok(())
}

/// The lint findings of one rule, for `explain`: each id, and whether the rule acknowledges it.
fn risks_of(policy: &Policy, settings: &Settings, rule: &str) -> Vec<String> {
    lint(policy, settings)
        .into_iter()
        .filter(|f| f.rule == rule && f.code != "unused-allow-risk")
        .map(|f| {
            let how = if f.acknowledged {
                "acknowledged by allow_risks"
            } else {
                "not acknowledged"
            };
            format!("{} ({how}, {}:{})", f.code, f.file, f.line)
        })
        .collect()
}

pub fn test(args: &TestArgs) -> Result<()> {
    let (policy, tests, sources) = load_policy_and_tests(&args.paths)?;
    let files = sources.len();
    if tests.is_empty() {
        // Not a failure: a policy package without tests must still install (its rules are
        // checked by `check`); but say so, since nothing was verified.
        println!("0 passed, 0 failed");
        eprintln!(
            "jitctl: warning: no [[test]] cases in the {files} policy file(s) given; nothing was tested (see docs/policy.md)"
        );
        return Ok(());
    }
    let mut failed = 0usize;
    for t in &tests {
        let o = run_test(&policy, t);
        let at = format!("{}:{}", t.source.file, t.source.line);
        if o.passed {
            println!("ok      {at}: {}", t.label());
        } else {
            failed += 1;
            println!("FAILED  {at}: {}", t.label());
            println!(
                "        {}",
                o.mismatch.as_deref().unwrap_or("unexpected outcome")
            );
            println!("        got: {}", o.got);
        }
    }
    let passed = tests.len() - failed;
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(format!("{failed} of {} policy test(s) failed", tests.len()).into());
    }
    Ok(())
}

/// A bare command name looked up in secure_path (never the caller's PATH), like jitrun.
fn resolve(program: &str, settings: &Settings) -> Result<String> {
    if program.starts_with('/') {
        return Ok(program.to_string());
    }
    if program.contains('/') {
        return Err(format!(
            "{program}: give an absolute path or a bare name looked up in secure_path"
        )
        .into());
    }
    settings
        .secure_path_dirs()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .ok_or_else(|| {
            CliError(format!(
                "{program}: not found in secure_path ({}); give its absolute path",
                settings.secure_path
            ))
        })
}

fn read_token(source: &str) -> Result<String> {
    let text = if source == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError(format!("cannot read the grant from standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| io_error("cannot read grant", Path::new(source), &e))?
    };
    Ok(text.trim().to_string())
}

fn run_as_text(r: &RunAs, user: &str) -> String {
    match r {
        RunAs::Invoker => format!("the invoker ({user})"),
        RunAs::Root => "root".to_string(),
        RunAs::User(u) => u.clone(),
    }
}

/// Whether the rule's sessions are recorded, and why.
fn record_text(rule: &jit_policy::Rule, settings: &jit_policy::RecordSettings) -> String {
    let why = match rule.record {
        Some(r) => format!("record = {r} in the rule"),
        None => format!("settings record.default = {}", settings.default),
    };
    if !rule.records(settings) {
        return format!("no ({why})");
    }
    let what = if rule.record_input {
        "output and input"
    } else {
        "output"
    };
    format!("yes, {what} ({why}); this jitrun cannot record yet and refuses such runs (recording_unavailable)")
}

pub fn explain(args: &ExplainArgs) -> Result<()> {
    let (policy, _) = load_policy(&args.policy)?;
    let settings = load_settings(args.settings.as_deref())?;
    let host = match (&args.host, &settings.host) {
        (Some(h), _) | (None, Some(h)) => h.clone(),
        (None, None) => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string()),
    };
    let program = resolve(&args.command[0], &settings)?;
    let view = match &args.grant {
        None => None,
        Some(src) => {
            let token = read_token(src)?;
            let u = jit_grant::decode_unverified(&token)?;
            let claims = jit_grant::Claims::from_json(&u.payload)?;
            Some(claims.view()?)
        }
    };
    let arg_list: Vec<&OsStr> = args.command[1..].iter().map(OsStr::new).collect();
    let request = Request {
        user: &args.user,
        groups: &args.groups,
        host: &host,
        program: OsStr::new(&program),
        args: &arg_list,
        run_as: args.run_as.as_deref(),
        rule: args.rule.as_deref(),
    };
    let e = jit_policy::explain::explain(&policy, &request, view.as_ref());
    let mut cmdline = vec![program.clone()];
    cmdline.extend(args.command[1..].iter().cloned());
    println!("request: {} runs {:?} on {host}", args.user, cmdline);
    if let Some(g) = &view {
        println!(
            "grant:   {} for rule \"{}\" (signature and times not checked here; jitrun checks them first)",
            g.id, g.rule
        );
    }
    print_decision(&e.decision, &policy, &settings, &args.user);
    print_rules(&e.rules);
    match e.decision {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny(_) => Err("the request would be denied (see above)".into()),
    }
}

/// The decision, the rule it names and that rule's lint findings.
fn print_decision(decision: &Decision<'_>, policy: &Policy, settings: &Settings, user: &str) {
    let decided = match decision {
        Decision::Allow { rule, caps, run_as } => {
            println!("decision: allow");
            println!(
                "rule:     \"{}\" ({}:{})",
                rule.name, rule.source.file, rule.source.line
            );
            println!("run as:   {}", run_as_text(run_as, user));
            println!("caps:     {caps}");
            println!("record:   {}", record_text(rule, &settings.record));
            Some(rule.name.clone())
        }
        Decision::Deny(d) => {
            println!("decision: deny ({})", d.code);
            println!("reason:   {}", d.message);
            if let Some(r) = &d.rule {
                println!("rule:     \"{r}\"");
            }
            d.rule.clone()
        }
    };
    if let Some(name) = decided {
        let risks = risks_of(policy, settings, &name);
        if risks.is_empty() {
            println!("risks:    none (jitctl policy check finds nothing in this rule)");
        } else {
            println!("risks:    {}", risks.join("\n          "));
        }
    }
}

/// Every rule, with why it was chosen or not.
fn print_rules(rules: &[jit_policy::explain::RuleReport<'_>]) {
    println!("rules:");
    for r in rules {
        let at = format!("{}:{}", r.rule.source.file, r.rule.source.line);
        match &r.verdict {
            Verdict::Chosen => println!("  {:<24} matched ({at})", r.rule.name),
            Verdict::NotChosen(why) | Verdict::NoMatch(why) => {
                println!("  {:<24} {why} ({at})", r.rule.name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_toml_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("jitctl-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.toml")).unwrap();
        for name in ["b.toml", "a.toml", "10-x.toml", "c.txt", "d.toml~"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let files = policy_files(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["10-x.toml", "a.toml", "b.toml"]);
        let explicit = policy_files(&[dir.join("c.txt"), dir.clone()]).unwrap();
        assert_eq!(explicit.len(), 4);
        assert!(policy_files(&[dir.join("missing.toml")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
